//! `instances = N`: one service directory, N services `NAME@0..N-1`.
//!
//! A replica is a service of its own to the supervisor (its own child,
//! checks, restart policy state, log file, held sockets and journal
//! lines), so the expansion happens here, at load, and nothing downstream
//! needs to know about replicas except where a *name* may mean the whole
//! group: `after = ["web"]`, `vigil stop web`, `vigil scale web 3`. Those
//! read [`Replica::parent`] through [`Service::group`].
//!
//! `{instance}` in argv, env values, socket addresses and check or loader
//! config is the replica's index. The manifest is resolved once with the
//! placeholder kept (socket addresses with `0` in it, so that they parse),
//! and each replica is made from that template by [`instantiate`]: the
//! same function makes the replicas of a load and those `vigil scale` adds
//! later, from whichever replica it has at hand.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::model::{MANIFEST, Service};
use super::problems::{Collector, Problem};
use super::raw::RawService;
use super::sockets::Listen;
use crate::wasm::Phase;

/// What `{instance}` is replaced with in a replica's definition.
pub const PLACEHOLDER: &str = "{instance}";

/// The environment variable holding a replica's index.
pub const INSTANCE_ENV: &str = "VIGIL_INSTANCE";

/// Most replicas of one service (each is a task, a child, perhaps a
/// cgroup and sockets: a typo of `instances = 10000` should not fork that
/// many processes).
pub const MAX_INSTANCES: u32 = 1024;

/// Which replica of which service directory a service is.
#[derive(Debug, Clone, PartialEq)]
pub struct Replica {
    /// The service directory's name: what `after`, `vigil stop` and
    /// `vigil scale` name to mean every replica.
    pub parent: String,
    /// `{instance}` and `VIGIL_INSTANCE` of this replica.
    pub index: u32,
    /// `instances` as the manifest says it. `vigil scale` may run more or
    /// fewer; a reload that changes this number makes it the target again.
    pub instances: u32,
    /// The definition with `{instance}` still in it.
    template: Arc<Template>,
}

/// The parts of a definition `{instance}` may appear in, as written.
#[derive(Debug, PartialEq)]
struct Template {
    command: Option<Vec<String>>,
    env: Vec<(String, String)>,
    /// Socket name -> `listen` as written, for those with the placeholder.
    listen: BTreeMap<String, String>,
    /// Each phase's check config (`Phase::ALL` order).
    checks: [Vec<(String, String)>; 3],
    loader: Vec<(String, String)>,
}

/// The replica name of `parent`'s replica `index`: `web@0`.
pub fn replica_name(parent: &str, index: u32) -> String {
    format!("{parent}@{index}")
}

/// `web@3` -> (`web`, 3); `None` for a name that is not a replica's.
pub fn split_name(name: &str) -> Option<(&str, u32)> {
    let (parent, index) = name.rsplit_once('@')?;
    let index: u32 = index.parse().ok()?;
    // `web@03` is not the name of any replica.
    (!parent.is_empty() && index.to_string().len() == name.len() - parent.len() - 1)
        .then_some((parent, index))
}

/// What [`take`] kept of a raw manifest for [`finish`].
#[derive(Debug, Default)]
pub(super) struct Taken {
    instances: Option<u32>,
    listen: BTreeMap<String, String>,
}

/// Before a manifest is resolved: take `instances` out of it, and put `0`
/// for `{instance}` in its socket addresses so that they parse (a service
/// without `instances` is instance 0 there; elsewhere the placeholder of
/// such a service is left as written).
pub(super) fn take(raw: &mut RawService, c: &mut Collector<'_>) -> Taken {
    let instances = raw.instances.take();
    match instances {
        Some(0) => c.push(
            "instances",
            "0 instances",
            "to load a service without running it, use `autostart = false` (and `vigil start`)",
        ),
        Some(n) if n > MAX_INSTANCES => c.push(
            "instances",
            format!("{n} instances, at most {MAX_INSTANCES}"),
            "run fewer replicas per service directory",
        ),
        _ => {}
    }
    let mut listen = BTreeMap::new();
    for (name, socket) in raw.sockets.iter_mut().flatten() {
        if let Some(text) = socket.listen.as_mut()
            && text.contains(PLACEHOLDER)
        {
            listen.insert(name.clone(), text.clone());
            *text = text.replace(PLACEHOLDER, "0");
        }
    }
    Taken { instances, listen }
}

/// After the manifest resolved into `service`: a service with `instances`
/// becomes its replica 0 (with the template to make the others from);
/// reports what cannot work with several replicas.
pub(super) fn finish(taken: Taken, service: &mut Service, c: &mut Collector<'_>) {
    let Some(instances) = taken.instances.filter(|n| *n >= 1) else {
        return;
    };
    if instances > 1 {
        for socket in &service.sockets.list {
            let own_port = matches!(
                socket.listen,
                Listen::Tcp(a) | Listen::Udp(a) if a.port() == 0
            );
            if !taken.listen.contains_key(&socket.name) && !socket.reuseport && !own_port {
                c.push(
                    format!("sockets.{}.listen", socket.name),
                    format!(
                        "each of the {instances} replicas would bind `{}`",
                        socket.listen
                    ),
                    "put {instance} in the address (\"127.0.0.1:80{instance}\"), \
                     or share the port with `reuseport = true`",
                );
            }
        }
    }
    let checks = Phase::ALL.map(|phase| {
        service
            .checks
            .get(phase)
            .map(|spec| spec.config.clone())
            .unwrap_or_default()
    });
    let template = Template {
        command: service.command.clone(),
        env: service.env.clone(),
        listen: taken.listen,
        checks,
        loader: service
            .loader
            .as_ref()
            .map(|l| l.config.clone())
            .unwrap_or_default(),
    };
    service.replica = Some(Replica {
        parent: service.name.clone(),
        index: 0,
        instances,
        template: Arc::new(template),
    });
    match instantiate(service, 0) {
        Ok(first) => *service = first,
        Err(problem) => c.push(problem.field, problem.problem, problem.fix),
    }
}

/// Replica `index` of the service `of` is a replica of (any of its
/// replicas will do). `Err` when an address made with this index is not
/// one (`127.0.0.1:80{instance}` and replica 1000), with the problem as
/// the manifest's.
pub fn instantiate(of: &Service, index: u32) -> Result<Service, Problem> {
    let Some(replica) = &of.replica else {
        return Ok(of.clone());
    };
    let t = &replica.template;
    let n = index.to_string();
    let sub = |s: &String| s.replace(PLACEHOLDER, &n);
    let subst_pairs = |pairs: &[(String, String)]| -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.clone(), sub(v))).collect()
    };
    let mut s = of.clone();
    s.name = replica_name(&replica.parent, index);
    s.command = t
        .command
        .as_ref()
        .map(|argv| argv.iter().map(sub).collect());
    s.env = subst_pairs(&t.env);
    s.env.retain(|(k, _)| k != INSTANCE_ENV);
    s.env.push((INSTANCE_ENV.to_string(), n.clone()));
    for (phase, config) in Phase::ALL.into_iter().zip(&t.checks) {
        let spec = match phase {
            Phase::Startup => s.checks.startup.as_mut(),
            Phase::Readiness => s.checks.readiness.as_mut(),
            Phase::Liveness => s.checks.liveness.as_mut(),
        };
        if let Some(spec) = spec {
            spec.config = subst_pairs(config);
        }
    }
    if let Some(loader) = s.loader.as_mut() {
        loader.config = subst_pairs(&t.loader);
    }
    for socket in &mut s.sockets.list {
        if let Some(text) = t.listen.get(&socket.name) {
            let text = sub(text);
            socket.listen = Listen::parse(&text, &s.dir).map_err(|e| Problem {
                path: s.dir.join(MANIFEST),
                field: format!("sockets.{}.listen", socket.name),
                problem: format!("for replica {index}: {e}"),
                fix: "keep every replica's address valid (fewer replicas, or another pattern)"
                    .into(),
            })?;
        }
    }
    s.replica = Some(Replica {
        index,
        ..replica.clone()
    });
    Ok(s)
}

/// Every replica of `service` (its replica 0, from a load) the manifest
/// asks for; the service alone when it has no `instances`.
pub(super) fn expand(service: Service, problems: &mut Vec<Problem>) -> Vec<Service> {
    let Some(instances) = service.replica.as_ref().map(|r| r.instances) else {
        return vec![service];
    };
    let mut all = Vec::with_capacity(instances as usize);
    for index in 1..instances {
        match instantiate(&service, index) {
            Ok(s) => all.push(s),
            Err(p) => {
                problems.push(p);
                break;
            }
        }
    }
    all.insert(0, service);
    all
}

impl Service {
    /// The name that stands for this service in `after`, `vigil stop` and
    /// `vigil scale`: a replica's service directory, else its own name.
    pub fn group(&self) -> &str {
        self.replica.as_ref().map_or(&self.name, |r| &r.parent)
    }

    /// Whether `name` (from an `after` list, a command) names this service:
    /// its own name, or its group's.
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.replica.as_ref().is_some_and(|r| r.parent == name)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::load_dir;
    use crate::test_support::TempDir;

    fn write(root: &Path, name: &str, manifest: &str) {
        let d = root.join(name);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join(MANIFEST), manifest).expect("write manifest");
    }

    fn problems(root: &Path) -> Vec<String> {
        match load_dir(root) {
            Ok(_) => Vec::new(),
            Err(r) => r.problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn each_replica_gets_its_index_in_argv_env_sockets_and_check_config() {
        let t = TempDir::new("replicas-expand");
        write(
            &t.0,
            "web",
            "command = [\"serve\", \"--port=80{instance}\"]\ninstances = 3\n\
             env = { ID = \"web-{instance}\", VIGIL_INSTANCE = \"mine\" }\n\
             [sockets.http]\nlisten = \"127.0.0.1:90{instance}\"\n\
             [sockets.admin]\nlisten = \"unix:admin-{instance}.sock\"\n\
             [checks.readiness]\ncheck = \"builtin:http\"\n\
             [checks.readiness.config]\nurl = \"http://127.0.0.1:80{instance}/\"\n\
             [grants]\nhosts = [\"http://127.0.0.1:*\"]\n",
        );
        let services = load_dir(&t.0).expect("valid").services;
        let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["web@0", "web@1", "web@2"]);
        let web2 = &services[2];
        assert_eq!(
            web2.command.as_deref(),
            Some(&["serve".to_string(), "--port=802".to_string()][..])
        );
        assert_eq!(
            web2.env,
            [
                ("ID".to_string(), "web-2".to_string()),
                ("VIGIL_INSTANCE".to_string(), "2".to_string()),
            ]
        );
        assert_eq!(web2.sockets.list[0].listen.to_string(), "127.0.0.1:902");
        assert_eq!(
            web2.sockets.list[1].listen,
            Listen::Unix(std::path::absolute(t.0.join("web/admin-2.sock")).expect("absolute"))
        );
        let config = &web2.checks.readiness.as_ref().expect("readiness").config;
        assert_eq!(
            config,
            &[("url".to_string(), "http://127.0.0.1:802/".to_string())]
        );
        let r = web2.replica.as_ref().expect("a replica");
        assert_eq!((r.parent.as_str(), r.index, r.instances), ("web", 2, 3));
        assert_eq!(web2.group(), "web");
        assert!(web2.answers_to("web") && web2.answers_to("web@2") && !web2.answers_to("web@1"));
        // Any replica makes any other.
        assert_eq!(instantiate(web2, 0).expect("replica 0"), services[0]);
    }

    #[test]
    fn without_instances_the_placeholder_is_0_in_addresses_only() {
        let t = TempDir::new("replicas-none");
        write(
            &t.0,
            "web",
            "command = [\"echo\", \"{instance}\"]\n\
             [sockets.http]\nlisten = \"127.0.0.1:90{instance}\"\n",
        );
        let services = load_dir(&t.0).expect("valid").services;
        assert_eq!(services.len(), 1);
        let web = &services[0];
        assert_eq!(web.name, "web");
        assert_eq!(web.replica, None);
        assert_eq!(web.sockets.list[0].listen.to_string(), "127.0.0.1:900");
        assert_eq!(
            web.command.as_deref(),
            Some(&["echo".to_string(), "{instance}".to_string()][..])
        );
        assert!(web.env.is_empty());
    }

    #[test]
    fn what_cannot_be_replicated_is_reported() {
        let t = TempDir::new("replicas-bad");
        write(&t.0, "zero", "command = [\"true\"]\ninstances = 0\n");
        write(
            &t.0,
            "same",
            "command = [\"true\"]\ninstances = 2\n[sockets.http]\nlisten = \"127.0.0.1:9000\"\n",
        );
        write(&t.0, "web@1", "command = [\"true\"]\n");
        write(
            &t.0,
            "far",
            "command = [\"true\"]\ninstances = 2\nafter = [\"ok@2\"]\n",
        );
        write(&t.0, "ok", "command = [\"true\"]\ninstances = 2\n");
        let found = problems(&t.0);
        let has = |needle: &str| found.iter().any(|p| p.contains(needle));
        assert!(
            has("zero/service.toml:instances: 0 instances"),
            "{found:#?}"
        );
        assert!(has("autostart = false"), "{found:#?}");
        assert!(
            has("same/service.toml:sockets.http.listen: each of the 2 replicas would bind"),
            "{found:#?}"
        );
        assert!(has("`@` is reserved for replicas"), "{found:#?}");
        assert!(
            has("far/service.toml:after: unknown service \"ok@2\""),
            "{found:#?}"
        );
        assert_eq!(found.len(), 4, "{found:#?}");

        // Port 0 or reuseport: each replica binds on its own.
        let t = TempDir::new("replicas-shared");
        write(
            &t.0,
            "a",
            "command = [\"true\"]\ninstances = 2\n[sockets.http]\nlisten = \"127.0.0.1:0\"\n",
        );
        write(
            &t.0,
            "b",
            "command = [\"true\"]\ninstances = 2\nafter = [\"a@1\", \"a\"]\n\
             [sockets.http]\nlisten = \"127.0.0.1:9000\"\nreuseport = true\n",
        );
        assert_eq!(problems(&t.0), Vec::<String>::new());
    }

    #[test]
    fn a_cycle_through_a_replicated_service_is_found() {
        let t = TempDir::new("replicas-cycle");
        write(
            &t.0,
            "a",
            "command = [\"true\"]\ninstances = 2\nafter = [\"b\"]\n",
        );
        write(&t.0, "b", "command = [\"true\"]\nafter = [\"c\"]\n");
        write(&t.0, "c", "command = [\"true\"]\nafter = [\"a@1\"]\n");
        let found = problems(&t.0);
        assert!(
            found.iter().any(|p| p.contains("dependency cycle")),
            "{found:#?}"
        );
    }

    #[test]
    fn replica_names_split_back() {
        assert_eq!(split_name("web@3"), Some(("web", 3)));
        assert_eq!(split_name("web@03"), None);
        assert_eq!(split_name("web@"), None);
        assert_eq!(split_name("@1"), None);
        assert_eq!(split_name("web"), None);
        assert_eq!(replica_name("web", 3), "web@3");
    }
}
