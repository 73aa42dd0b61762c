//! What the client commands (`status`, `start`, `journal`, ...) share:
//! finding the socket and turning errors into messages and exit codes.

use std::path::PathBuf;

use super::Exit;
use crate::app::default_state_dir;
use crate::cli::ControlArgs;
use crate::control::{Client, ControlError};
use crate::untrusted;

/// The socket `args` point at: `--socket`, else `control.sock` in
/// `--state-dir` (or the default state directory, as `vigil run` uses).
pub fn socket(args: &ControlArgs) -> PathBuf {
    args.socket.clone().unwrap_or_else(|| {
        crate::control::socket_path(&args.state_dir.clone().unwrap_or_else(default_state_dir))
    })
}

pub fn client(args: &ControlArgs) -> Client {
    Client::new(socket(args))
}

/// Print `err` for `command` and return its exit code.
pub fn fail(command: &str, err: &ControlError) -> Exit {
    match err {
        ControlError::NotRunning { socket } => {
            eprintln!(
                "vigil {command}: no vigil is running (no control socket at {}); start one with `vigil run`, or point at it with --state-dir or --socket",
                socket.display()
            );
            Exit::NotRunning
        }
        ControlError::UnknownService { name, known, .. } => {
            let list = if known.is_empty() {
                "it runs no services".to_string()
            } else {
                format!("known services: {}", known.join(", "))
            };
            let problem = format!("no service named `{name}`; {list}");
            eprintln!("vigil {command}: {}", untrusted::line(&problem));
            Exit::UnknownService
        }
        // A refusal quotes what the daemon said (e.g. the problems of a
        // checks directory, with its directory names): escaped, line by line.
        other => {
            let problem = other.to_string();
            eprintln!("vigil {command}: {}", untrusted::block(&problem));
            Exit::Failed
        }
    }
}
