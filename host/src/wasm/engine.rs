//! The wasmtime engine: configuration, epoch timer, linkers and loading.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable, types::ComponentItem};
use wasmtime::{
    Config, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline,
};
use wasmtime_wasi::WasiCtxBuilder;

use super::bindings;
use super::cache::{CacheOutcome, ComponentCache, FileIdentity, default_cache_dir};
use super::epoch::{CallGuard, EpochTimer};
use super::host::output::OutputRing;
use super::limits::MemoryCap;
use super::output::BoundedOutput;
use super::store::{Capabilities, HostState};
use super::warm::WarmInstances;
use super::{
    CheckSource, Checker, LoadError, Loader, Sandbox, WIT_VERSION, builtins, contract_compatible,
    embedded, inspect,
};

/// How often the epoch advances: the granularity of CPU deadlines and of
/// yielding a busy guest back to the scheduler.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Guest calls that may run at the same time (each holds an instance).
const MAX_CONCURRENT_CALLS: u32 = 64;

/// Bytes of a guest's output kept per call: stdout and stderr share one
/// buffer (interleaved as written), so this is their total, not a cap
/// each. Past it, bytes are counted and dropped while the guest runs on
/// (see `output.rs`). A check's capture is `CheckReport::output`; a
/// loader's is shown only in the error of a failed call.
pub(crate) const OUTPUT_CAP: usize = 16 * 1024;

/// Host resources (pollables, streams, connections, ...) one instance may
/// hold at once. Every one lives in host memory, outside the memory cap, and
/// WASI hands them out for the asking (`subscribe-duration` in a loop): a
/// check needs a handful, wasmtime's default is a million.
pub(crate) const MAX_RESOURCES: usize = 1024;

/// Component-model handles one store may hold at once: the handles of the
/// host resources above (a borrow counts again while lent) plus resources
/// the component defines itself and creates with `resource.new`, which
/// never reach host code. wasmtime's default is 100,000.
const MAX_HANDLES: usize = 4 * MAX_RESOURCES;

/// Bytes a guest may make the host allocate in one crossing: the arguments
/// of a capability call, or the result of a check or loader call (strings
/// and lists are copied out of guest memory, and a list of empty strings
/// takes three times as much room on the host as in the guest). Far above
/// the largest honest transfer (1 MiB bodies); wasmtime's default is
/// 128 MiB. Past it the call traps.
const MAX_HOSTCALL_BYTES: usize = 16 << 20;

/// Per warm pool slot, the touched memory kept resident between instances
/// (a Rust check touches a few hundred KiB; larger guests beyond this are
/// decommitted as before). At most `max_unused_warm_slots` slots keep it.
const KEEP_RESIDENT: usize = 1 << 20;

/// Engine sizing; the defaults hold 1,000 services with room to spare.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Instances that may be alive at the same time (concurrent calls).
    pub max_instances: u32,
    /// Largest linear memory any instance may have; each call's own cap
    /// on all of an instance's memories together
    /// ([`Sandbox::memory_limit`]) is usually far lower.
    pub max_memory: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            cache_dir: default_cache_dir(),
            max_instances: 1000,
            max_memory: 1 << 30,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot configure the wasm engine: {0}")]
    Config(String),
}

/// Engine-wide numbers (see [`Engine::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineStats {
    /// Instances that may run at once.
    pub call_slots: usize,
    /// Instances running now (checks and loader calls).
    pub calls_in_flight: usize,
    /// The largest any instance has grown to since start: all its linear
    /// memories and tables together.
    pub memory_peak_bytes: usize,
    /// Stores (fresh instances) created since start; a call on a reused
    /// builtin instance does not add one.
    pub stores_created: u64,
}

/// Told the size of a component when it is not in the cache and compiling
/// begins (seconds for a Python or JavaScript one), from a blocking thread.
pub type OnCompile = Box<dyn FnOnce(usize) + Send>;

/// A shared engine; clones are cheap and share the pool and cache.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    timer: Arc<EpochTimer>,
    /// Bounds the instances alive at once: when a thousand periodic checks
    /// fall due together, they take turns instead of each mapping a memory.
    calls: tokio::sync::Semaphore,
    call_slots: usize,
    /// Largest footprint (memories and tables) one instance has reached.
    memory_peak: Arc<std::sync::atomic::AtomicUsize>,
    /// The pool's slot size: the largest one linear memory can be.
    max_memory: usize,
    engine: wasmtime::Engine,
    cache: ComponentCache,
    /// `None` in a one-shot engine: each component is linked with the
    /// WASI interfaces it imports ([`super::wasi_link`]).
    checker_linker: Option<Linker<HostState>>,
    /// Built on the first loader: `vigil check` never loads one, and
    /// linking WASI's few hundred functions is a tenth of its whole run.
    loader_linker: std::sync::OnceLock<Result<Linker<HostState>, String>>,
    /// A short-lived process with one check to run (`vigil check`,
    /// `vigil daemonize`): cache lookups run on the calling thread instead
    /// of starting a blocking-pool thread for one small read.
    one_shot: bool,
    /// Whether a component missing from the cache is compiled; if not,
    /// loading it fails with [`LoadError::NotCompiled`] (`vigil-probe`).
    compile: bool,
    /// Builtin checks, loaded and linked once and shared by every service
    /// naming them: their compiled code is mapped once instead of once per
    /// service, and their finished instances are reused (see [`super::warm`]).
    /// (Kept as `CheckerPre`, not `Checker`: a checker holds the engine.)
    /// Async: held across the first load, so that a thousand services
    /// starting at once load a builtin once.
    builtin_checkers: tokio::sync::Mutex<HashMap<String, Builtin>>,
    /// Stores created so far: one per fresh instance (see [`EngineStats`]).
    stores_created: AtomicU64,
}

/// A loaded builtin and its idle instances.
#[derive(Clone)]
struct Builtin {
    pre: bindings::checker::CheckerPre<HostState>,
    warm: Arc<WarmInstances>,
}

impl Engine {
    pub fn new(options: EngineOptions) -> Result<Engine, EngineError> {
        Self::build(options, true, true)
    }

    /// An engine for one check in a short-lived process (`vigil check`,
    /// `vigil daemonize`): memories are mapped per instance, as needed,
    /// instead of reserving a pool up front. The pool pays for itself
    /// over thousands of instantiations; a one-shot process makes one,
    /// and would spend more mapping and unmapping the pool's reservations
    /// than the instance costs. Code generation is the same, so both share
    /// the compiled-component cache.
    pub fn one_shot(options: EngineOptions) -> Result<Engine, EngineError> {
        Self::build(options, false, true)
    }

    /// [`Self::one_shot`] that never compiles: a component that is not in
    /// the cache fails to load with [`LoadError::NotCompiled`], in
    /// microseconds instead of the seconds compiling can take. For
    /// `vigil-probe`, which then hands the check over to `vigil check`.
    pub fn one_shot_cached(options: EngineOptions) -> Result<Engine, EngineError> {
        Self::build(options, false, false)
    }

    fn build(options: EngineOptions, pooling: bool, compile: bool) -> Result<Engine, EngineError> {
        let config_error = |err: wasmtime::Error| EngineError::Config(format!("{err:#}"));
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .allocation_strategy(if pooling {
                InstanceAllocationStrategy::Pooling(Self::pool(&options))
            } else {
                InstanceAllocationStrategy::OnDemand
            })
            .max_wasm_stack(512 * 1024)
            .async_stack_size(2 << 20);
        // Without a compiler the engine neither infers this host's CPU
        // features for code generation (`cpuid` after `cpuid`, each a trap
        // to the hypervisor in a VM) nor builds the compiler: a probe only
        // loads cached code. Loading still checks the artifact's CPU
        // features against the host's.
        if !compile {
            config.enable_compiler(false);
        }
        let engine = wasmtime::Engine::new(&config).map_err(config_error)?;
        let timer = if pooling {
            EpochTimer::thread(&engine)
        } else {
            EpochTimer::one_shot(&engine)
        };

        // A one-shot engine links its one component with the WASI it
        // imports (see `wasi_link`); a long-lived one links all, once.
        let checker_linker = if pooling {
            Some(
                checker_linker(&engine, wasmtime_wasi::p2::add_to_linker_async)
                    .map_err(config_error)?,
            )
        } else {
            None
        };
        // What a compiler-less engine shares with the compiling ones whose
        // artifacts it loads: the same vigil, built for the same target.
        // (Pooled and one-shot engines generate the same code, so
        // `vigil compile` and `vigil run` record for the probe too.)
        let profile = format!(
            "vigil {} {}",
            env!("CARGO_PKG_VERSION"),
            env!("VIGIL_TARGET")
        );
        let cache = if compile {
            ComponentCache::new(options.cache_dir, &engine, &profile)
        } else {
            ComponentCache::compiler_less(options.cache_dir, &profile)
        };
        let call_slots = options.max_instances.clamp(1, MAX_CONCURRENT_CALLS) as usize;
        let calls = tokio::sync::Semaphore::new(call_slots);
        Ok(Engine {
            inner: Arc::new(Inner {
                timer,
                calls,
                call_slots,
                memory_peak: Arc::default(),
                max_memory: options.max_memory,
                engine,
                cache,
                checker_linker,
                loader_linker: std::sync::OnceLock::new(),
                one_shot: !pooling,
                compile,
                builtin_checkers: Default::default(),
                stores_created: AtomicU64::new(0),
            }),
        })
    }

    /// The instance pool of a long-lived engine. Only a pooled engine
    /// asks whether PAGEMAP_SCAN is there (it opens `/proc/self/pagemap`).
    fn pool(options: &EngineOptions) -> PoolingAllocationConfig {
        let mut pool = PoolingAllocationConfig::default();
        let instances = options.max_instances.max(1);
        // Sized explicitly: the defaults are too small for 1,000 services.
        // Python components hold several core instances and tables.
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(8))
            .total_memories(instances.saturating_mul(2))
            .total_tables(instances.saturating_mul(8))
            .total_stacks(instances)
            .max_core_instances_per_component(64)
            .max_memories_per_component(8)
            .max_tables_per_component(32)
            .max_tables_per_module(8)
            .max_memories_per_module(2)
            .max_core_instance_size(16 << 20)
            .max_component_instance_size(4 << 20)
            .max_memory_size(options.max_memory)
            .max_unused_warm_slots(64);
        // A freed slot keeps the pages its instance touched, reset to the
        // module's image in place, found with PAGEMAP_SCAN (Linux 6.7+):
        // the next instance of the same module (the pool prefers its
        // slots) then pays neither `madvise` nor page faults. A fresh
        // instance still sees pristine memory. Without the ioctl, resetting
        // would `memset` the whole kept range, so the default applies.
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            pool.pagemap_scan(wasmtime::Enabled::Yes)
                .linear_memory_keep_resident(KEEP_RESIDENT)
                .table_keep_resident(KEEP_RESIDENT / 16);
        }
        pool
    }

    /// Loads a check: compiles (or fetches from the cache), links and
    /// type-checks it against the `checker` world.
    pub async fn load_checker(&self, source: &CheckSource) -> Result<Checker, LoadError> {
        Ok(self.load_checker_observed(source, None).await?.0)
    }

    /// [`Self::load_checker`], calling `on_compile` with the component's
    /// size when it is not in the cache and compiling begins; also says
    /// how it was obtained. The check's own deadline starts at each call
    /// ([`Checker::check`]), so compiling here never counts towards it.
    pub async fn load_checker_observed(
        &self,
        source: &CheckSource,
        on_compile: Option<OnCompile>,
    ) -> Result<(Checker, CacheOutcome), LoadError> {
        let CheckSource::Builtin(name) = source else {
            let (pre, outcome) = self.link_checker(source, on_compile).await?;
            return Ok((
                Checker::new(self.clone(), pre, None, source.clone()),
                outcome,
            ));
        };
        let mut builtins = self.inner.builtin_checkers.lock().await;
        let (builtin, outcome) = match builtins.get(name) {
            Some(builtin) => (builtin.clone(), CacheOutcome::Hit),
            None => {
                let (pre, outcome) = self.link_checker(source, on_compile).await?;
                let builtin = Builtin {
                    pre,
                    warm: Arc::default(),
                };
                builtins.insert(name.clone(), builtin.clone());
                (builtin, outcome)
            }
        };
        let checker = Checker::new(
            self.clone(),
            builtin.pre,
            Some(builtin.warm),
            source.clone(),
        );
        Ok((checker, outcome))
    }

    async fn link_checker(
        &self,
        source: &CheckSource,
        on_compile: Option<OnCompile>,
    ) -> Result<(bindings::checker::CheckerPre<HostState>, CacheOutcome), LoadError> {
        let (component, outcome) = self.load_component_observed(source, on_compile).await?;
        let own;
        let linker = match &self.inner.checker_linker {
            Some(linker) => linker,
            None => {
                own = checker_linker(&self.inner.engine, |linker| {
                    super::wasi_link::add_imported(linker, &component)
                })
                .map_err(|err| LoadError::Invalid {
                    check: source.clone(),
                    message: format!("{err:#}"),
                })?;
                &own
            }
        };
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|err| self.world_error(source, &component, "checker", &err))?;
        let pre = bindings::checker::CheckerPre::new(pre)
            .map_err(|err| self.world_error(source, &component, "checker", &err))?;
        Ok((pre, outcome))
    }

    /// Loads a loader, type-checked against the `loader` world.
    pub async fn load_loader(&self, source: &CheckSource) -> Result<Loader, LoadError> {
        let (component, _) = self.load_component(source).await?;
        let linker = self
            .inner
            .loader_linker
            .get_or_init(|| loader_linker(&self.inner.engine))
            .as_ref()
            .map_err(|message| LoadError::Invalid {
                check: source.clone(),
                message: message.clone(),
            })?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|err| self.world_error(source, &component, "loader", &err))?;
        // A loader of world `replace-loader` (0.1.2) also exports
        // `replace-policy`; any other is a plain loader, never asked about
        // a replace.
        let replace = bindings::replace_loader::ReplaceLoaderPre::new(pre.clone()).ok();
        let pre = bindings::loader::LoaderPre::new(pre)
            .map_err(|err| self.world_error(source, &component, "loader", &err))?;
        Ok(Loader::new(self.clone(), pre, source.clone()).with_replace(replace))
    }

    /// Reads, sniffs and compiles (or loads from the cache) a component.
    pub async fn load_component(
        &self,
        source: &CheckSource,
    ) -> Result<(Component, CacheOutcome), LoadError> {
        self.load_component_observed(source, None).await
    }

    /// [`Self::load_component`], calling `on_compile` with the component's
    /// size when it is not in the cache and compiling begins.
    pub async fn load_component_observed(
        &self,
        source: &CheckSource,
        on_compile: Option<OnCompile>,
    ) -> Result<(Component, CacheOutcome), LoadError> {
        // A file loaded before and unchanged since: its compiled artifact,
        // without reading and hashing the component again. The identity is
        // taken before reading, so a change while reading is never
        // remembered as the old content.
        // The same for a builtin: its bytes are part of this binary, so
        // the binary's identity stands for theirs.
        let known = {
            let (source, engine, cache) = (
                source.clone(),
                self.inner.engine.clone(),
                self.inner.cache.clone(),
            );
            let lookup = move || {
                let file = match &source {
                    CheckSource::File(path) => FileIdentity::of(path)?,
                    CheckSource::Builtin(name) => FileIdentity::of_builtin(name)?,
                    CheckSource::Embedded { binary, role } => {
                        FileIdentity::of_embedded(binary, role)?
                    }
                };
                let component = cache.load_unchanged(&engine, &file);
                Some((file, component))
            };
            if self.inner.one_shot {
                lookup()
            } else {
                tokio::task::spawn_blocking(lookup).await.ok().flatten()
            }
        };
        let file = match known {
            Some((_, Some(component))) => return Ok((component, CacheOutcome::Hit)),
            Some((file, None)) => Some(file),
            None => None,
        };
        let bytes = match source {
            CheckSource::Builtin(name) => builtins::lookup(name)
                .ok_or_else(|| LoadError::UnknownBuiltin { name: name.clone() })?
                .to_vec(),
            CheckSource::File(path) => tokio::fs::read(path).await.map_err(|error| match error
                .kind()
            {
                std::io::ErrorKind::NotFound => LoadError::NotFound {
                    check: source.clone(),
                },
                _ => LoadError::Read {
                    check: source.clone(),
                    error,
                },
            })?,
            CheckSource::Embedded { binary, role } => {
                // Bounded reads of the binary's headers and one section.
                let (binary, role) = (binary.clone(), role.clone());
                tokio::task::spawn_blocking(move || embedded::elf::component(&binary, &role))
                    .await
                    .map_err(|err| LoadError::Invalid {
                        check: source.clone(),
                        message: err.to_string(),
                    })?
                    .map_err(|error| {
                        if error.is_not_found() {
                            LoadError::NotFound {
                                check: source.clone(),
                            }
                        } else {
                            LoadError::Embedded {
                                check: source.clone(),
                                error,
                            }
                        }
                    })?
            }
        };
        match inspect::sniff(&bytes) {
            inspect::Kind::NotWasm => {
                return Err(LoadError::NotWasm {
                    check: source.clone(),
                });
            }
            inspect::Kind::CoreModule => {
                return Err(LoadError::CoreModule {
                    check: source.clone(),
                });
            }
            inspect::Kind::Component => {}
        }
        let engine = self.inner.engine.clone();
        let cache = self.inner.cache.clone();
        if !self.inner.compile {
            return match cache.load_compiled(&engine, &bytes, file.as_ref()) {
                Some(component) => Ok((component, CacheOutcome::Hit)),
                None => Err(LoadError::NotCompiled {
                    check: source.clone(),
                }),
            };
        }
        // Compiling a large (Python, JS) component takes seconds of CPU.
        let loaded = tokio::task::spawn_blocking(move || {
            let size = bytes.len();
            let on_compile = move || {
                if let Some(on_compile) = on_compile {
                    on_compile(size);
                }
            };
            cache.load_observed(&engine, &bytes, file.as_ref(), on_compile)
        })
        .await
        .map_err(|err| LoadError::Invalid {
            check: source.clone(),
            message: err.to_string(),
        })?;
        loaded.map_err(|err| LoadError::Invalid {
            check: source.clone(),
            message: format!("{err:#}"),
        })
    }

    /// Explains why a component does not fit a world, in the terms of the
    /// component itself: what it exports, what it imports that we lack.
    fn world_error(
        &self,
        source: &CheckSource,
        component: &Component,
        expected: &str,
        err: &wasmtime::Error,
    ) -> LoadError {
        let ty = component.component_type();
        let engine = &self.inner.engine;
        let exports: Vec<String> = ty
            .exports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let imports: Vec<String> = ty
            .imports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let exports_fn = |name: &str| {
            ty.exports(engine)
                .any(|(n, item)| n == name && matches!(item.ty, ComponentItem::ComponentFunc(_)))
        };
        let message = if let Some(other) = imports.iter().find(|i| {
            i.strip_prefix("vigil:health/").is_some_and(|i| {
                !i.split_once('@')
                    .is_some_and(|(_, v)| contract_compatible(v))
            })
        }) {
            format!(
                "was built for another version of the contract (imports `{other}`); this vigil implements vigil:health@{WIT_VERSION}: rebuild it against the wit/ of this release"
            )
        } else if expected == "checker" && exports_fn("spawn") && exports_fn("decide") {
            "is a loader (exports `spawn` and `decide`), not a check: name it loader.wasm in the service directory".to_owned()
        } else if expected == "loader" && exports_fn("check") {
            "is a check (exports `check`), not a loader: reference it from a [checks.*] table"
                .to_owned()
        } else if let Some(missing) = imports.iter().find(|i| !provided_by_host(i)) {
            let hint = if missing.starts_with("wasi:http") {
                " (componentize-js: build with `-d http fetch-event`; use vigil:health/http instead)"
            } else {
                ""
            };
            format!("imports `{missing}`, which vigil does not provide to checks{hint}")
        } else {
            let wanted = if expected == "checker" {
                "`check: func(target) -> outcome`"
            } else {
                "`spawn` and `decide`"
            };
            format!(
                "does not fit world vigil:health/{expected}@{WIT_VERSION}: it should export {wanted}; it exports [{}] ({err:#})",
                exports.join(", ")
            )
        };
        LoadError::WrongWorld {
            check: source.clone(),
            message,
        }
    }

    /// What the engine can tell about its calls, for `/metrics`.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            call_slots: self.inner.call_slots,
            calls_in_flight: self
                .inner
                .call_slots
                .saturating_sub(self.inner.calls.available_permits()),
            memory_peak_bytes: self
                .inner
                .memory_peak
                .load(std::sync::atomic::Ordering::Relaxed),
            stores_created: self.inner.stores_created.load(Ordering::Relaxed),
        }
    }

    /// Waits for a call slot and keeps the epoch timer running until the
    /// guard drops. Every guest call holds one.
    pub(crate) async fn begin_call(&self) -> CallGuard<'_> {
        // The semaphore is never closed; `None` would only mean no bound.
        let permit = self.inner.calls.acquire().await.ok();
        self.inner.timer.call_started();
        CallGuard {
            timer: &self.inner.timer,
            _permit: permit,
        }
    }

    /// What one call may reach: the sandbox's grants, the target's process
    /// tree, until `deadline`.
    pub(crate) fn capabilities(
        sandbox: Option<&Sandbox>,
        target_pid: Option<u32>,
        output: Option<Arc<OutputRing>>,
        deadline: Instant,
    ) -> Capabilities {
        Capabilities {
            grants: sandbox.map(|s| s.grants.clone()).unwrap_or_default(),
            base_dir: sandbox.and_then(|s| s.base_dir.clone()),
            http: sandbox.map(Sandbox::http_client),
            target_pid,
            deadline,
            log: Default::default(),
            output,
            open_connections: 0,
        }
    }

    /// A store for one call: deny-all WASI, capped output, a memory cap on
    /// the whole instance, bounded host resources, capabilities from the
    /// sandbox, and a CPU deadline.
    pub(crate) fn new_store(
        &self,
        sandbox: Option<&Sandbox>,
        target_pid: Option<u32>,
        target_output: Option<Arc<OutputRing>>,
        deadline: Instant,
        memory_limit: usize,
        output: &BoundedOutput,
    ) -> Store<HostState> {
        self.new_store_at(
            sandbox,
            target_pid,
            target_output,
            deadline,
            memory_limit,
            output,
            None,
        )
    }

    /// [`Self::new_store`] whose `wasi:clocks/wall-clock` reads `wall`
    /// (frozen) instead of the host's clock, when given: `vigil replay`
    /// asks a loader about a recorded event at the time it happened, so
    /// a loader that reads the time (a maintenance window) decides as it
    /// would have then, and the same journal replays the same way.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_store_at(
        &self,
        sandbox: Option<&Sandbox>,
        target_pid: Option<u32>,
        target_output: Option<Arc<OutputRing>>,
        deadline: Instant,
        memory_limit: usize,
        output: &BoundedOutput,
        wall: Option<SystemTime>,
    ) -> Store<HostState> {
        // No args, no environment, no preopens, no sockets, no name lookups:
        // a check reaches the world only through vigil:health capabilities.
        let mut builder = WasiCtxBuilder::new();
        builder
            .stdout(output.clone())
            .stderr(output.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        if let Some(at) = wall {
            builder.wall_clock(FrozenWallClock(
                at.duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default(),
            ));
        }
        let wasi = builder.build();
        let caps = Self::capabilities(sandbox, target_pid, target_output, deadline);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let state = HostState {
            wasi,
            table,
            limits: MemoryCap::new(
                memory_limit,
                self.inner.max_memory,
                self.inner.memory_peak.clone(),
            ),
            caps,
        };
        self.inner.stores_created.fetch_add(1, Ordering::Relaxed);
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|state| &mut state.limits);
        store.set_max_component_handles(MAX_HANDLES);
        store.set_hostcall_fuel(MAX_HOSTCALL_BYTES);
        // Set before instantiation: instantiation runs guest code too.
        store.set_epoch_deadline(1);
        // The deadline is read from the store, where a reused instance's
        // next call puts its own.
        store.epoch_deadline_callback(|store| {
            if Instant::now() >= store.data().caps.deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                // Yield every tick so a busy guest cannot hog a worker thread.
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }
}

/// A wall clock stopped at one instant (time since the Unix epoch).
struct FrozenWallClock(Duration);

impl wasmtime_wasi::HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }
    fn now(&self) -> Duration {
        self.0
    }
}

/// Whether an import is one the linkers can satisfy: vigil:health (any
/// version is matched later, with its own message) or WASI 0.2.
fn provided_by_host(import: &str) -> bool {
    import.starts_with("vigil:health/") || (import.starts_with("wasi:") && import.contains("@0.2."))
}

/// A linker for the `checker` world: WASI as `wasi` defines it, and
/// vigil:health's capabilities.
fn checker_linker(
    engine: &wasmtime::Engine,
    wasi: impl FnOnce(&mut Linker<HostState>) -> wasmtime::Result<()>,
) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasi(&mut linker)?;
    bindings::checker::Checker::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// The linker for the `loader` world: WASI and Vigil's host functions.
fn loader_linker(engine: &wasmtime::Engine) -> Result<Linker<HostState>, String> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|err| format!("{err:#}"))?;
    bindings::loader::Loader::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)
        .map_err(|err| format!("{err:#}"))?;
    Ok(linker)
}
