//! `instances = N`: one service directory, N services `NAME@0..N-1`.
//!
//! A replica is a service of its own to the supervisor (its own child,
//! checks, restart policy state, log file, held sockets and journal
//! lines), so the expansion happens here, at load, and nothing downstream
//! needs to know about replicas except where a *name* may mean the whole
//! group: `after = ["web"]`, `vigil stop web`, `vigil scale web 3`. Those
//! read [`Replica::parent`] through [`Service::group`].
//!
//! `{instance}` in argv, env values, socket addresses, check or loader
//! config, hook commands and hook check config, and `[grants]` hosts and
//! paths is the replica's index. The manifest is resolved once with the
//! placeholder kept (socket addresses and host grants with `0` in it, so
//! that they parse),
//! and each replica is made from that template by [`instantiate`]: the
//! same function makes the replicas of a load and those `vigil scale` adds
//! later, from whichever replica it has at hand.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::hooks::{HookAction, HookKind};
use super::model::{GrantSpec, MANIFEST, Service};
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
    /// Each hook's argv (a command) or config (a check), `HookKind::ALL`
    /// order.
    hooks: [Option<HookAction>; 4],
    /// `[grants]` as written, when one of them has the placeholder: a
    /// replica's check must be allowed to reach its own port or file.
    grants: Option<GrantsTemplate>,
    /// `cwd` as written, when it has the placeholder.
    cwd: Option<String>,
    /// `env-file` as written, when one entry has the placeholder.
    env_files: Option<Vec<String>>,
}

/// `[grants]` hosts and paths as written.
#[derive(Debug, Default, PartialEq)]
struct GrantsTemplate {
    hosts: Vec<String>,
    /// Relative ones against the service directory, as at load.
    paths: Vec<String>,
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
    /// `[grants]` hosts and paths as written, when one has the placeholder.
    grants: Option<GrantsTemplate>,
    /// `cwd` and `env-file` as written (with `instances` only).
    cwd: Option<String>,
    env_files: Option<Vec<String>>,
}

/// Before a manifest is resolved: take `instances` out of it, and put `0`
/// for `{instance}` in its socket addresses and grants so that they parse
/// (a service without `instances` is instance 0 there, so that a grant
/// still matches the address; elsewhere the placeholder of such a service
/// is left as written).
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
    let mut grants = None;
    if let Some(g) = raw.grants.as_mut() {
        let has =
            |list: &Option<Vec<String>>| list.iter().flatten().any(|h| h.contains(PLACEHOLDER));
        if has(&g.hosts) || has(&g.paths) {
            grants = Some(GrantsTemplate {
                hosts: g.hosts.clone().unwrap_or_default(),
                paths: g.paths.clone().unwrap_or_default(),
            });
            for text in g.hosts.iter_mut().chain(g.paths.iter_mut()).flatten() {
                *text = text.replace(PLACEHOLDER, "0");
            }
        }
    }
    // `cwd` and `env-file` are checked at load (the directory exists, the
    // file parses): replica 0's then, each other one's as it is made.
    let mut cwd = None;
    let mut env_files = None;
    if instances.is_some() {
        if let Some(text) = raw.cwd.as_mut()
            && text.contains(PLACEHOLDER)
        {
            cwd = Some(text.clone());
            *text = text.replace(PLACEHOLDER, "0");
        }
        if let Some(list) = raw.env_file.as_mut()
            && list.iter().any(|f| f.contains(PLACEHOLDER))
        {
            env_files = Some(list.clone());
            for text in list.iter_mut() {
                *text = text.replace(PLACEHOLDER, "0");
            }
        }
    }
    Taken {
        instances,
        listen,
        grants,
        cwd,
        env_files,
    }
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
        hooks: HookKind::ALL.map(|kind| service.hooks.get(kind).map(|h| h.action.clone())),
        grants: taken.grants,
        cwd: taken.cwd,
        env_files: taken.env_files,
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
    for (kind, action) in HookKind::ALL.into_iter().zip(&t.hooks) {
        let hook = match kind {
            HookKind::PreStart => s.hooks.pre_start.as_mut(),
            HookKind::PostStart => s.hooks.post_start.as_mut(),
            HookKind::PreStop => s.hooks.pre_stop.as_mut(),
            HookKind::PostStop => s.hooks.post_stop.as_mut(),
        };
        if let (Some(hook), Some(action)) = (hook, action) {
            hook.action = match action {
                HookAction::Command(argv) => HookAction::Command(argv.iter().map(sub).collect()),
                HookAction::Check { check, config } => HookAction::Check {
                    check: check.clone(),
                    config: subst_pairs(config),
                },
            };
        }
    }
    if let Some(g) = &t.grants {
        let hosts: Vec<String> = g.hosts.iter().map(sub).collect();
        // Joined as `resolve_grants` does.
        let paths = g.paths.iter().map(|p| s.dir.join(sub(p))).collect();
        let output = s.grants.resolved().output();
        let mut grants = GrantSpec::new(hosts, paths, s.grants.memory).map_err(|errors| {
            let what: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            Problem {
                path: s.dir.join(MANIFEST),
                field: "grants".into(),
                problem: format!("for replica {index}: {}", what.join("; ")),
                fix: "keep every replica's grant valid (fewer replicas, or another pattern)".into(),
            }
        })?;
        grants.resolved = grants.resolved.with_output(output);
        s.grants = grants;
    }
    let problem = |field: String, problem: String, fix: &str| Problem {
        path: of.dir.join(MANIFEST),
        field,
        problem: format!("for replica {index}: {problem}"),
        fix: fix.into(),
    };
    if let Some(cwd) = &t.cwd {
        s.cwd = s.dir.join(sub(cwd));
        if !s.cwd.is_dir() {
            return Err(problem(
                "cwd".into(),
                format!("`{}` is not a directory", s.cwd.display()),
                "create each replica's directory (relative paths start at the service directory)",
            ));
        }
    }
    if let Some(entries) = &t.env_files {
        // One file per entry, in order (an empty entry is an error of
        // the manifest, so none was skipped).
        for (i, (entry, file)) in entries.iter().zip(&mut s.identity.env_files).enumerate() {
            if !entry.contains(PLACEHOLDER) {
                continue;
            }
            let written = entry.strip_prefix('-').unwrap_or(entry);
            file.path = s.dir.join(written.replace(PLACEHOLDER, &n));
            file.loaded = file.read().map_err(|e| {
                problem(
                    format!("env-file[{i}]"),
                    e.to_string(),
                    "create each replica's file, or prefix it with `-` to make it optional",
                )
            })?;
        }
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

/// What `{instance}` became in replica `s`: each value of its definition
/// written with the placeholder, as `(field, value)` in manifest terms
/// (`sockets.http.listen`, `127.0.0.1:8001`), for `vigil validate` to show
/// what each replica gets. Empty for a service that is not a replica.
pub fn expanded(s: &Service) -> Vec<(String, String)> {
    let Some(replica) = &s.replica else {
        return Vec::new();
    };
    let t = &replica.template;
    let n = replica.index.to_string();
    let has = |v: &str| v.contains(PLACEHOLDER);
    let sub = |v: &str| v.replace(PLACEHOLDER, &n);
    let mut out = Vec::new();
    let pairs = |out: &mut Vec<(String, String)>, prefix: &str, list: &[(String, String)]| {
        for (k, v) in list.iter().filter(|(_, v)| has(v)) {
            out.push((format!("{prefix}.{k}"), sub(v)));
        }
    };
    let argv = |argv: &[String]| argv.iter().map(|v| sub(v)).collect::<Vec<_>>().join(" ");
    if let Some(command) = t.command.as_ref().filter(|a| a.iter().any(|v| has(v))) {
        out.push(("command".into(), argv(command)));
    }
    if let Some(cwd) = &t.cwd {
        out.push(("cwd".into(), sub(cwd)));
    }
    for (i, entry) in t.env_files.iter().flatten().enumerate() {
        if has(entry) {
            out.push((format!("env-file[{i}]"), sub(entry)));
        }
    }
    pairs(&mut out, "env", &t.env);
    for (phase, config) in Phase::ALL.into_iter().zip(&t.checks) {
        pairs(&mut out, &format!("checks.{phase}.config"), config);
    }
    pairs(&mut out, "loader.config", &t.loader);
    for (kind, action) in HookKind::ALL.into_iter().zip(&t.hooks) {
        match action {
            Some(HookAction::Command(command)) if command.iter().any(|v| has(v)) => {
                out.push((format!("hooks.{kind}.command"), argv(command)));
            }
            Some(HookAction::Check { config, .. }) => {
                pairs(&mut out, &format!("hooks.{kind}.config"), config);
            }
            _ => {}
        }
    }
    for socket in &s.sockets.list {
        if t.listen.contains_key(&socket.name) {
            out.push((
                format!("sockets.{}.listen", socket.name),
                socket.listen.to_string(),
            ));
        }
    }
    if let Some(g) = &t.grants {
        for (field, list) in [("grants.hosts", &g.hosts), ("grants.paths", &g.paths)] {
            let shown: Vec<String> = list.iter().filter(|v| has(v)).map(|v| sub(v)).collect();
            if !shown.is_empty() {
                out.push((field.into(), shown.join(", ")));
            }
        }
    }
    out
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
    fn each_replica_gets_its_index_in_hooks_and_grants() {
        let t = TempDir::new("replicas-hooks-grants");
        write(
            &t.0,
            "web",
            "command = [\"serve\"]\ninstances = 2\n\
             [hooks.pre-start]\ncommand = [\"touch\", \"pre-{instance}\"]\n\
             [hooks.post-start]\ncheck = \"builtin:tcp\"\n\
             [hooks.post-start.config]\nport = \"90{instance}\"\n\
             [checks.readiness]\ncheck = \"builtin:tcp\"\n\
             [checks.readiness.config]\nport = \"90{instance}\"\n\
             [grants]\nhosts = [\"tcp://127.0.0.1:90{instance}\", \"tcp://db:5432\"]\n\
             paths = [\"beat-{instance}\"]\noutput = true\n",
        );
        let services = load_dir(&t.0).expect("valid").services;
        let web1 = &services[1];
        assert_eq!(
            web1.hooks.pre_start.as_ref().map(|h| &h.action),
            Some(&HookAction::Command(vec!["touch".into(), "pre-1".into()]))
        );
        match web1.hooks.post_start.as_ref().map(|h| &h.action) {
            Some(HookAction::Check { config, .. }) => {
                assert_eq!(config, &[("port".to_string(), "901".to_string())]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            web1.grants.hosts(),
            ["tcp://127.0.0.1:901", "tcp://db:5432"]
        );
        assert_eq!(web1.grants.paths(), [t.0.join("web/beat-1")]);
        assert!(web1.grants.resolved().output(), "output = true kept");
        assert_eq!(services[0].grants.hosts()[0], "tcp://127.0.0.1:900");
        // What validate shows of replica 1.
        let shown = expanded(web1);
        let has = |field: &str, value: &str| shown.iter().any(|(f, v)| f == field && v == value);
        assert!(has("hooks.pre-start.command", "touch pre-1"), "{shown:?}");
        assert!(has("hooks.post-start.config.port", "901"), "{shown:?}");
        assert!(has("checks.readiness.config.port", "901"), "{shown:?}");
        assert!(has("grants.hosts", "tcp://127.0.0.1:901"), "{shown:?}");
        assert!(has("grants.paths", "beat-1"), "{shown:?}");
        assert_eq!(shown.len(), 5, "{shown:?}");

        // Without `instances`: instance 0 in grants, as in addresses.
        let t = TempDir::new("replicas-grants-none");
        write(
            &t.0,
            "one",
            "command = [\"serve\"]\n[grants]\nhosts = [\"tcp://127.0.0.1:90{instance}\"]\n",
        );
        let services = load_dir(&t.0).expect("valid").services;
        assert_eq!(services[0].grants.hosts(), ["tcp://127.0.0.1:900"]);
    }

    #[test]
    fn each_replica_gets_its_own_cwd_and_env_file() {
        let t = TempDir::new("replicas-cwd");
        let manifest = "command = [\"serve\"]\ninstances = 2\ncwd = \"run-{instance}\"\n\
                        env-file = [\"env-{instance}\", \"-missing-{instance}\"]\n";
        write(&t.0, "web", manifest);
        let dir = t.0.join("web");
        for i in 0..2 {
            std::fs::create_dir_all(dir.join(format!("run-{i}"))).expect("mkdir");
            std::fs::write(dir.join(format!("env-{i}")), format!("ROLE=r{i}\n")).expect("env");
        }
        let services = load_dir(&t.0).expect("valid").services;
        let web1 = &services[1];
        assert_eq!(web1.cwd, dir.join("run-1"));
        let file = &web1.identity.env_files[0];
        assert_eq!(file.path, dir.join("env-1"));
        assert_eq!(
            file.loaded.as_deref(),
            Some(&[("ROLE".to_string(), "r1".to_string())][..])
        );
        assert!(web1.identity.env_files[1].optional);
        assert!(
            web1.child_env()
                .expect("env")
                .contains(&("ROLE".into(), "r1".into()))
        );
        assert_eq!(services[0].cwd, dir.join("run-0"));
        let shown = expanded(web1);
        assert!(shown.contains(&("cwd".into(), "run-1".into())), "{shown:?}");
        assert!(
            shown.contains(&("env-file[1]".into(), "-missing-1".into())),
            "{shown:?}"
        );

        // A third replica has neither: both are the manifest's problems.
        write(
            &t.0,
            "web",
            &manifest.replace("instances = 2", "instances = 3"),
        );
        let found = problems(&t.0);
        assert!(
            found
                .iter()
                .any(|p| p.contains("web/service.toml:cwd: for replica 2:")),
            "{found:#?}"
        );
        std::fs::create_dir_all(dir.join("run-2")).expect("mkdir");
        let found = problems(&t.0);
        assert!(
            found
                .iter()
                .any(|p| p.contains("web/service.toml:env-file[0]: for replica 2:")),
            "{found:#?}"
        );
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
