//! Checks across services: every `after` names a service, and no cycles.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{MANIFEST, Service};
use super::problems::{Problem, did_you_mean};
use super::replicas::split_name;

/// The group `name` belongs to when it names one replica of a replicated
/// service in `services` (`web@1` with `instances = 3`); `None` when it
/// names no replica.
fn replica_group<'a>(name: &'a str, services: &[Service]) -> Option<&'a str> {
    let (parent, index) = split_name(name)?;
    services
        .iter()
        .any(|s| {
            s.replica
                .as_ref()
                .is_some_and(|r| r.parent == parent && index < r.instances)
        })
        .then_some(parent)
}

/// Report `after` entries that name no service directory (with a
/// suggestion) and each dependency cycle once. `names` holds every service
/// directory, valid or not, so that a broken dependency is not also
/// reported as unknown. A replicated service is one node (its group): `web`
/// and `web@1` both name it.
pub(super) fn check_dependencies(
    services: &[Service],
    names: &BTreeSet<String>,
    problems: &mut Vec<Problem>,
) {
    let known: Vec<&str> = names.iter().map(String::as_str).collect();
    for s in services {
        for a in &s.after {
            if !names.contains(a) && replica_group(a, services).is_none() {
                let key = if s.requires.contains(a) {
                    "requires"
                } else {
                    "after"
                };
                let fix = match did_you_mean(a, &known) {
                    Some(m) => format!("did you mean \"{m}\"?"),
                    None => format!("create the service directory `{a}` or remove it from `{key}`"),
                };
                problems.push(Problem {
                    path: s.dir.join(MANIFEST),
                    field: key.into(),
                    problem: format!("unknown service \"{a}\""),
                    fix,
                });
            }
        }
    }
    // Cycles: depth-first search, reporting each cycle once.
    let by_name: BTreeMap<&str, &Service> = services.iter().map(|s| (s.group(), s)).collect();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut reported: BTreeSet<Vec<String>> = BTreeSet::new();
    fn visit<'a>(
        name: &'a str,
        by_name: &BTreeMap<&'a str, &'a Service>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
        cycles: &mut Vec<Vec<String>>,
    ) {
        if done.contains(name) {
            return;
        }
        if let Some(pos) = stack.iter().position(|n| *n == name) {
            let mut cycle: Vec<String> = stack[pos..].iter().map(|s| s.to_string()).collect();
            cycle.push(name.to_string());
            cycles.push(cycle);
            return;
        }
        let Some(s) = by_name.get(name) else { return };
        stack.push(name);
        for a in &s.after {
            let a = by_name
                .keys()
                .find(|n| split_name(a).is_some_and(|(parent, _)| parent == **n))
                .copied()
                .unwrap_or(a);
            visit(a, by_name, stack, done, cycles);
        }
        stack.pop();
        done.insert(name);
    }
    let mut cycles = Vec::new();
    for name in by_name.keys() {
        visit(name, &by_name, &mut Vec::new(), &mut done, &mut cycles);
    }
    for cycle in cycles {
        // Normalise the rotation so the same cycle is reported once.
        if cycle.len() <= 2 {
            continue; // `after = [itself]`, reported on its own
        }
        let mut key: Vec<String> = cycle[..cycle.len() - 1].to_vec();
        key.sort();
        if !reported.insert(key) {
            continue;
        }
        let first = &cycle[0];
        if let Some(s) = by_name.get(first.as_str()) {
            problems.push(Problem {
                path: s.dir.join(MANIFEST),
                field: "after".into(),
                problem: format!("dependency cycle: {}", cycle.join(" -> ")),
                fix: "remove one of these `after` entries".into(),
            });
        }
    }
}
