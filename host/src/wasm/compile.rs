//! Compiling many components into the cache ahead of their first call, in parallel: `vigil compile`, and `vigil run` before it spawns anything.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{CacheOutcome, CheckSource, Engine, LoadError, builtins};

/// One component, compiled into the cache or found there.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub source: CheckSource,
    /// The component's size, when it can be told without reading it.
    pub bytes: Option<u64>,
    /// Reading, compiling and storing (or loading from the cache).
    pub took: Duration,
    pub outcome: CacheOutcome,
}

/// What a person watching is told, from any thread: compiling a Python
/// check takes seconds of Cranelift, and silence looks like a hang.
pub trait Progress: Send + Sync + std::fmt::Debug {
    /// `source` (`bytes` long) is not in the cache: compiling begins. Not
    /// called for a component found in the cache.
    fn compiling(&self, source: &CheckSource, bytes: usize);
    /// `source` is done: compiled, found in the cache, or failed.
    fn done(&self, source: &CheckSource, result: &Result<Compiled, LoadError>);
}

/// Compiles every one of `sources` (each once, however often named) into
/// the engine's cache, as many at a time as there are cores: Cranelift
/// already spreads one component's functions over the cores, but a
/// directory of small checks is dominated by per-component work that does
/// not. Results are in the order of the first mention of each source.
pub async fn compile_all(
    engine: &Engine,
    sources: impl IntoIterator<Item = CheckSource>,
    progress: Arc<dyn Progress>,
) -> Vec<Result<Compiled, LoadError>> {
    let mut unique: Vec<CheckSource> = Vec::new();
    for source in sources {
        if !unique.contains(&source) {
            unique.push(source);
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let slots = Arc::new(tokio::sync::Semaphore::new(cores));
    let tasks: Vec<_> = unique
        .iter()
        .map(|source| {
            let (engine, slots, progress) = (engine.clone(), slots.clone(), progress.clone());
            let source = source.clone();
            tokio::spawn(async move {
                // Never closed: `None` would only mean no bound.
                let _slot = slots.acquire_owned().await.ok();
                let result = compile_one(&engine, &source, progress.clone()).await;
                progress.done(&source, &result);
                result
            })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for (source, task) in unique.into_iter().zip(tasks) {
        results.push(match task.await {
            Ok(result) => result,
            // Loading does not panic; should it, that component failed.
            Err(err) => Err(LoadError::Invalid {
                check: source,
                message: format!("compiling failed: {err}"),
            }),
        });
    }
    results
}

async fn compile_one(
    engine: &Engine,
    source: &CheckSource,
    progress: Arc<dyn Progress>,
) -> Result<Compiled, LoadError> {
    let started = Instant::now();
    let announced = source.clone();
    let on_compile = Box::new(move |bytes| progress.compiling(&announced, bytes));
    let (_, outcome) = engine
        .load_component_observed(source, Some(on_compile))
        .await?;
    Ok(Compiled {
        source: source.clone(),
        bytes: size_of(source),
        took: started.elapsed(),
        outcome,
    })
}

/// The size of a component without reading it.
fn size_of(source: &CheckSource) -> Option<u64> {
    match source {
        CheckSource::Builtin(name) => builtins::lookup(name).map(|b| b.len() as u64),
        CheckSource::File(path) => std::fs::metadata(path).ok().map(|m| m.len()),
        CheckSource::Embedded { binary, role } => crate::wasm::embedded::elf::read_binary(binary)
            .ok()
            .and_then(|e| e.component(role).map(|c| c.len() as u64)),
    }
}
