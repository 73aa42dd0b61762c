//! Keeping services alive: spawning children, reaping them, stopping
//! process groups, and the per-service state machine.

pub mod proc;
pub mod reaper;
pub mod service;
pub mod spawn;
pub mod state;
pub mod stop;

#[cfg(test)]
mod process_tests;
