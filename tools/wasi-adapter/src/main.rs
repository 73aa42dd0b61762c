//! `vigil-wasi-adapter OUT.wasm`: writes the WASI preview1 *reactor*
//! adapter of the wasmtime release Vigil links, for
//! `wasm-tools component new MODULE.wasm --adapt wasi_snapshot_preview1=OUT.wasm`.
//!
//! A C check is a wasm32-wasi (preview1) module; the adapter maps its
//! preview1 imports onto WASI 0.2 so that it becomes a component. The
//! reactor flavour is for libraries: a check exports `check`, not `_start`.

use std::path::PathBuf;
use std::process::ExitCode;

use wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next().map(PathBuf::from), args.next()) else {
        eprintln!("usage: vigil-wasi-adapter OUT.wasm");
        return ExitCode::from(2);
    };
    // Leave an identical file alone, so that make sees nothing new.
    if std::fs::read(&out).ok().as_deref() == Some(WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER) {
        return ExitCode::SUCCESS;
    }
    match std::fs::write(&out, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil-wasi-adapter: cannot write {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}
