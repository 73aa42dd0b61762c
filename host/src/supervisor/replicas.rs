//! Replicas (`instances = N`, config/replicas.rs) in the supervisor: a
//! group name standing for every replica, and `vigil scale`.
//!
//! Each replica is a service of its own here; what is added is the count
//! an operator asked for ([`Targets`]), which outlives reloads until the
//! manifest's own `instances` changes, and the scale itself: new replicas
//! are made from a running one's template and started, surplus ones are
//! stopped highest index first and retired.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::Supervisor;
use super::service::{Event, Why};
use super::state::Status;
use super::task::Msg;
use crate::config::replicas::{MAX_INSTANCES, instantiate, split_name};
use crate::config::{Problem, Service};
use crate::journal::{Cause, Event as Journal};
use crate::sync::RwLockExt;

/// `vigil scale` counts, by group (service directory).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Targets(BTreeMap<String, Target>);

/// One group's scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Target {
    /// The manifest's `instances` when it was scaled: once a reload reads
    /// another number there, that number is the target again.
    manifest: u32,
    count: u32,
}

impl Targets {
    /// The count `vigil scale` set for `group`, while it holds.
    pub fn get(&self, group: &str) -> Option<u32> {
        self.0.get(group).map(|t| t.count)
    }
}

/// For a reload: the services of the directory (`new`, each replicated
/// one with the manifest's count of replicas) with every scaled group
/// brought to its scale instead. A group whose manifest now says another
/// `instances` (or none, or that is gone) drops its scale. Problems making
/// a replica (an address a higher index makes invalid) are returned; the
/// group then runs as many as could be made.
pub fn retarget(targets: &mut Targets, new: Vec<Service>) -> (Vec<Service>, Vec<Problem>) {
    let mut groups: BTreeMap<String, Vec<Service>> = BTreeMap::new();
    let mut order: Vec<Result<Service, String>> = Vec::new();
    for s in new {
        match &s.replica {
            Some(r) if targets.0.contains_key(&r.parent) => {
                let parent = r.parent.clone();
                if !groups.contains_key(&parent) {
                    order.push(Err(parent.clone()));
                }
                groups.entry(parent).or_default().push(s);
            }
            _ => order.push(Ok(s)),
        }
    }
    targets.0.retain(|group, target| {
        groups.get(group).and_then(|g| g.first()).is_some_and(|s| {
            s.replica
                .as_ref()
                .is_some_and(|r| r.instances == target.manifest)
        })
    });
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for item in order {
        let parent = match item {
            Ok(s) => {
                out.push(s);
                continue;
            }
            Err(parent) => parent,
        };
        let mut members = groups.remove(&parent).unwrap_or_default();
        let Some(count) = targets.get(&parent) else {
            out.append(&mut members);
            continue;
        };
        members.sort_by_key(|s| s.replica.as_ref().map_or(0, |r| r.index));
        members.truncate(count as usize);
        let have = members.len() as u32;
        if let Some(first) = members.first().cloned() {
            for index in have..count {
                match instantiate(&first, index) {
                    Ok(s) => members.push(s),
                    Err(p) => {
                        problems.push(p);
                        break;
                    }
                }
            }
        }
        out.append(&mut members);
    }
    (out, problems)
}

/// Why `vigil scale` refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScaleError {
    #[error("no service `{0}`")]
    Unknown(String),
    #[error(
        "`{0}` has no `instances` in its manifest; add `instances = 1` (it is then named {0}@0) to scale it"
    )]
    NotReplicated(String),
    #[error("`{name}` is one replica; scale its service: vigil scale {group} N")]
    OneReplica { name: String, group: String },
    #[error("0 replicas: use `vigil stop {0}` to stop every replica")]
    Zero(String),
    #[error("{0} replicas, at most {MAX_INSTANCES}")]
    TooMany(u32),
    #[error("{0}")]
    Replica(String),
}

/// What a scale did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scaled {
    pub service: String,
    pub from: u32,
    pub to: u32,
    /// The replicas now, by index.
    pub replicas: Vec<String>,
}

impl Supervisor {
    /// The services `name` stands for: itself, or every replica of the
    /// group `name`, by index.
    pub fn members(&self, name: &str) -> Vec<Arc<Service>> {
        let services = self.shared.services.read_unpoisoned();
        if let Some(h) = services.get(name) {
            return vec![h.service.clone()];
        }
        let mut members: Vec<Arc<Service>> = services
            .values()
            .filter(|h| h.service.answers_to(name))
            .map(|h| h.service.clone())
            .collect();
        members.sort_by_key(|s| s.replica.as_ref().map_or(0, |r| r.index));
        members
    }

    /// `vigil scale GROUP COUNT`: run `count` replicas of `group` from now
    /// on, starting the missing ones (each by its own `after` list) or
    /// stopping the highest ones first, and keep that count across
    /// reloads until the manifest's `instances` changes.
    pub async fn scale(&self, group: &str, count: u32) -> Result<Scaled, ScaleError> {
        let mut targets = self.shared.targets.lock().await;
        let members: Vec<Arc<Service>> = self
            .members(group)
            .into_iter()
            .filter(|s| s.replica.as_ref().is_some_and(|r| r.parent == group))
            .collect();
        let Some(first) = members.first().cloned() else {
            return Err(match (self.service(group), split_name(group)) {
                (Some(s), _) => match &s.replica {
                    Some(r) => ScaleError::OneReplica {
                        name: group.to_string(),
                        group: r.parent.clone(),
                    },
                    None => ScaleError::NotReplicated(group.to_string()),
                },
                (None, _) => ScaleError::Unknown(group.to_string()),
            });
        };
        if count == 0 {
            return Err(ScaleError::Zero(group.to_string()));
        }
        if count > MAX_INSTANCES {
            return Err(ScaleError::TooMany(count));
        }
        let from = members.len() as u32;
        let manifest = first.replica.as_ref().map_or(from, |r| r.instances);
        if count > from {
            let mut added = Vec::new();
            for index in from..count {
                let s =
                    instantiate(&first, index).map_err(|p| ScaleError::Replica(p.to_string()))?;
                added.push(s);
            }
            self.journal(Some(group), &Journal::Scaled { from, to: count });
            self.start(added);
        } else if count < from {
            self.journal(Some(group), &Journal::Scaled { from, to: count });
            let surplus: Vec<String> = members[count as usize..]
                .iter()
                .rev()
                .map(|s| s.name.clone())
                .collect();
            let why = Why::new(Cause::Scale, format!("vigil scale {group} {count}"));
            self.retire(&surplus, why).await;
        }
        targets
            .0
            .insert(group.to_string(), Target { manifest, count });
        let replicas = self.members(group).iter().map(|s| s.name.clone()).collect();
        Ok(Scaled {
            service: group.to_string(),
            from,
            to: count,
            replicas,
        })
    }

    /// Stop `names` (in that order: each is stopping before the next is
    /// told, so the journal shows the order; their graces then run
    /// together) and retire them. They leave the table first, so that a
    /// service with `requires` or `after` on their group goes on with the
    /// rest of it rather than being stopped with them.
    pub(super) async fn retire(&self, names: &[String], why: Why) {
        let handles: Vec<_> = {
            let mut map = self.shared.services.write_unpoisoned();
            names.iter().filter_map(|n| map.remove(n)).collect()
        };
        for h in &handles {
            let _ = h.tx.send(Msg::Event(Event::Stop(why.clone())));
            // What waited on the group re-judges it without this one.
            self.shared.notify_dependents(&h.service.name);
            let mut rx = h.snapshot.clone();
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                rx.wait_for(|s| s.status == Status::Stopping || s.status.is_down()),
            )
            .await;
        }
        let limit = Duration::from_secs(60);
        for h in handles {
            let mut rx = h.snapshot.clone();
            let _ = tokio::time::timeout(limit, rx.wait_for(|s| s.status.is_down())).await;
            let _ = h.tx.send(Msg::Retire);
            self.shared.sockets.release(&h.service.name);
            self.shared.probes.forget(&h.service.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::replicas::replica_name;

    /// A directory with `web` (3 replicas by its manifest) and `db`.
    fn loaded(instances: u32) -> Vec<Service> {
        let scratch = crate::test_support::TempDir::new("retarget");
        let dir = scratch.0.clone();
        for (name, text) in [
            (
                "web",
                format!(
                    "command = [\"sleep\", \"1{{instance}}\"]\ninstances = {instances}\n\
                     [sockets.http]\nlisten = \"127.0.0.1:80{{instance}}\"\n"
                ),
            ),
            ("db", "command = [\"sleep\", \"1\"]\n".to_string()),
        ] {
            std::fs::create_dir_all(dir.join(name)).expect("mkdir");
            std::fs::write(dir.join(name).join("service.toml"), text).expect("write");
        }
        crate::config::load_dir(&dir).expect("valid").services
    }

    fn names(services: &[Service]) -> Vec<String> {
        services.iter().map(|s| s.name.clone()).collect()
    }

    #[test]
    fn a_scale_holds_across_reloads_until_the_manifest_count_changes() {
        let mut targets = Targets::default();
        // No scale: the manifest's count.
        let (out, problems) = retarget(&mut targets, loaded(3));
        assert!(problems.is_empty());
        assert_eq!(names(&out), ["db", "web@0", "web@1", "web@2"]);

        // Scaled to 5 while the manifest says 3: a reload keeps 5, the
        // new ones made from the template (argv and address).
        targets.0.insert(
            "web".into(),
            Target {
                manifest: 3,
                count: 5,
            },
        );
        let (out, _) = retarget(&mut targets, loaded(3));
        assert_eq!(
            names(&out),
            ["db", "web@0", "web@1", "web@2", "web@3", "web@4"]
        );
        let web4 = &out[5];
        assert_eq!(
            web4.command.as_deref(),
            Some(&["sleep".to_string(), "14".to_string()][..])
        );
        assert_eq!(web4.sockets.list[0].listen.to_string(), "127.0.0.1:804");
        assert!(web4.env.contains(&("VIGIL_INSTANCE".into(), "4".into())));

        // Scaled down to 1: a reload keeps 1.
        targets.0.insert(
            "web".into(),
            Target {
                manifest: 3,
                count: 1,
            },
        );
        let (out, _) = retarget(&mut targets, loaded(3));
        assert_eq!(names(&out), ["db", "web@0"]);

        // The manifest now says 2: that is the target again.
        let (out, _) = retarget(&mut targets, loaded(2));
        assert_eq!(names(&out), ["db", "web@0", "web@1"]);
        assert_eq!(targets.get("web"), None);
        assert_eq!(replica_name("web", 1), "web@1");
    }

    #[test]
    fn an_address_a_higher_index_breaks_stops_the_scale_there() {
        let mut targets = Targets::default();
        targets.0.insert(
            "web".into(),
            Target {
                manifest: 3,
                count: 1000,
            },
        );
        // 127.0.0.1:80{instance} with 1000 is port 801000.
        let (out, problems) = retarget(&mut targets, loaded(3));
        assert_eq!(out.len(), 1 + 100, "web@0..=web@99 and db");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].to_string().contains("sockets.http.listen"),
            "{}",
            problems[0]
        );
    }
}
