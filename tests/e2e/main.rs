//! End-to-end tests: real components built from this repo, real loopback
//! servers, real processes, and the real `vigil` binary. Files follow the
//! README's sections.

#[macro_use]
mod helpers;

mod builtin_checks;
mod cache;
mod causes;
mod cli;
mod control;
mod daemon;
mod hostile;
mod http;
mod languages;
mod loaders;
mod notify;
mod pid1;
mod protocols;
mod sandbox_core;
mod sandbox_escape;
mod sandbox_fs;
mod sandbox_net;
mod servers;
mod supervisor_dependencies;
mod supervisor_healthiness;
mod supervisor_helpers;
mod supervisor_reload;
mod supervisor_restart;
mod supervisor_termination;
mod supervisor_validation;
