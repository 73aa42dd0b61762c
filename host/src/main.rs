//! The `vigil` binary: parse, set up logging, dispatch, exit.

use clap::Parser;
use vigil::cli::{Cli, Command};
use vigil::commands;
use vigil::commands::Exit;
use vigil::commands::start_stop::Action;

fn main() {
    let cli = Cli::parse();
    commands::init_logging();
    // `vigil check` runs one check and exits: as an exec probe it is paid
    // for at every probe, so it starts no worker threads (the check and
    // its host calls run on this thread; blocking work still gets tokio's
    // blocking pool). Everything else supervises, serves or waits on
    // several things at once.
    let runtime = if matches!(cli.command, Command::Check(_)) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            // Look at timers and sockets after every task poll, not every
            // 61st: a spinning check yields only once per epoch tick (10
            // ms), so at the default a few of them held every other check's
            // timer and I/O back by over a second
            // (tests/e2e/supervisor_healthiness.rs).
            .event_interval(1)
            .enable_all()
            .build()
    };
    let code = match runtime {
        Ok(runtime) => runtime.block_on(async {
            match cli.command {
                Command::Check(args) => commands::check::run(args).await,
                Command::Daemonize(args) => commands::daemonize::run(args).await,
                Command::Inspect(args) => commands::inspect::run(args),
                Command::Embed(args) => commands::embed::run(args).await,
                Command::Compile(args) => commands::compile::run(args).await,
                Command::Run(args) => commands::run::run(args).await,
                Command::Validate(args) => commands::validate::run(args).await,
                Command::Status(args) => commands::status::run(args).await,
                Command::Start(args) => commands::start_stop::run(Action::Start, args).await,
                Command::Stop(args) => commands::start_stop::run(Action::Stop, args).await,
                Command::Restart(args) => commands::start_stop::run(Action::Restart, args).await,
                Command::Replace(args) => commands::start_stop::run(Action::Replace, args).await,
                Command::Scale(args) => commands::scale::run(args).await,
                Command::Reload(args) => commands::instance::reload(args).await,
                Command::Shutdown(args) => commands::instance::shutdown(args).await,
                Command::Journal(args) => commands::journal::run(args).await,
                Command::Logs(args) => commands::logs::run(args).await,
                Command::Top(args) => commands::top::run(args).await,
                Command::Replay(args) => commands::replay::run(args).await,
            }
        }),
        Err(err) => {
            eprintln!("vigil: cannot start the async runtime: {err}");
            Exit::Failed
        }
    };
    std::process::exit(code.code());
}
