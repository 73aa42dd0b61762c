//! Lifecycle: running as a daemon, as one instance, under systemd, and as
//! a notify server for services.
//!
//! - [`launch`]: the health-checked daemonize handshake
//!   ([`Daemonize`], [`daemonize`]) behind `vigil run --daemon` and
//!   `vigil daemonize`.
//! - [`control_probe`]: `vigil run --daemon`'s checker.
//! - [`pidfile`]: the flock'ed pid file (single instance).
//! - [`sd_notify`]: Vigil as a `Type=notify` service of systemd.

pub mod control_probe;
pub mod launch;
pub mod pidfile;
pub mod sd_notify;

pub use launch::{Daemonize, Handshake, Health, LaunchError, Role, daemonize, launch};
