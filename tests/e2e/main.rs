//! End-to-end tests: real components built from this repo, real loopback
//! servers, real processes, and the real `vigil` binary. Files follow the
//! README's sections.

#[macro_use]
mod support;
/// The names of [`support`] before it had one: tests written against
/// them still compile. New tests use `crate::support`.
#[allow(unused_imports)]
use support as helpers;
#[allow(unused_imports)]
use support as supervisor_helpers;

mod binary;
mod builtin_checks;
mod builtin_log;
mod cache;
mod causes;
mod cgroups;
mod cli;
mod compile;
mod containers;
mod contract;
mod contract_v011;
mod control;
mod daemon;
mod embed;
mod grpc;
mod hooks;
mod hostile;
mod hostile_input;
mod http;
mod identity;
mod journal_offline;
mod kinds;
mod languages;
mod loaders;
mod logs;
mod notify;
mod page;
mod pid1;
mod probe;
mod prometheus;
mod protocols;
mod replace_live;
mod replay;
mod replicas;
mod sandbox_core;
mod sandbox_escape;
mod sandbox_fs;
mod sandbox_net;
mod sandbox_output;
mod sdk_outside;
mod servers;
mod slow_clients;
mod soak;
mod sockets;
mod status;
mod supervisor_dependencies;
mod supervisor_healthiness;
mod supervisor_reload;
mod supervisor_restart;
mod supervisor_termination;
mod supervisor_validation;
mod top;
mod validate;
