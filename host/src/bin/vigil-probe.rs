//! `vigil-probe`: `vigil check` for exec probes, without what a single
//! check does not need (see `vigil::probe`). Same arguments, verdict,
//! output and exit code; anything it cannot do cheaply is handed over to
//! `vigil check`.

use std::ffi::OsString;

fn main() {
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    let Some(args) = vigil::probe::parse(&argv) else {
        vigil::probe::hand_over(&argv);
        std::process::exit(vigil::probe::hand_over_failed(&argv).code());
    };
    // Warnings as `vigil check` gives them (an fs capability this host
    // cannot offer, an HTTP client that cannot be built): the same stderr.
    // Measured: a dozen page faults, no task-clock beyond the noise.
    vigil::commands::init_logging();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let exit = match runtime {
        Ok(runtime) => runtime.block_on(vigil::probe::run(args)),
        Err(err) => {
            eprintln!("vigil check: cannot start the async runtime: {err}");
            Some(vigil::commands::Exit::Failed)
        }
    };
    match exit {
        Some(exit) => std::process::exit(exit.code()),
        None => {
            vigil::probe::hand_over(&argv);
            std::process::exit(vigil::probe::hand_over_failed(&argv).code());
        }
    }
}
