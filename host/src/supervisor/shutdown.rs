//! The order and time bounds of stopping every service, as a pure plan.
//!
//! Dependents first, each service within its own bound.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Service;

/// Beyond its stop grace, what a stop may still take: the SIGKILL that
/// ends the grace, the reap, and the rest of the group going (see
/// `stop::stop_group`, which waits up to a second for that after the
/// kill), with room for a loaded machine.
pub const STOP_SLACK: Duration = Duration::from_secs(5);

/// How one service is stopped at shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub name: String,
    /// Services with `after = [name]`, which go down first.
    pub dependents: Vec<String>,
    /// How long to wait for the dependents: until the slowest chain of
    /// them can be down, each of its services within its own
    /// [`limit`](Stop::limit) after the ones above it. Past that, a
    /// dependent that still runs no longer holds this one up.
    pub wait_dependents: Duration,
    /// How long this service's own stop may take: its grace and
    /// [`STOP_SLACK`].
    pub limit: Duration,
}

/// One [`Stop`] for each of `services`, in their order (they all run at
/// once, each waiting for its dependents).
pub fn plan(services: &[Arc<Service>]) -> Vec<Stop> {
    // `after = ["web"]` waits for every replica of `web`: each is stopped
    // after its dependents.
    let dependents = |of: &Service| -> Vec<String> {
        services
            .iter()
            .filter(|d| d.after.iter().any(|a| of.answers_to(a)))
            .map(|d| d.name.clone())
            .collect()
    };
    let by_name: BTreeMap<&str, &Service> =
        services.iter().map(|s| (s.name.as_str(), &**s)).collect();
    let mut down_by = BTreeMap::new();
    services
        .iter()
        .map(|s| {
            let dependents = dependents(s);
            let wait_dependents = dependents
                .iter()
                .map(|d| down_within(d, &by_name, &mut down_by, &mut Vec::new()))
                .max()
                .unwrap_or(Duration::ZERO);
            Stop {
                name: s.name.clone(),
                dependents,
                wait_dependents,
                limit: limit(s),
            }
        })
        .collect()
}

fn limit(service: &Service) -> Duration {
    // A stop ends once its post-stop hook has (the pre-stop hook runs
    // within the grace).
    service
        .stop_grace
        .saturating_add(STOP_SLACK)
        .saturating_add(service.hooks.post_stop_timeout())
}

/// From the start of the shutdown, how long until `name` is down at the
/// latest: its dependents' bound, then its own limit. `path` holds the
/// services being computed, so a cycle (which validation refuses) ends
/// instead of recursing forever.
fn down_within(
    name: &str,
    services: &BTreeMap<&str, &Service>,
    memo: &mut BTreeMap<String, Duration>,
    path: &mut Vec<String>,
) -> Duration {
    if let Some(known) = memo.get(name) {
        return *known;
    }
    let Some(service) = services.get(name) else {
        return Duration::ZERO;
    };
    if path.iter().any(|p| p == name) {
        return Duration::ZERO;
    }
    path.push(name.to_owned());
    let dependents: Vec<&str> = services
        .values()
        .filter(|d| d.after.iter().any(|a| service.answers_to(a)))
        .map(|d| d.name.as_str())
        .collect();
    let above = dependents
        .into_iter()
        .map(|d| down_within(d, services, memo, path))
        .max()
        .unwrap_or(Duration::ZERO);
    path.pop();
    let bound = above.saturating_add(limit(service));
    memo.insert(name.to_owned(), bound);
    bound
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::loop_tests::service;

    fn with(name: &str, grace_secs: u64, after: &[&str]) -> Arc<Service> {
        let mut s = service(name, &["true"]);
        s.stop_grace = Duration::from_secs(grace_secs);
        s.after = after.iter().map(|a| a.to_string()).collect();
        Arc::new(s)
    }

    #[test]
    fn dependents_go_first_within_the_bound_of_their_slowest_chain() {
        // db <- api <- web, and db <- cron.
        let services = [
            with("db", 10, &[]),
            with("api", 2, &["db"]),
            with("web", 1, &["api"]),
            with("cron", 0, &["db"]),
        ];
        let secs = Duration::from_secs;
        let slack = STOP_SLACK;
        let plan = plan(&services);
        let stop = |name: &str| plan.iter().find(|s| s.name == name).expect("planned");
        assert_eq!(plan.len(), 4);
        assert_eq!(stop("web").dependents, Vec::<String>::new());
        assert_eq!(stop("web").wait_dependents, Duration::ZERO);
        assert_eq!(stop("web").limit, secs(1) + slack);
        assert_eq!(stop("api").dependents, vec!["web".to_string()]);
        assert_eq!(stop("api").wait_dependents, secs(1) + slack);
        assert_eq!(stop("api").limit, secs(2) + slack);
        assert_eq!(
            stop("db").dependents,
            vec!["api".to_string(), "cron".to_string()]
        );
        // The web -> api chain is slower than cron.
        assert_eq!(stop("db").wait_dependents, secs(3) + slack * 2);
        assert_eq!(stop("db").limit, secs(10) + slack);
    }

    #[test]
    fn a_cycle_ends_the_count() {
        let services = [with("a", 1, &["b"]), with("b", 1, &["a"])];
        let plan = plan(&services);
        assert_eq!(plan.len(), 2);
        assert!(
            plan.iter()
                .all(|s| s.wait_dependents <= (Duration::from_secs(1) + STOP_SLACK) * 2)
        );
    }
}
