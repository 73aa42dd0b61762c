//! `vigil reload` and `vigil shutdown`: the running instance as a whole.

use std::time::{Duration, Instant};

use crate::cli::{ControlArgs, ShutdownArgs};
use crate::commands::Exit;
use crate::commands::control::{client, fail};
use crate::procfs;

pub async fn reload(args: ControlArgs) -> Exit {
    match client(&args).reload().await {
        Ok(_) => {
            println!("reloaded");
            Exit::Ok
        }
        Err(e) => fail("reload", &e),
    }
}

/// Ask for a shutdown, then wait until the process is gone.
pub async fn shutdown(args: ShutdownArgs) -> Exit {
    let client = client(&args.control);
    let deadline = Instant::now() + args.timeout;
    let pid = match tokio::time::timeout(args.timeout, client.shutdown()).await {
        Ok(Ok(pid)) => pid,
        Ok(Err(e)) => return fail("shutdown", &e),
        Err(_) => {
            eprintln!(
                "vigil shutdown: vigil did not stop its services within {:?}; it is still running",
                args.timeout
            );
            return Exit::Failed;
        }
    };
    // Its services are stopped; the process exits right after. A zombie
    // (exited, not yet reaped by its parent) counts as gone.
    let Ok(raw) = i32::try_from(pid) else {
        return Exit::Failed;
    };
    while procfs::stat(raw).is_some_and(|s| s.state != 'Z') {
        if Instant::now() >= deadline {
            eprintln!(
                "vigil shutdown: vigil (pid {pid}) stopped its services but is still running after {:?}",
                args.timeout
            );
            return Exit::Failed;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("vigil (pid {pid}) has shut down");
    Exit::Ok
}
