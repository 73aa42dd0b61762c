//! What a reload does to each service, as a pure plan.
//!
//! From the running set and the new manifests; applied by
//! [`Supervisor::reload`](super::Supervisor::reload).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::state::Status;
use crate::config::Service;

/// One step of a reload, for one service.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// New: started (after its `after` list) once the plan is applied.
    Add(Service),
    /// The same manifest: its checks and loader are loaded again (a
    /// `.wasm` may have changed under it), the child is left alone.
    /// `journal`: the change is worth a `reloaded` line (the service's
    /// files changed on disk, as opposed to a reload of everything).
    Forget { name: String, journal: bool },
    /// A changed manifest: the task runs the new definition from now on.
    /// `command_changed`: what of the child's definition changed (argv,
    /// environment, cwd, ...: "command and env changed"), so the child
    /// must be replaced; `restart`: and it was not stopped by an operator.
    Update {
        service: Service,
        command_changed: Option<String>,
        restart: bool,
    },
    /// Gone from the directory: stopped, then its task retired.
    Remove { name: String },
}

impl Action {
    /// The service the step is about.
    pub fn name(&self) -> &str {
        match self {
            Action::Add(service) | Action::Update { service, .. } => &service.name,
            Action::Forget { name, .. } | Action::Remove { name } => name,
        }
    }

    /// The `change` of the step's `reloaded` journal line, if it has one.
    pub fn change(&self) -> Option<String> {
        let change = match self {
            Action::Add(_) => "added",
            Action::Forget { journal: true, .. } => "checks or loader reloaded",
            Action::Forget { journal: false, .. } => return None,
            Action::Update {
                command_changed: Some(what),
                restart,
                ..
            } => {
                let then = if *restart {
                    "restarting"
                } else {
                    "stopped by an operator: not restarted"
                };
                return Some(format!("{what}: {then}"));
            }
            Action::Update { .. } => "checks or policy changed",
            Action::Remove { .. } => "removed: stopping",
        };
        Some(change.to_string())
    }
}

/// The steps that take the running services (`current`: each one's
/// definition and status) to `new`, in the order of `new`, removals last.
/// `touched` names the services whose files changed on disk; `None`
/// (SIGHUP, `vigil reload`) counts every service as touched.
///
/// An operator's stop holds across reloads: a stopped service whose
/// command changed gets its new definition, not a restart.
pub fn plan(
    current: &BTreeMap<String, (Arc<Service>, Status)>,
    new: Vec<Service>,
    touched: Option<&BTreeSet<String>>,
) -> Vec<Action> {
    let names: BTreeSet<String> = new.iter().map(|s| s.name.clone()).collect();
    let mut actions = Vec::new();
    for service in new {
        match current.get(&service.name) {
            None => actions.push(Action::Add(service)),
            Some((old, _)) if **old == service => {
                // Files are touched by service directory: a replica's group.
                let was_touched = touched.is_none_or(|t| t.contains(service.group()));
                if was_touched {
                    actions.push(Action::Forget {
                        name: service.name,
                        journal: touched.is_some(),
                    });
                }
            }
            Some((old, status)) => {
                let command_changed = old
                    .needs_restart_for(&service)
                    .then(|| restart_change(old, &service));
                actions.push(Action::Update {
                    restart: command_changed.is_some() && *status != Status::Stopped,
                    command_changed,
                    service,
                });
            }
        }
    }
    for name in current.keys().filter(|n| !names.contains(*n)) {
        actions.push(Action::Remove { name: name.clone() });
    }
    actions
}

/// What of a service's definition changed that needs a new child, in words
/// for the journal ("command changed", "command, env and cwd changed").
pub fn restart_change(old: &Service, new: &Service) -> String {
    let parts = [
        ("command", old.command != new.command),
        (
            "env",
            old.env != new.env || old.inherit_env != new.inherit_env,
        ),
        ("cwd", old.cwd != new.cwd),
        ("loader", old.loader.is_some() != new.loader.is_some()),
        ("notify", old.notify != new.notify),
        ("executable", old.executable != new.executable),
        ("limits", old.limits != new.limits),
        ("binary", old.program_build != new.program_build),
    ];
    let changed: Vec<&str> = parts
        .iter()
        .filter(|(_, changed)| *changed)
        .map(|(name, _)| *name)
        .collect();
    match changed.split_last() {
        None => "definition changed".into(),
        Some((last, [])) => format!("{last} changed"),
        Some((last, rest)) => format!("{} and {last} changed", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::loop_tests::service;

    fn running(services: &[(&Service, Status)]) -> BTreeMap<String, (Arc<Service>, Status)> {
        services
            .iter()
            .map(|(s, status)| (s.name.clone(), (Arc::new((*s).clone()), *status)))
            .collect()
    }

    fn touched(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn new_services_are_added_and_gone_ones_removed_last() {
        let keep = service("keep", &["true"]);
        let gone = service("gone", &["true"]);
        let fresh = service("fresh", &["true"]);
        let current = running(&[(&gone, Status::Ready), (&keep, Status::Ready)]);
        let actions = plan(
            &current,
            vec![fresh.clone(), keep.clone()],
            Some(&touched(&[])),
        );
        assert_eq!(
            actions,
            vec![
                Action::Add(fresh),
                Action::Remove {
                    name: "gone".into()
                },
            ]
        );
        assert_eq!(actions[0].change().as_deref(), Some("added"));
        assert_eq!(actions[1].change().as_deref(), Some("removed: stopping"));
    }

    #[test]
    fn an_unchanged_service_reloads_its_checks_only_when_touched() {
        let a = service("a", &["true"]);
        let b = service("b", &["true"]);
        let current = running(&[(&a, Status::Ready), (&b, Status::Ready)]);
        let actions = plan(&current, vec![a.clone(), b.clone()], Some(&touched(&["b"])));
        assert_eq!(
            actions,
            vec![Action::Forget {
                name: "b".into(),
                journal: true
            }]
        );
        assert_eq!(
            actions[0].change().as_deref(),
            Some("checks or loader reloaded")
        );
        // A reload of everything reloads every check, and says nothing of it.
        let all = plan(&current, vec![a, b], None);
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|a| matches!(
            a,
            Action::Forget { journal: false, .. }
        ) && a.change().is_none()));
    }

    #[test]
    fn a_changed_command_restarts_a_changed_policy_does_not() {
        let a = service("a", &["sleep", "1"]);
        let b = service("b", &["true"]);
        let current = running(&[(&a, Status::Ready), (&b, Status::Ready)]);
        let new_a = service("a", &["sleep", "2"]);
        let mut new_b = b.clone();
        new_b.stop_grace *= 2;
        let actions = plan(&current, vec![new_a.clone(), new_b.clone()], None);
        assert_eq!(
            actions,
            vec![
                Action::Update {
                    service: new_a,
                    command_changed: Some("command changed".into()),
                    restart: true
                },
                Action::Update {
                    service: new_b,
                    command_changed: None,
                    restart: false
                },
            ]
        );
        assert_eq!(
            actions[0].change().as_deref(),
            Some("command changed: restarting")
        );
        assert_eq!(
            actions[1].change().as_deref(),
            Some("checks or policy changed")
        );
    }

    #[test]
    fn an_operators_stop_holds_across_reloads() {
        let a = service("a", &["sleep", "1"]);
        let current = running(&[(&a, Status::Stopped)]);
        let new_a = service("a", &["sleep", "2"]);
        assert_eq!(
            plan(&current, vec![new_a.clone()], None),
            vec![Action::Update {
                service: new_a,
                command_changed: Some("command changed".into()),
                restart: false
            }]
        );
    }

    #[test]
    fn a_restart_says_what_changed() {
        let old = service("a", &["sleep", "1"]);
        let mut new = service("a", &["sleep", "2"]);
        assert_eq!(restart_change(&old, &new), "command changed");
        new.env.push(("A".into(), "1".into()));
        new.cwd = "/".into();
        assert_eq!(restart_change(&old, &new), "command, env and cwd changed");
    }
}
