//! The `vigil` binary: parse, set up logging, dispatch, exit.

use clap::Parser;
use vigil::cli::{Cli, Command};
use vigil::commands;

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let code = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(async {
            match cli.command {
                Command::Check(args) => commands::check::run(args).await,
                Command::Inspect(args) => commands::inspect::run(args),
                Command::Run(args) => commands::run::run(args).await,
                Command::Validate(args) => commands::validate::run(args),
            }
        }),
        Err(err) => {
            eprintln!("vigil: cannot start the async runtime: {err}");
            1
        }
    };
    std::process::exit(code);
}
