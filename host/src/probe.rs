//! `vigil-probe`: `vigil check` for exec probes, in a lean process.
//!
//! kubelet, Docker and Consul start a process for every probe, so what
//! `vigil check` costs before and after the check itself is paid at every
//! probe of every pod (issue 15 §2). `vigil-probe` takes the same argv as
//! `vigil check` and gives the same verdict, output and exit code, because
//! it runs the same code ([`crate::commands::check::report`]) on a
//! component loaded from the same compiled-component cache, through the
//! same trust and digest checks ([`crate::wasm::Engine::one_shot_cached`]).
//! What it leaves out is what a check does not need: clap and its every
//! subcommand, and compiling.
//!
//! It never guesses. Whatever it cannot do cheaply it hands over to
//! `vigil check` with the same arguments, by `exec` (the same process, so
//! the prober sees one child and one exit code): a flag or value it does
//! not parse itself (`--help` included; `vigil check` then says what is
//! wrong, as it always did), and a component that is not in the cache yet
//! (compiling takes seconds; `vigil check` compiles and stores it, and the
//! next probe finds it). The `vigil` it runs is the one beside its own
//! executable, else the first on `PATH`. So it is never wrong, only
//! sometimes as slow as `vigil check`.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{CheckArgs, CheckInputs, PhaseArg};
use crate::commands::Exit;
use crate::commands::exit::ExitCodes;
use crate::wasm::{Engine, LoadError};

/// `vigil check`'s defaults for what is not given (its clap attributes;
/// a test holds them equal).
fn defaults(target: String) -> CheckArgs {
    CheckArgs {
        target,
        pid: None,
        phase: PhaseArg::Liveness,
        inputs: CheckInputs {
            config: Vec::new(),
            allow_hosts: Vec::new(),
            allow_paths: Vec::new(),
        },
        timeout: Duration::from_secs(5),
        memory: 64 << 20,
        json: false,
        exit_codes: ExitCodes::K8s,
    }
}

/// The arguments after `vigil check` (or `vigil-probe`), parsed as
/// `vigil check` parses them; `None` for anything this parser does not
/// handle exactly as clap would (an unknown or repeated flag, a value
/// that looks like a flag, `--help`, non-UTF-8, a bad value): those go to
/// `vigil check` itself ([`hand_over`]), which accepts or rejects them.
pub fn parse(argv: &[OsString]) -> Option<CheckArgs> {
    let mut target: Option<String> = None;
    let mut args = defaults(String::new());
    let (mut pid, mut phase, mut timeout, mut memory, mut json, mut codes) =
        (false, false, false, false, false, false);
    // Set a single-valued option once: clap refuses a repeat.
    fn once(seen: &mut bool) -> Option<()> {
        (!std::mem::replace(seen, true)).then_some(())
    }
    let mut words = argv.iter().map(|w| w.to_str());
    while let Some(word) = words.next() {
        let word = word?;
        if !word.starts_with('-') {
            if target.replace(word.to_owned()).is_some() {
                return None;
            }
            continue;
        }
        let (flag, inline) = match word.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
            _ => (word, None),
        };
        if flag == "--json" {
            if inline.is_some() {
                return None;
            }
            once(&mut json)?;
            args.json = true;
            continue;
        }
        let value = match inline {
            Some(value) => value,
            None => words.next()??,
        };
        // Clap reads a following flag as a flag, not as this one's value,
        // and an empty value is worth its own error message.
        if value.is_empty() || (inline.is_none() && value.starts_with('-')) {
            return None;
        }
        match flag {
            "--config" | "-c" => args
                .inputs
                .config
                .push(crate::cli::parse_key_value(value).ok()?),
            "--allow-host" => args.inputs.allow_hosts.push(value.to_owned()),
            "--allow-path" => args.inputs.allow_paths.push(PathBuf::from(value)),
            "--pid" => {
                once(&mut pid)?;
                if !value.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                args.pid = Some(value.parse().ok()?);
            }
            "--phase" => {
                once(&mut phase)?;
                args.phase = match value {
                    "startup" => PhaseArg::Startup,
                    "readiness" => PhaseArg::Readiness,
                    "liveness" => PhaseArg::Liveness,
                    _ => return None,
                };
            }
            "--timeout" => {
                once(&mut timeout)?;
                args.timeout = crate::units::parse_duration(value).ok()?;
            }
            "--memory" => {
                once(&mut memory)?;
                args.memory = crate::cli::parse_memory(value).ok()?;
            }
            "--exit-codes" => {
                once(&mut codes)?;
                args.exit_codes = match value {
                    "k8s" => ExitCodes::K8s,
                    "nagios" => ExitCodes::Nagios,
                    "docker" => ExitCodes::Docker,
                    _ => return None,
                };
            }
            _ => return None,
        }
    }
    args.target = target?;
    Some(args)
}

/// Runs the check as `vigil check` does; `None` when it must be handed
/// over instead (the component is not in the cache), before anything was
/// printed.
pub async fn run(args: CheckArgs) -> Option<Exit> {
    use crate::commands::{one_shot_engine_options, one_shot_inputs, say_load_error};
    let (source, grants) = match one_shot_inputs("check", &args.target, &args.inputs) {
        Ok(inputs) => inputs,
        Err(_) => return Some(args.exit_codes.of_load_error()),
    };
    let engine = match Engine::one_shot_cached(one_shot_engine_options()) {
        Ok(engine) => engine,
        Err(err) => {
            eprintln!("vigil check: {err}");
            return Some(args.exit_codes.of_load_error());
        }
    };
    let checker = match engine.load_checker(&source).await {
        Ok(checker) => checker,
        Err(LoadError::NotCompiled { .. }) => return None,
        Err(err) => {
            say_load_error("check", &err);
            return Some(args.exit_codes.of_load_error());
        }
    };
    Some(crate::commands::check::report(args, source, grants, checker).await)
}

/// The `vigil` to hand over to: the one beside this executable (an
/// installation keeps the two together), else `vigil` on `PATH`.
fn vigil_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("vigil")))
        .filter(|vigil| vigil.is_file())
        .unwrap_or_else(|| PathBuf::from("vigil"))
}

/// Replaces this process with `vigil check ARGV...`. Returns only when
/// that cannot be started; the caller then exits as for a check that
/// cannot be loaded.
pub fn hand_over(argv: &[OsString]) -> std::io::Error {
    let vigil = vigil_binary();
    let err = std::process::Command::new(&vigil)
        .arg0("vigil")
        .arg("check")
        .args(argv)
        .exec();
    eprintln!("vigil-probe: cannot run `{} check`: {err}", vigil.display());
    err
}

/// The exit of a probe whose hand-over failed: `vigil check`'s for a
/// check that cannot be loaded, in the convention asked for if that much
/// was understood.
pub fn hand_over_failed(argv: &[OsString]) -> Exit {
    let convention = argv
        .iter()
        .position(|w| w == OsStr::new("--exit-codes"))
        .and_then(|i| argv.get(i + 1))
        .and_then(|w| match w.to_str() {
            Some("nagios") => Some(ExitCodes::Nagios),
            Some("docker") => Some(ExitCodes::Docker),
            _ => None,
        })
        .unwrap_or_default();
    convention.of_load_error()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn clap(argv: &[&str]) -> Option<CheckArgs> {
        let argv = ["vigil", "check"].iter().chain(argv);
        match Cli::try_parse_from(argv).ok()?.command {
            Command::Check(args) => Some(args),
            _ => None,
        }
    }

    fn ours(argv: &[&str]) -> Option<CheckArgs> {
        let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
        parse(&argv)
    }

    /// Every argv the probe parses itself, it parses as `vigil check`
    /// does, defaults included; what it does not, it hands over (and
    /// then `vigil check` decides, so nothing clap accepts is lost).
    #[test]
    fn parses_as_vigil_check_or_hands_over() {
        let accepted: &[&[&str]] = &[
            &["builtin:tcp"],
            &["./check.wasm", "--json"],
            &[
                "builtin:tcp",
                "-c",
                "port=80",
                "--config",
                "host=a",
                "--config=x=y=z",
            ],
            &[
                "--allow-host",
                "tcp://127.0.0.1:80",
                "builtin:tcp",
                "--allow-host=h:1",
            ],
            &[
                "builtin:file",
                "--allow-path",
                "/etc",
                "--allow-path=rel/dir",
            ],
            &["builtin:process", "--pid", "1", "--phase", "readiness"],
            &["builtin:tcp", "--timeout", "1.5s", "--memory", "32MiB"],
            &[
                "builtin:tcp",
                "--timeout=0s",
                "--memory=1KiB",
                "--phase=startup",
            ],
            &["builtin:tcp", "--exit-codes", "nagios"],
            &["builtin:tcp", "--exit-codes=docker", "--phase", "liveness"],
            &["builtin:tcp", "--exit-codes", "k8s", "--pid=4294967295"],
        ];
        for argv in accepted {
            let ours = ours(argv).unwrap_or_else(|| panic!("{argv:?} is handed over"));
            let theirs = clap(argv).unwrap_or_else(|| panic!("{argv:?} is refused by clap"));
            assert_eq!(format!("{ours:?}"), format!("{theirs:?}"), "{argv:?}");
        }
        let handed_over: &[&[&str]] = &[
            &[],
            &["--help"],
            &["-h"],
            &["builtin:tcp", "--help"],
            &["builtin:tcp", "--version"],
            &["a", "b"],
            &["builtin:tcp", "--"],
            &["builtin:tcp", "--json", "--json"],
            &["builtin:tcp", "--json=true"],
            &["builtin:tcp", "--pid", "1", "--pid", "2"],
            &["builtin:tcp", "--pid", "-1"],
            &["builtin:tcp", "--pid", "+1"],
            &["builtin:tcp", "--pid", "4294967296"],
            &["builtin:tcp", "--phase", "Liveness"],
            &["builtin:tcp", "--timeout", "5"],
            &["builtin:tcp", "--timeout", "1s", "--timeout", "2s"],
            &["builtin:tcp", "--memory", "lots"],
            &["builtin:tcp", "--exit-codes", "systemd"],
            &["builtin:tcp", "--config", "novalue"],
            &["builtin:tcp", "--config", "-c"],
            &["builtin:tcp", "--config"],
            &["builtin:tcp", "-cport=1"],
            &["builtin:tcp", "--allow-host="],
            &["builtin:tcp", "--unknown", "x"],
            &["builtin:tcp", "-x"],
            &["-"],
        ];
        for argv in handed_over {
            assert!(ours(argv).is_none(), "{argv:?} is parsed by the probe");
        }
    }

    #[test]
    fn a_failed_hand_over_exits_in_the_convention_asked_for() {
        let argv = |words: &[&str]| -> Vec<OsString> { words.iter().map(OsString::from).collect() };
        assert_eq!(hand_over_failed(&argv(&["x"])), Exit::Usage);
        assert_eq!(
            hand_over_failed(&argv(&["x", "--exit-codes", "nagios"])),
            Exit::Convention(3)
        );
        assert_eq!(
            hand_over_failed(&argv(&["--exit-codes", "docker", "x"])),
            Exit::Convention(1)
        );
    }
}
