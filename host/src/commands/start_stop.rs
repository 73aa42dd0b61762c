//! `vigil start|stop|restart|replace NAME`: one service of a running vigil.

use crate::cli::ServiceArgs;
use crate::commands::Exit;
use crate::commands::control::{client, fail};
use crate::commands::status::uptime;

/// Which operator command.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    Start,
    Stop,
    Restart,
    Replace,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
            Action::Replace => "replace",
        }
    }
}

/// Send the command and wait until the service settled (stopped, or a new
/// child running); print where it is.
pub async fn run(action: Action, args: ServiceArgs) -> Exit {
    let client = client(&args.control);
    let result = match action {
        Action::Start => client.start(&args.name).await,
        Action::Stop => client.stop(&args.name).await,
        Action::Restart => client.restart(&args.name).await,
        Action::Replace => client.replace(&args.name).await,
    };
    match result {
        Ok(applied) if !applied.replicas.is_empty() => {
            // A replicated service's name: one line per replica.
            for s in &applied.replicas {
                let name = crate::untrusted::line(&s.name);
                let pid = s.pid.map(|p| format!(" pid {p}")).unwrap_or_default();
                println!("{name}: {}{pid}", s.state);
            }
            if applied.settled {
                Exit::Ok
            } else {
                eprintln!(
                    "vigil {}: {} has not settled yet",
                    action.name(),
                    crate::untrusted::line(&args.name)
                );
                Exit::Failed
            }
        }
        Ok(applied) => {
            let s = &applied.service;
            let name = crate::untrusted::line(&s.name);
            let pid = s.pid.map(|p| format!(" pid {p}")).unwrap_or_default();
            let up = s
                .uptime_secs
                .map(|u| format!(", up {}", uptime(u)))
                .unwrap_or_default();
            if applied.settled && !s.waiting_for.is_empty() {
                // A start or restart waits for `after`: say for what.
                let names: Vec<String> = s
                    .waiting_for
                    .iter()
                    .map(|n| crate::untrusted::line(n).into_owned())
                    .collect();
                println!(
                    "{name}: waiting for {} (it starts once they are ready)",
                    names.join(", ")
                );
                Exit::Ok
            } else if let (Action::Replace, Some(reason)) = (action, &s.replace_failed) {
                // The old child kept serving.
                eprintln!(
                    "vigil replace: {name}: the new child was not kept: {}; still{pid}",
                    crate::untrusted::line(reason)
                );
                Exit::Failed
            } else if applied.settled {
                println!("{name}: {}{pid}{up}", s.state);
                Exit::Ok
            } else {
                eprintln!(
                    "vigil {}: {name} has not settled yet; it is {}{pid}",
                    action.name(),
                    s.state
                );
                Exit::Failed
            }
        }
        Err(e) => fail(action.name(), &e),
    }
}
