//! README "Checks are sandboxed", as an attacker sees it: everything a
//! component can reach or make the host hold (memories, tables, resources,
//! handles, strings, commands, WASI imports, time) is bounded per instance.
//!
//! Components that a Rust guest cannot be (several memories, a start
//! function, raw resource handles) are written here in WAT and assembled
//! at test time with the `wat` crate; the rest are tests/programs.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use vigil::wasm::{
    Action, CheckReport, CheckSource, Event, Exit, ExitStatus, Grants, History, LoaderError,
    Sandbox, SpawnContext, Verdict,
};

use crate::support::*;

const SHORT: Duration = Duration::from_secs(2);
const MIB: usize = 1 << 20;

/// What a check component is made of, around a core module `$Main` that
/// exports `memory`, a bump `cabi_realloc`, `$answer` (writes an outcome
/// and returns its address) and the `check` that `main_body` defines.
#[derive(Default)]
struct Wat<'a> {
    /// Component items before `$Main`: imports, more core modules and
    /// their instances.
    before: &'a str,
    /// Imports of `$Main`.
    main_imports: &'a str,
    /// `$Main`'s `check` export (and anything else it needs).
    main_body: &'a str,
    /// `(with ...)` clauses instantiating `$Main`.
    with: &'a str,
}

/// The flattened `check: func(target) -> outcome` in core wasm.
const CHECK_SIGNATURE: &str = "(param i32 i32 i32 i32 i32 i64 i32 i32 i32 i32) (result i32)";

/// An `ok` answer, for a `check` body.
const ANSWER_OK: &str = "(call $answer (i32.const 0) (i32.const 0) (i32.const 0))";

impl Wat<'_> {
    fn component(&self) -> String {
        let Wat {
            before,
            main_imports,
            main_body,
            with,
        } = self;
        format!(
            r#"(component
  {before}
  (core module $Main
    {main_imports}
    (memory (export "memory") 1)
    (global $bump (mut i32) (i32.const 4096))
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p (i32.and
        (i32.add (global.get $bump) (i32.sub (local.get 2) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get 2))))
      (global.set $bump (i32.add (local.get $p) (local.get 3)))
      (local.get $p))
    ;; outcome: case at 0, reason pointer at 4, length at 8
    (func $answer (param $case i32) (param $ptr i32) (param $len i32) (result i32)
      (i32.store8 (i32.const 0) (local.get $case))
      (i32.store (i32.const 4) (local.get $ptr))
      (i32.store (i32.const 8) (local.get $len))
      (i32.const 0))
    {main_body})
  (core instance $main (instantiate $Main {with}))
  (type $phase-t (enum "startup" "readiness" "liveness"))
  (export $phase "phase" (type $phase-t))
  (type $target-t (record
    (field "service" string)
    (field "phase" $phase)
    (field "pid" (option u32))
    (field "started-at-ms" u64)
    (field "attempt" u32)
    (field "restarts" u32)
    (field "config" (list (tuple string string)))))
  (export $target "target" (type $target-t))
  (type $outcome-t (variant (case "ok") (case "retry" string) (case "error" string)))
  (export $outcome "outcome" (type $outcome-t))
  (alias core export $main "memory" (core memory $memory))
  (alias core export $main "cabi_realloc" (core func $realloc))
  (alias core export $main "check" (core func $check-core))
  (func $check (param "target" $target) (result $outcome)
    (canon lift (core func $check-core) (memory $memory) (realloc $realloc)))
  (export "check" (func $check)))"#
        )
    }

    /// Assembles the component and runs it once under `sandbox`.
    async fn run(&self, name: &str, sandbox: &Sandbox) -> CheckReport {
        let text = self.component();
        let bytes = wat::parse_str(&text).unwrap_or_else(|err| panic!("{name}: {err}\n{text}"));
        let path = scratch(name).join("check.wasm");
        std::fs::write(&path, bytes).expect("write component");
        run(path.to_str().expect("utf8"), &[], None, sandbox).await
    }
}

fn capped(memory: usize) -> Sandbox {
    Sandbox::new(Grants::default(), SHORT, memory)
}

/// `count` core instances of `module`, named `$prefix1`, `$prefix2`, ...
fn instances(module: &str, prefix: &str, count: usize) -> String {
    (1..=count)
        .map(|i| format!("(core instance ${prefix}{i} (instantiate {module}))\n"))
        .collect()
}

/// Issue 10 item 7: seven extra 30 MiB memories, created at instantiation,
/// under a 32 MiB cap. The cap is the instance's, not each memory's.
#[tokio::test(flavor = "multi_thread")]
async fn memories_created_at_instantiation_share_one_cap() {
    let before = format!(
        "(core module $Big (memory 480))\n{}",
        instances("$Big", "big", 7)
    );
    let wat = Wat {
        before: &before,
        main_body: &format!("(func (export \"check\") {CHECK_SIGNATURE} {ANSWER_OK})"),
        ..Wat::default()
    };
    let report = wat.run("seven-memories", &capped(32 * MIB)).await;
    match &report.verdict {
        Verdict::Trapped(reason) => {
            assert!(reason.contains("memory limit of 32 MiB"), "{reason}")
        }
        other => panic!("210 MiB of memories ran under a 32 MiB cap: {other:?}"),
    }
    // The same component fits a cap that holds all of it.
    let report = wat.run("seven-memories-fit", &capped(256 * MIB)).await;
    assert_eq!(report.verdict, Verdict::Ok, "{report:?}");
}

/// The same, with memories that start empty and grow during the call: the
/// guest sees `memory.grow` fail once the sum would pass the cap.
#[tokio::test(flavor = "multi_thread")]
async fn memories_grown_during_a_call_share_one_cap() {
    let before = format!(
        "(core module $Growable (memory 0)
           (func (export \"grow\") (param i32) (result i32) (memory.grow (local.get 0))))\n{}",
        instances("$Growable", "g", 7)
    );
    let mut main_imports = String::new();
    let mut with = String::new();
    let mut grows = String::new();
    for i in 1..=7 {
        main_imports.push_str(&format!(
            "(import \"g{i}\" \"grow\" (func $grow{i} (param i32) (result i32)))\n"
        ));
        with.push_str(&format!("(with \"g{i}\" (instance $g{i}))"));
        grows.push_str(&format!(
            "(if (i32.ne (call $grow{i} (i32.const 480)) (i32.const -1))
               (then (local.set $n (i32.add (local.get $n) (i32.const 1)))))\n"
        ));
    }
    // Answers `retry("grew N of 7")`, or `ok` when all seven grew.
    let main_body = format!(
        "(data (i32.const 16) \"grew ? of 7\")
         (func (export \"check\") {CHECK_SIGNATURE}
           (local $n i32)
           {grows}
           (i32.store8 (i32.const 21) (i32.add (i32.const 48) (local.get $n)))
           (if (result i32) (i32.eq (local.get $n) (i32.const 7))
             (then {ANSWER_OK})
             (else (call $answer (i32.const 1) (i32.const 16) (i32.const 11)))))"
    );
    let wat = Wat {
        before: &before,
        main_imports: &main_imports,
        main_body: &main_body,
        with: &with,
    };
    // 64 KiB of `$Main` plus two 30 MiB growths fit 64 MiB; a third does not.
    let report = wat.run("grown-memories", &capped(64 * MIB)).await;
    assert_eq!(
        report.verdict,
        Verdict::Retry("grew 2 of 7".into()),
        "{report:?}"
    );
}

/// WASI's clocks and polls, imported as a Rust guest would (the linker
/// serves any 0.2 version).
const WASI_CLOCK_IMPORTS: &str = r#"
  (import "wasi:io/poll@0.2.0" (instance $poll
    (export "pollable" (type $pollable-e (sub resource)))
    (export "[method]pollable.block" (func (param "self" (borrow $pollable-e))))))
  (alias export $poll "pollable" (type $pollable))
  (import "wasi:clocks/monotonic-clock@0.2.0" (instance $clock
    (alias outer 1 $pollable (type $p))
    (export "pollable" (type $pe (eq $p)))
    (type $own (own $pe))
    (export "subscribe-duration" (func (param "when" u64) (result $own)))))
  (core func $subscribe (canon lower (func $clock "subscribe-duration")))
  (core func $block (canon lower (func $poll "[method]pollable.block")))
  (core instance $wasi
    (export "subscribe-duration" (func $subscribe))
    (export "block" (func $block)))
"#;

const WASI_CLOCK_MAIN_IMPORTS: &str = r#"
  (import "wasi" "subscribe-duration" (func $subscribe (param i64) (result i32)))
  (import "wasi" "block" (func $block (param i32)))
"#;

/// A loop that runs `body` `count` times, for a `check` body.
fn repeat(count: u32, body: &str) -> String {
    format!(
        "(local $i i32)
         (loop $again
           {body}
           (local.set $i (i32.add (local.get $i) (i32.const 1)))
           (br_if $again (i32.lt_u (local.get $i) (i32.const {count}))))"
    )
}

/// Every pollable a guest asks for lives in host memory, outside the
/// memory cap: a guest that never drops them is stopped long before the
/// host's memory is at risk (wasmtime alone allowed 100,000).
#[tokio::test(flavor = "multi_thread")]
async fn host_resources_a_guest_holds_are_bounded() {
    let hoard = repeat(50_000, "(drop (call $subscribe (i64.const 3600000000000)))");
    let wat = Wat {
        before: WASI_CLOCK_IMPORTS,
        main_imports: WASI_CLOCK_MAIN_IMPORTS,
        main_body: &format!("(func (export \"check\") {CHECK_SIGNATURE} {hoard} {ANSWER_OK})"),
        with: "(with \"wasi\" (instance $wasi))",
    };
    let report = wat.run("pollable-hoard", &capped(64 * MIB)).await;
    match &report.verdict {
        Verdict::Trapped(reason) => assert!(reason.contains("resource limit"), "{reason}"),
        other => panic!("a guest held 50,000 host pollables: {other:?}"),
    }
}

/// Resources a component defines itself never reach host code, but each
/// handle is host memory too.
#[tokio::test(flavor = "multi_thread")]
async fn handles_of_a_components_own_resources_are_bounded() {
    let hoard = repeat(50_000, "(drop (call $new (local.get $i)))");
    let wat = Wat {
        before: "(type $thing (resource (rep i32)))
                 (core func $new (canon resource.new $thing))
                 (core instance $things (export \"new\" (func $new)))",
        main_imports: "(import \"things\" \"new\" (func $new (param i32) (result i32)))",
        main_body: &format!("(func (export \"check\") {CHECK_SIGNATURE} {hoard} {ANSWER_OK})"),
        with: "(with \"things\" (instance $things))",
    };
    let report = wat.run("handle-hoard", &capped(64 * MIB)).await;
    match &report.verdict {
        Verdict::Trapped(reason) => assert!(reason.contains("handle limit"), "{reason}"),
        other => panic!("a guest held 50,000 handles: {other:?}"),
    }
}

/// A reason is written to the journal and shown by `vigil status`: a
/// 10 MiB one is cut where it enters the host, on a character boundary,
/// with a note.
#[tokio::test(flavor = "multi_thread")]
async fn a_huge_reason_is_cut() {
    let bytes = (10 * MIB).to_string();
    let report = run(
        programs::OVERSIZED,
        &[("reason-bytes", &bytes)],
        None,
        &sandbox(&[], &[], Duration::from_secs(10)),
    )
    .await;
    let Verdict::Retry(reason) = &report.verdict else {
        panic!("expected a retry, got {:?}", report.verdict.kind());
    };
    assert!(reason.len() < 8 * 1024, "kept {} bytes", reason.len());
    let (kept, note) = reason
        .split_once(" [truncated: ")
        .unwrap_or_else(|| panic!("no note: {}", head(reason)));
    let cut: usize = note
        .strip_suffix(" more bytes]")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("note: {note}"));
    assert!(kept.chars().all(|c| c == 'é'), "cut inside a character");
    assert_eq!(kept.len() + cut, 10 * MIB);
}

/// `vigil check` with the `--config` of the check.
fn vigil_check(program: &str, config: &[String]) -> std::process::Output {
    let mut args = vec!["check".to_owned(), program.to_owned()];
    for setting in config {
        args.extend(["--config".to_owned(), setting.clone()]);
    }
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(&args)
        .args(["--timeout", "20s"])
        .env("VIGIL_LOG", "vigil::guest=debug")
        .env(
            "XDG_CACHE_HOME",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache"),
        )
        .output()
        .expect("run vigil")
}

/// The first characters of `text`, for a failure message.
fn head(text: &str) -> String {
    text.chars().take(200).collect()
}

/// The same through `vigil check`, which prints the reason.
#[test]
fn vigil_check_prints_a_bounded_reason() {
    let out = vigil_check(programs::OVERSIZED, &[format!("reason-bytes={}", 10 * MIB)]);
    assert_eq!(out.status.code(), Some(75), "retry: {:?}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.len() < 64 * 1024, "stdout: {} bytes", stdout.len());
    assert!(stdout.contains("[truncated: "), "{}", head(&stdout));
}

/// A guest's log line is kept to 1 KiB; Vigil's own debug log of it (all
/// guest lines go there at `VIGIL_LOG=vigil::guest=debug`) is as bounded.
#[test]
fn the_debug_log_of_a_guest_line_is_bounded() {
    let out = vigil_check(programs::OVERSIZED, &[format!("log-bytes={MIB}")]);
    assert_eq!(out.status.code(), Some(75), "retry: {:?}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("LLLL"),
        "the debug line is missing: {}",
        head(&stderr)
    );
    assert!(stderr.len() < 64 * 1024, "stderr: {} bytes", stderr.len());
}

fn spawn_context(config: &[(&str, String)]) -> SpawnContext {
    SpawnContext {
        service: "big".into(),
        restarts: 0,
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

async fn oversized_loader() -> vigil::wasm::Loader {
    let source = CheckSource::File(programs::LOADER_OVERSIZED.into());
    engine().load_loader(&source).await.expect("load loader")
}

/// A loader's command goes to `execve` and is merged into the service's
/// environment variable by variable: one the kernel would refuse is
/// refused where it enters the host.
#[tokio::test(flavor = "multi_thread")]
async fn a_loader_cannot_hand_over_an_oversized_command() {
    let loader = oversized_loader().await;
    let fine = loader
        .spawn(&spawn_context(&[
            ("args", "3".into()),
            ("arg-bytes", "2".into()),
        ]))
        .await
        .expect("a small command");
    assert_eq!(fine.argv, vec!["aa", "aa", "aa"]);

    let refused = [
        ("5000 arguments", vec![("args", "5000".to_owned())]),
        (
            "bytes of arguments",
            vec![
                ("args", "1".to_owned()),
                ("arg-bytes", (2 * MIB).to_string()),
            ],
        ),
        (
            "5000 environment variables",
            vec![("vars", "5000".to_owned())],
        ),
    ];
    for (needle, config) in refused {
        match loader.spawn(&spawn_context(&config)).await {
            Err(err @ LoaderError::CommandTooLarge { .. }) => {
                assert!(err.to_string().contains(needle), "{err}")
            }
            Err(other) => panic!("{needle}: {other}"),
            Ok(command) => panic!(
                "{needle}: took {} arguments and {} variables",
                command.argv.len(),
                command.env.len()
            ),
        }
    }
    // Half a million empty variables: 8 MiB in the guest, three times that
    // as host strings. Stopped before the host holds them.
    match loader
        .spawn(&spawn_context(&[("vars", "500000".into())]))
        .await
    {
        Err(LoaderError::Failed { verdict, .. }) => assert!(
            matches!(&verdict, Verdict::Trapped(r) if r.contains("too much data")),
            "{verdict:?}"
        ),
        Err(other) => panic!("expected a trap: {other}"),
        Ok(command) => panic!("took {} variables", command.env.len()),
    }
}

/// A loader's reasons go to the journal like a check's: cut to 4 KiB.
#[tokio::test(flavor = "multi_thread")]
async fn a_loaders_reasons_are_cut() {
    let loader = oversized_loader().await;
    let declined = loader
        .spawn(&spawn_context(&[("decline-bytes", (10 * MIB).to_string())]))
        .await;
    match declined {
        Err(LoaderError::Declined { reason, .. }) => {
            assert!(reason.len() < 8 * 1024, "kept {} bytes", reason.len());
            assert!(reason.contains("[truncated: "), "{}", head(&reason));
        }
        Err(other) => panic!("expected a decline: {other}"),
        Ok(command) => panic!("expected a decline: {:?}", command.argv.len()),
    }

    let history = History {
        service: "big".into(),
        restarts: 0,
        uptime_ms: 10,
        recent_exits: vec![],
        config: vec![("stop-bytes".into(), (10 * MIB).to_string())],
    };
    let exited = Event::Exited(Exit {
        status: ExitStatus::Code(1).into(),
        uptime_ms: 10,
    });
    match loader.decide(&exited, &history).await.expect("decide") {
        Action::Stop(reason) => {
            assert!(reason.len() < 8 * 1024, "kept {} bytes", reason.len());
            assert!(reason.contains("[truncated: "), "{}", head(&reason));
        }
        other => panic!("expected a stop: {other:?}"),
    }
}

/// A start function runs during instantiation, before `check` is called:
/// the CPU deadline must already hold.
#[tokio::test(flavor = "multi_thread")]
async fn a_component_spinning_while_it_is_instantiated_times_out() {
    let wat = Wat {
        before: "(core module $Spin (func $spin (loop $forever (br $forever))) (start $spin))
                 (core instance $spin (instantiate $Spin))",
        main_body: &format!("(func (export \"check\") {CHECK_SIGNATURE} {ANSWER_OK})"),
        ..Wat::default()
    };
    let report = wat.run("spin-at-start", &capped(64 * MIB)).await;
    assert!(matches!(report.verdict, Verdict::TimedOut(_)), "{report:?}");
}

/// Time: a guest that blocks on a pollable an hour away is parked in the
/// host, where no epoch reaches it; the wall-clock deadline ends it.
#[tokio::test(flavor = "multi_thread")]
async fn blocking_on_a_far_pollable_ends_at_the_deadline() {
    let wat = Wat {
        before: WASI_CLOCK_IMPORTS,
        main_imports: WASI_CLOCK_MAIN_IMPORTS,
        main_body: &format!(
            "(func (export \"check\") {CHECK_SIGNATURE}
               (call $block (call $subscribe (i64.const 3600000000000)))
               {ANSWER_OK})"
        ),
        with: "(with \"wasi\" (instance $wasi))",
    };
    let report = wat.run("block-an-hour", &capped(64 * MIB)).await;
    assert!(matches!(report.verdict, Verdict::TimedOut(_)), "{report:?}");
    assert!(report.duration >= SHORT, "{report:?}");
}

/// The guest's allocator runs inside the host, while the host copies
/// `target` in: a `cabi_realloc` that never returns is cut by the CPU
/// deadline all the same.
#[tokio::test(flavor = "multi_thread")]
async fn a_realloc_that_never_returns_times_out() {
    let wat = Wat {
        main_body: &format!("(func (export \"check\") {CHECK_SIGNATURE} {ANSWER_OK})"),
        ..Wat::default()
    };
    let text = wat.component().replacen(
        "(local $p i32)",
        "(local $p i32) (loop $forever (br $forever))",
        1,
    );
    let bytes = wat::parse_str(&text).expect("assemble");
    let path = scratch("realloc-spin").join("check.wasm");
    std::fs::write(&path, bytes).expect("write component");
    let report = run(path.to_str().expect("utf8"), &[], None, &capped(64 * MIB)).await;
    assert!(matches!(report.verdict, Verdict::TimedOut(_)), "{report:?}");
}

/// What a guest returns that is not a valid outcome is a trap, never `ok`.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_answers_are_traps() {
    let answers = [
        // No such case.
        (
            "bad-case",
            "(call $answer (i32.const 7) (i32.const 0) (i32.const 0))",
        ),
        // A reason past the end of memory.
        (
            "bad-reason-pointer",
            "(call $answer (i32.const 1) (i32.const 65530) (i32.const 100))",
        ),
        // A reason that is not UTF-8.
        (
            "bad-utf8",
            "(i32.store (i32.const 16) (i32.const 0xffffffff))
             (call $answer (i32.const 2) (i32.const 16) (i32.const 4))",
        ),
        // An outcome that runs past the end of memory.
        ("bad-outcome-pointer", "(i32.const 65532)"),
    ];
    for (name, answer) in answers {
        let wat = Wat {
            main_body: &format!("(func (export \"check\") {CHECK_SIGNATURE} {answer})"),
            ..Wat::default()
        };
        let report = wat.run(name, &capped(64 * MIB)).await;
        assert!(
            matches!(report.verdict, Verdict::Trapped(_)),
            "{name}: {report:?}"
        );
    }
}

/// Every WASI import a Rust program reaches through `std` is denied or
/// empty, from inside the real `vigil check`: its stdin, environment, files
/// and a live loopback listener are right there.
#[test]
fn wasi_gives_a_check_nothing() {
    let dir = scratch("wasi-probe");
    std::fs::write(dir.join("secret.txt"), "top secret").expect("write");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = format!("port={}", listener.local_addr().expect("addr").port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "check",
            programs::SANDBOX_PROBE,
            "--config",
            &port,
            "--json",
        ])
        .current_dir(&dir)
        .env("VIGIL_PROBE_SECRET", "top secret")
        .env(
            "XDG_CACHE_HOME",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vigil");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"top secret\n").expect("write stdin");
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    drop(listener);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each attempt was made, and logged as denied.
    for attempt in [
        "read_dir /",
        "read /etc/passwd",
        "env vars",
        "stdin",
        "tcp connect",
        "udp",
    ] {
        assert!(
            stdout.contains(&format!("denied: {attempt}")),
            "{attempt}: {stdout}"
        );
    }
    assert!(!dir.join("probe.txt").exists(), "the check created a file");
}

/// `exit(0)` from a check is no verdict: it must not count as `ok`.
#[tokio::test(flavor = "multi_thread")]
async fn exit_from_a_check_is_a_trap_not_ok() {
    for code in ["0", "3"] {
        let report = run(
            programs::EXIT_IN_CHECK,
            &[("code", code)],
            None,
            &sandbox(&[], &[], SHORT),
        )
        .await;
        match &report.verdict {
            Verdict::Trapped(reason) => assert!(reason.contains("exit("), "{reason}"),
            other => panic!("exit({code}) gave {other:?}"),
        }
    }
}
