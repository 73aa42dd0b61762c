//! README "Sandbox": a hostile or broken check fails itself, never the
//! supervisor or another check. Each program is a real component from
//! tests/programs.

use std::time::Duration;

use vigil::wasm::{CheckSource, LoadError, Verdict};

use crate::support::*;

const SHORT: Duration = Duration::from_secs(2);

fn assert_trapped(verdict: &Verdict, needle: &str) {
    match verdict {
        Verdict::Trapped(reason) => assert!(
            reason.contains(needle),
            "trap reason {reason:?} lacks {needle:?}"
        ),
        other => panic!("expected a trap ({needle}), got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn infinite_loop_times_out() {
    let report = run(
        programs::INFINITE_LOOP,
        &[],
        None,
        &sandbox(&[], &[], SHORT),
    )
    .await;
    assert!(matches!(report.verdict, Verdict::TimedOut(_)), "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_bomb_hits_the_cap() {
    let report = run(programs::MEMORY_BOMB, &[], None, &sandbox(&[], &[], SHORT)).await;
    assert_trapped(&report.verdict, "memory limit of 64 MiB");
}

#[tokio::test(flavor = "multi_thread")]
async fn deep_recursion_overflows_the_stack() {
    let report = run(
        programs::DEEP_RECURSION,
        &[],
        None,
        &sandbox(&[], &[], SHORT),
    )
    .await;
    assert_trapped(&report.verdict, "stack overflow");
}

#[tokio::test(flavor = "multi_thread")]
async fn panic_is_a_trap_with_its_message_captured() {
    let report = run(programs::PANIC, &[], None, &sandbox(&[], &[], SHORT)).await;
    assert_trapped(&report.verdict, "panicked");
    assert!(
        report.output.contains("boom from guest"),
        "output: {:?}",
        report.output
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stdout_flood_is_capped() {
    let report = run(
        programs::STDOUT_FLOOD,
        &[],
        None,
        &sandbox(&[], &[], Duration::from_secs(20)),
    )
    .await;
    assert!(
        report.output.len() < 64 * 1024,
        "captured {} bytes",
        report.output.len()
    );
    assert!(
        report.output.contains("more bytes of output dropped"),
        "{:?}",
        &report.output[..200]
    );
    // The flood itself is harmless: the check still answers (or, on a
    // slow machine, runs out its deadline), it never takes the host down.
    assert!(
        matches!(report.verdict, Verdict::Ok | Verdict::TimedOut(_)),
        "{:?}",
        report.verdict
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn log_spam_is_capped() {
    let report = run(programs::LOG_SPAM, &[], None, &sandbox(&[], &[], SHORT)).await;
    assert_eq!(report.verdict, Verdict::Ok);
    assert_eq!(report.logs.len(), 101, "100 lines and a note");
    assert!(
        report.logs[100].contains("more log lines dropped"),
        "{:?}",
        report.logs[100]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_to_a_host_not_granted_is_denied() {
    let server = HttpServer::start();
    let url = server.url("/ok");
    let report = run(
        programs::HTTP_GET,
        &[("url", &url)],
        None,
        &sandbox(&[], &[], SHORT),
    )
    .await;
    match &report.verdict {
        Verdict::Error(reason) => assert!(reason.contains("Denied"), "{reason}"),
        other => panic!("expected a denied error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redirect_to_a_host_not_granted_is_not_followed() {
    let granted = HttpServer::start();
    let other = HttpServer::start();
    let escape = granted.url(&format!("/redirect?to={}", other.url("/ok")));
    let inside = granted.url(&format!("/redirect?to={}", granted.url("/ok")));
    let sandbox = sandbox(&[granted.grant()], &[], SHORT);

    let report = run(
        programs::HTTP_GET,
        &[("url", &escape), ("follow", "true")],
        None,
        &sandbox,
    )
    .await;
    match &report.verdict {
        Verdict::Ok => {}
        other => panic!("expected the guest to see the 3xx, got {other:?}"),
    }
    assert!(
        report.logs.iter().any(|l| l.contains("status 302")),
        "{:?}",
        report.logs
    );

    let report = run(
        programs::HTTP_GET,
        &[("url", &inside), ("follow", "true")],
        None,
        &sandbox,
    )
    .await;
    assert!(
        report.logs.iter().any(|l| l.contains("status 200")),
        "{:?}",
        report.logs
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn paths_cannot_escape_by_dotdot_or_symlink() {
    let root = scratch("escape");
    let granted_dir = root.join("granted");
    std::fs::create_dir_all(&granted_dir).expect("mkdir");
    std::fs::write(root.join("secret"), "top secret").expect("write secret");
    std::fs::write(granted_dir.join("public"), "hello").expect("write public");
    std::os::unix::fs::symlink(root.join("secret"), granted_dir.join("link")).expect("symlink");
    let sandbox = sandbox(&[], std::slice::from_ref(&granted_dir), SHORT);

    let public = granted_dir.join("public");
    let report = run(
        programs::FS_READ,
        &[("path", public.to_str().expect("utf8"))],
        None,
        &sandbox,
    )
    .await;
    assert_eq!(report.verdict, Verdict::Ok, "{report:?}");

    let dotdot = format!("{}/../secret", granted_dir.display());
    let symlink = granted_dir.join("link");
    for path in [dotdot.as_str(), symlink.to_str().expect("utf8")] {
        let report = run(programs::FS_READ, &[("path", path)], None, &sandbox).await;
        match &report.verdict {
            Verdict::Error(reason) => {
                assert!(reason.contains("Denied"), "{path}: {reason}");
                assert!(!reason.contains("top secret"), "{path}: leaked");
            }
            other => panic!("{path}: expected denied, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn process_outside_the_target_tree_is_denied() {
    let mut child = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("spawn");
    let me = child.id().to_string();
    let sandbox = sandbox(&[], &[], SHORT);
    let own = run(
        programs::PROCESS_STAT,
        &[("pid", &me)],
        Some(child.id()),
        &sandbox,
    )
    .await;
    assert_eq!(own.verdict, Verdict::Ok, "{own:?}");
    let init = run(
        programs::PROCESS_STAT,
        &[("pid", "1")],
        Some(child.id()),
        &sandbox,
    )
    .await;
    match &init.verdict {
        Verdict::Error(reason) => assert!(reason.contains("Denied"), "{reason}"),
        other => panic!("expected denied, got {other:?}"),
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_only_to_granted_destinations() {
    let pong = PongServer::start();
    let port = pong.port.to_string();
    let config = [("port", port.as_str()), ("send", "PING\r\n")];
    let granted = sandbox(&[format!("tcp://127.0.0.1:{port}")], &[], SHORT);
    let report = run(programs::TCP_PING, &config, None, &granted).await;
    assert_eq!(report.verdict, Verdict::Ok, "{report:?}");
    let other_port = sandbox(&[format!("tcp://127.0.0.1:{}", closed_port())], &[], SHORT);
    let report = run(programs::TCP_PING, &config, None, &other_port).await;
    assert!(
        matches!(&report.verdict, Verdict::Error(r) if r.contains("Denied")),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_capability_call_is_cut_by_the_deadline() {
    // A server that accepts and never answers: the guest's read asks for a
    // minute, the check's deadline is two seconds.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    let sandbox = sandbox(&[format!("tcp://127.0.0.1:{port}")], &[], SHORT);
    let report = run(programs::SLEEP_IN_HOST, &[("port", &port)], None, &sandbox).await;
    drop(listener);
    assert!(
        matches!(report.verdict, Verdict::TimedOut(_))
            || matches!(&report.verdict, Verdict::Error(r) if r.contains("Timeout")),
        "{report:?}"
    );
}

async fn load_error(path: &std::path::Path) -> LoadError {
    match engine()
        .load_checker(&CheckSource::File(path.to_owned()))
        .await
    {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(err) => err,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unloadable_files_give_clear_errors() {
    let dir = scratch("unloadable");

    let missing = load_error(&dir.join("missing.wasm")).await;
    assert!(matches!(missing, LoadError::NotFound { .. }), "{missing}");
    assert!(missing.to_string().contains("missing.wasm"), "{missing}");

    let text = dir.join("script.wasm");
    std::fs::write(&text, "#!/bin/sh\nexit 0\n").expect("write");
    let not_wasm = load_error(&text).await;
    assert!(matches!(not_wasm, LoadError::NotWasm { .. }), "{not_wasm}");

    let core = dir.join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").expect("write");
    let core_err = load_error(&core).await;
    assert!(
        matches!(core_err, LoadError::CoreModule { .. }),
        "{core_err}"
    );
    assert!(core_err.to_string().contains("wasm32-wasip2"), "{core_err}");

    let whole = std::fs::read(programs::OK).expect("read ok.wasm");
    let truncated = dir.join("truncated.wasm");
    std::fs::write(&truncated, &whole[..whole.len() / 2]).expect("write");
    let truncated_err = load_error(&truncated).await;
    assert!(
        matches!(truncated_err, LoadError::Invalid { .. }),
        "{truncated_err}"
    );

    let loader = load_error(std::path::Path::new(programs::LOADER_POLICY)).await;
    assert!(matches!(loader, LoadError::WrongWorld { .. }), "{loader}");
    assert!(loader.to_string().contains("is a loader"), "{loader}");
}

/// While one check spins until its deadline, others keep being served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_check_does_not_stall_others() {
    let spinner = load(programs::INFINITE_LOOP).await;
    let spin = tokio::spawn(async move {
        spinner
            .check(
                &target(&[], None),
                &sandbox(&[], &[], Duration::from_secs(30)),
            )
            .await
    });
    let ok = load(programs::OK).await;
    let quick = sandbox(&[], &[], SHORT);
    for _ in 0..20 {
        let report = ok.check(&target(&[], None), &quick).await;
        assert_eq!(report.verdict, Verdict::Ok);
    }
    assert!(
        !spin.is_finished(),
        "the spinning check ended before the others were served"
    );
    spin.abort();
}

/// Every test program is exercised by some test above or in loaders.rs.
#[test]
fn every_test_program_has_a_test() {
    let this_file = include_str!("hostile.rs");
    let others = [
        include_str!("loaders.rs"),
        include_str!("replay.rs"),
        include_str!("cache.rs"),
        include_str!("cli.rs"),
        include_str!("contract.rs"),
        include_str!("contract_v011.rs"),
        include_str!("replace_live.rs"),
        include_str!("sandbox_fs.rs"),
        include_str!("sandbox_escape.rs"),
        include_str!("sandbox_core.rs"),
        include_str!("sandbox_output.rs"),
        include_str!("validate.rs"),
        include_str!("embed.rs"),
    ];
    macro_rules! assert_used {
        ($($name:ident)*) => {$(
            let needle = concat!("programs::", stringify!($name));
            assert!(
                this_file.contains(needle) || others.iter().any(|f| f.contains(needle)),
                "test program {} has no test", stringify!($name)
            );
        )*};
    }
    foreach_test_program!(assert_used);
}
