//! `vigil validate`: what [`load_dir`](super::load_dir) checks, and what
//! can only be told by reading the components the manifests name:
//!
//! - each `.wasm` check and loader loads (a component, of the right world,
//!   compiling), which `vigil run` would otherwise find out when the
//!   service is already failing;
//! - each `[checks.*.config]` and `[loader.config]` against the schema the
//!   component carries (unknown keys with a did-you-mean, values of the
//!   wrong kind, missing required keys);
//! - each destination and path a check's config names against the
//!   service's `[grants]`, naming the entry to add.
//!
//! A missing program is a warning here (it is a runtime condition of that
//! service), and entries that are not service directories are notes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::hooks::{HookAction, HookKind};
use super::model::{LOADER, MANIFEST, Service};
use super::problems::{Collector, Problem};
use super::schema::{Place, check_config, check_grants};
use crate::wasm::inspect::{ConfigSchema, inspect};
use crate::wasm::{CheckSource, Engine, Phase, builtins};

/// Everything `vigil validate` found.
#[derive(Debug, Default)]
pub struct Validation {
    /// Names of the services without a problem.
    pub services: Vec<String>,
    /// What refuses the start or certainly fails.
    pub problems: Vec<Problem>,
    /// What will fail at run time unless the machine changes first.
    pub warnings: Vec<Problem>,
    /// Entries that were ignored, and why.
    pub notes: Vec<String>,
    /// Each replicated service without a problem: what its replicas get.
    pub replicas: Vec<ReplicaGroup>,
}

/// A service with `instances`, as `vigil validate` shows it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ReplicaGroup {
    /// The service directory's name.
    pub name: String,
    pub instances: u32,
    /// Each replica's name and what `{instance}` became in it
    /// ([`replicas::expanded`](super::replicas::expanded)).
    pub replicas: Vec<(String, Vec<(String, String)>)>,
}

/// Validate the checks directory `path`, or the one service directory
/// `path` (when it holds a service.toml, a loader.wasm or any .wasm; or
/// `path` is its service.toml): then only that service's problems are
/// reported, though its `after` names are checked against its siblings.
pub async fn validate(path: &Path, engine: &Engine) -> Validation {
    // `DIR/web/service.toml` means the service `DIR/web`.
    let path = match path.parent() {
        Some(dir) if path.is_file() && path.file_name().is_some_and(|n| n == MANIFEST) => {
            if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            }
        }
        _ => path,
    };
    let single = path.join(MANIFEST).is_file()
        || path.join(LOADER).is_file()
        || has_wasm(path)
        || !matches!(super::embedded::loader_binary(path), Ok(None));
    let (root, only) = if single {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let parent = absolute
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        (parent, Some(absolute))
    } else {
        (path.to_path_buf(), None)
    };
    let mut v = Validation::default();
    let (mut dirs, notes) = match super::scan_dir(&root) {
        Ok(scan) => scan,
        Err(problem) => {
            v.problems.push(problem);
            return v;
        }
    };
    if let Some(only) = &only {
        // The service itself even when it is hidden or otherwise skipped.
        if !dirs.iter().any(|d| same_dir(d, only)) {
            dirs.push(only.clone());
        }
    } else {
        v.notes = notes;
    }
    let names: BTreeSet<String> = dirs.iter().map(|d| super::kinds::service_name(d)).collect();
    if only.is_none() {
        v.problems.extend(super::kinds::name_clashes(&dirs));
    }
    let mut all = Vec::new();
    let mut loaded = Vec::new();
    for d in &dirs {
        let selected = only.as_ref().is_none_or(|o| same_dir(d, o));
        let (service, found, warnings) = super::load(d);
        if selected {
            v.problems.extend(found.iter().cloned());
            v.warnings.extend(warnings);
        }
        if let Some(s) = service {
            all.push(s.clone());
            if selected {
                loaded.push((s, found.is_empty()));
            }
        }
    }
    let mut graph = Vec::new();
    super::graph::check_dependencies(&all, &names, &mut graph);
    let of = |p: &Problem, dir: &Path| p.path.parent().is_some_and(|d| same_dir(d, dir));
    graph.retain(|p| only.as_ref().is_none_or(|o| of(p, o)));

    for (service, manifest_ok) in &loaded {
        let before = v.problems.len();
        check_components(service, engine, &mut v.problems).await;
        // Each replica, as `vigil run` makes them: an address or grant a
        // higher index makes invalid is a problem of the manifest.
        let all = if *manifest_ok {
            super::replicas::expand(service.clone(), &mut v.problems)
        } else {
            Vec::new()
        };
        // The last replica's config against its schema and grants too:
        // a port or path made from `{instance}` is at its other extreme
        // there. What replica 0 already showed is not said twice.
        if let Some(last) = all.last().filter(|_| all.len() > 1) {
            let mut more = Vec::new();
            check_components(last, engine, &mut more).await;
            for mut p in more {
                if !v.problems[before..]
                    .iter()
                    .any(|q| q.field == p.field && q.problem == p.problem)
                {
                    p.problem = format!("in {}: {}", last.name, p.problem);
                    v.problems.push(p);
                }
            }
        }
        if *manifest_ok && v.problems.len() == before && !graph.iter().any(|p| of(p, &service.dir))
        {
            v.services.push(service.group().to_string());
            if let Some(r) = &service.replica {
                v.replicas.push(ReplicaGroup {
                    name: r.parent.clone(),
                    instances: r.instances,
                    replicas: all
                        .iter()
                        .map(|s| (s.name.clone(), super::replicas::expanded(s)))
                        .collect(),
                });
            }
        }
    }
    v.problems.extend(graph);
    v.services.sort();
    v
}

/// Whether `dir` holds a `.wasm` file: a service directory (perhaps
/// missing its manifest), never a checks directory.
fn has_wasm(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(|e| e.ok())
            .any(|e| e.path().extension().is_some_and(|x| x == "wasm") && e.path().is_file())
    })
}

fn same_dir(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    canon(a) == canon(b)
}

/// Load each component of `service` and check its config against the
/// schema it carries.
async fn check_components(service: &Service, engine: &Engine, problems: &mut Vec<Problem>) {
    let manifest = service.dir.join(MANIFEST);
    let mut c = Collector::new(&manifest);
    for phase in Phase::ALL {
        let Some(spec) = service.checks.get(phase) else {
            continue;
        };
        let at = format!("checks.{phase}");
        check_component(service, engine, &spec.check, &spec.config, &at, &mut c).await;
    }
    // Check hooks: the same sandbox and grants as the checks.
    for kind in HookKind::ALL {
        if let Some(HookAction::Check { check, config }) =
            service.hooks.get(kind).map(|h| &h.action)
        {
            let at = format!("hooks.{kind}");
            check_component(service, engine, check, config, &at, &mut c).await;
        }
    }
    problems.append(&mut c.problems);

    if let Some(loader) = &service.loader {
        let mut c = Collector::new(&loader.path);
        let source = loader.source();
        match engine.load_loader(&source).await {
            Err(err) => c.push(
                "-",
                format!("does not load as a loader: {err}"),
                "rebuild it as a component of the vigil:health `loader` world \
                 (`vigil inspect` shows what it is)",
            ),
            Ok(_) => {
                if let Some(bytes) = component_bytes(&source)
                    && let Some(schema) = schema_of(&bytes, "-", &mut c)
                {
                    let mut in_manifest = Collector::new(&manifest);
                    let place = Place {
                        table: "loader.config",
                        check_field: "loader",
                        component: LOADER,
                    };
                    check_config(&schema, &loader.config, &place, &mut in_manifest);
                    problems.append(&mut in_manifest.problems);
                }
            }
        }
        problems.append(&mut c.problems);
    }
}

/// One component a service names (a check or a check hook, at manifest
/// table `at`): it loads, and its config fits its schema and the grants.
async fn check_component(
    service: &Service,
    engine: &Engine,
    check: &CheckSource,
    config: &[(String, String)],
    at: &str,
    c: &mut Collector<'_>,
) {
    let check_field = format!("{at}.check");
    let (source, bytes) = match check {
        CheckSource::Builtin(name) => match builtins::lookup(name) {
            Some(bytes) => (CheckSource::Builtin(name.clone()), bytes.to_vec()),
            // Already reported as an unknown builtin.
            None => return,
        },
        CheckSource::Embedded { binary, .. } => {
            // A missing program, a malformed section or a missing role is
            // reported by the manifest's own checks.
            let Some(bytes) = component_bytes(check).filter(|_| binary.is_file()) else {
                return;
            };
            if let Err(err) = engine.load_checker(check).await {
                c.push(
                    &check_field,
                    format!("does not load as a check: {err}"),
                    format!(
                        "embed a component of the vigil:health `checker` world \
                         (`vigil inspect {}` shows what it carries)",
                        binary.display()
                    ),
                );
                return;
            }
            (check.clone(), bytes)
        }
        CheckSource::File(path) => {
            if !path.is_file() {
                return; // reported by the manifest's own checks
            }
            let source = CheckSource::File(path.clone());
            if let Err(err) = engine.load_checker(&source).await {
                c.push(
                    &check_field,
                    format!("does not load as a check: {err}"),
                    "rebuild it as a component of the vigil:health `checker` world \
                     (`vigil inspect` shows what it is)",
                );
                return;
            }
            match std::fs::read(path) {
                Ok(bytes) => (source, bytes),
                Err(err) => {
                    c.push(
                        &check_field,
                        format!("cannot read: {err}"),
                        "make it readable",
                    );
                    return;
                }
            }
        }
    };
    let component = match check {
        CheckSource::Builtin(name) => format!("builtin:{name}"),
        CheckSource::File(path) => path
            .file_name()
            .map_or_else(|| source.to_string(), |n| n.to_string_lossy().into_owned()),
        CheckSource::Embedded { role, .. } => format!("embedded:{role}"),
    };
    // Python and JavaScript toolchains bind the whole world, so their
    // components import every capability whether they call it or not:
    // only a component that chose to import `output` is flagged.
    let reads_output = inspect(&bytes).is_ok_and(|r| {
        let has = |name: &str| r.capabilities.iter().any(|cap| cap == name);
        has("output") && !["http", "tcp", "process", "fs", "log"].into_iter().all(has)
    });
    if !service.grants.resolved().output() && reads_output {
        c.push(
            &check_field,
            format!(
                "{component} reads the service's output (it imports the `output` capability), \
                 which [grants] does not allow: every such read would be denied"
            ),
            "add `output = true` to [grants]",
        );
    }
    let Some(schema) = schema_of(&bytes, &check_field, c) else {
        return;
    };
    let table = format!("{at}.config");
    let place = Place {
        table: &table,
        check_field: &check_field,
        component: &component,
    };
    check_config(&schema, config, &place, c);
    check_grants(&schema, config, &service.grants, &service.dir, &place, c);
}

/// The bytes of a loader or check component, wherever it lives.
fn component_bytes(source: &CheckSource) -> Option<Vec<u8>> {
    match source {
        CheckSource::Builtin(name) => builtins::lookup(name).map(<[u8]>::to_vec),
        CheckSource::File(path) => std::fs::read(path).ok(),
        CheckSource::Embedded { binary, role } => {
            crate::wasm::embedded::elf::component(binary, role).ok()
        }
    }
}

/// The schema a component carries; `None` without one (its config cannot
/// be checked) or when it is unreadable (reported at `field`).
fn schema_of(bytes: &[u8], field: &str, c: &mut Collector<'_>) -> Option<ConfigSchema> {
    let report = inspect(bytes).ok()?;
    if let Some(err) = report.config_schema_error {
        c.push(
            field,
            format!("its config schema is unreadable: {err}"),
            "rebuild it with one `#[derive(Config)]` (or a valid vigil:config-schema section)",
        );
    }
    report.config_schema
}
