//! `vigil validate DIR`: every problem of a checks directory, at once.

use super::Exit;
use crate::cli::ValidateArgs;
use crate::config::load_dir;

pub fn run(args: ValidateArgs) -> Exit {
    match load_dir(&args.checks) {
        Ok(services) => {
            let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
            println!(
                "{}: {} services ok: {}",
                args.checks.display(),
                services.len(),
                names.join(", ")
            );
            Exit::Ok
        }
        Err(report) => {
            // Problems quote directory names, which may hold anything.
            let problems = format!("{}: {report}", args.checks.display());
            eprint!("{}", crate::untrusted::block(&problems));
            Exit::Failed
        }
    }
}
