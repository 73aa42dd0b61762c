//! Vigil: a process supervisor whose health checks and restart policies are
//! WebAssembly components.
//!
//! The library is organised by concern: [`wasm`] runs checks and loaders in
//! a sandbox, [`supervisor`] keeps services alive, [`config`] turns service
//! directories into validated services, [`journal`] records what happened,
//! and [`untrusted`] makes what checks and services say safe to show;
//! [`app`] composes them into `vigil run`. ARCHITECTURE.md has the layers.

pub mod app;
pub mod cgroup;
pub mod cli;
pub mod commands;
pub mod config;
pub mod control;
pub mod daemon;
#[cfg(test)]
mod fuzz;
pub mod journal;
mod layers;
pub mod probe;
pub mod procfs;
pub mod replay;
pub mod signals;
pub mod supervisor;
pub mod sync;
pub mod tail;
#[cfg(test)]
mod test_support;
pub mod units;
pub mod untrusted;
pub mod wasm;
