//! README "vigil top": the live view, driven in a real pseudo-terminal
//! (tmux: a 100x30 pane, keys sent with send-keys, the screen read with
//! capture-pane) against a real vigil.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::*;

/// A tmux server of its own (its own socket), killed at the end.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// A detached 100x30 session running `script` under `sh -c`.
    fn start(root: &Path, script: &str) -> Tmux {
        let tmux = Tmux {
            socket: root.join("tmux.sock"),
        };
        let out = tmux.cmd(&[
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            "100",
            "-y",
            "30",
            "sh",
            "-c",
            script,
        ]);
        assert!(out.status.success(), "tmux: {}", text(&out.stderr));
        tmux
    }

    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .env("TERM", "xterm-256color")
            .env_remove("TMUX")
            .output()
            .expect("run tmux (make setup installs it)")
    }

    /// The pane's text as shown (no escape sequences).
    fn screen(&self) -> String {
        text(&self.cmd(&["capture-pane", "-p", "-t", "top"]).stdout)
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "top"];
        args.extend_from_slice(keys);
        let out = self.cmd(&args);
        assert!(out.status.success(), "send-keys: {}", text(&out.stderr));
    }

    /// A tmux format of the pane (`#{pane_title}`, `#{alternate_on}`).
    fn format(&self, format: &str) -> String {
        text(
            &self
                .cmd(&["display-message", "-p", "-t", "top", format])
                .stdout,
        )
        .trim()
        .to_string()
    }

    fn wait_screen(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        poll_until(
            what,
            SOON,
            || Some(self.screen()).filter(|s| cond(s)),
            || self.screen(),
        )
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// `vigil top` for `state`, then (once it exits) its exit code and the
/// terminal's mode, in the same pane.
fn top_script(state: &Path, env: &str) -> String {
    format!(
        "echo BEFORE-TOP; {env} {} top --state-dir {}; echo TOP-EXIT=$?; stty -a | tr ' ' '\\n' | grep -x -e icanon -e -icanon -e echo -e -echo; sleep 600",
        env!("CARGO_BIN_EXE_vigil"),
        state.display()
    )
}

/// The SGR sequences of `styled` that set a foreground or background
/// colour (30-37, 40-47, 90-97, 100-107, or 38/48 with a palette or RGB
/// colour); the defaults (39, 49) are not colours.
fn colours(styled: &str) -> Vec<String> {
    styled
        .split('\u{1b}')
        .filter_map(|seq| seq.strip_prefix('[')?.split_once('m').map(|(p, _)| p))
        .filter(|params| {
            params.split(';').any(|p| {
                matches!(
                    p.parse::<u32>(),
                    Ok(30..=38 | 40..=48 | 90..=97 | 100..=107)
                )
            })
        })
        .map(str::to_string)
        .collect()
}

/// The row of `name` in the services table.
fn row<'a>(screen: &'a str, name: &str) -> Option<&'a str> {
    screen.lines().find(|l| l.starts_with(&format!("│{name} ")))
}

/// The restarts column (RST) of a row: the cell after the uptime.
fn restarts(row: &str) -> Option<u32> {
    let cells: Vec<&str> = row.trim_matches('│').split_whitespace().collect();
    // SERVICE, symbol, STATE, PID, UPTIME, RST, ...
    cells.get(5)?.parse().ok()
}

/// The screen lists every service with its state; a kill -9 of one shows
/// as its restart (count, exit with its signal, journal); `r` asks for
/// confirmation and `y` restarts it with the operator as cause; `q`
/// leaves the terminal as it was (main screen back, cooked mode, echo).
#[test]
fn top_shows_services_a_crash_restart_and_restarts_on_a_key() {
    let setup = Setup::new("top-live");
    setup.service("db", &command(&["sleep", "1000"]));
    setup.service(
        "web",
        &format!(
            "{}after = [\"db\"]\n",
            command(&["sh", "-c", "while true; do echo serving; sleep 0.2; done"])
        ),
    );
    let vigil = setup.run();
    vigil.wait_event(|e| is(e, "web", "ready"), SOON);
    let tmux = Tmux::start(&setup.root, &top_script(&setup.state, ""));

    let screen = tmux.wait_screen("both services ready on screen", |s| {
        row(s, "db").is_some_and(|r| r.contains("● ready"))
            && row(s, "web").is_some_and(|r| r.contains("● ready"))
    });
    assert!(screen.contains("vigil top"), "{screen}");
    assert!(
        screen.contains("r restart"),
        "the footer names the keys: {screen}"
    );
    assert_eq!(tmux.format("#{alternate_on}"), "1", "full screen");
    let styled = text(&tmux.cmd(&["capture-pane", "-p", "-e", "-t", "top"]).stdout);
    assert!(!colours(&styled).is_empty(), "states in colour: {styled:?}");

    // kill -9 of web: the restart shows without a key.
    let web_pid = status(&setup.state)["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "web"))
        .and_then(|s| s["pid"].as_i64())
        .expect("web's pid") as i32;
    kill(Pid::from_raw(web_pid), Signal::SIGKILL).expect("kill -9 web");
    let screen = tmux.wait_screen("web's restart on screen", |s| {
        row(s, "web").and_then(restarts) == Some(1)
            && s.contains("web exited")
            && s.contains("signal=SIGKILL")
    });
    assert!(
        row(&screen, "web").is_some_and(|r| !r.contains(&web_pid.to_string())),
        "a new pid: {screen}"
    );

    // Select web (second by name), restart it: asked first.
    tmux.keys(&["Down"]);
    tmux.wait_screen("web selected", |s| s.contains("┌ web "));
    tmux.keys(&["r"]);
    let screen = tmux.wait_screen("the confirmation", |s| s.contains("restart web?"));
    let from = vigil.journal().len();
    assert!(
        !vigil
            .journal()
            .iter()
            .any(|e| is(e, "web", "stopping") && e["cause"] == "operator"),
        "nothing before y: {screen}"
    );
    tmux.keys(&["y"]);
    let (_, stopping) = vigil.wait_kind(from, "web", "stopping");
    assert_eq!(stopping["cause"], "operator", "{stopping}");
    let screen = tmux.wait_screen("the operator's restart on screen", |s| {
        row(s, "web").and_then(restarts) == Some(2) && s.contains("(operator)")
    });
    assert!(screen.contains("restart web: "), "the answer: {screen}");

    // q: the shell's screen is back, in cooked mode with echo.
    tmux.keys(&["q"]);
    // The shell prints the terminal's modes after top's exit code: wait
    // for both lines, not only the first (the pane may be read between).
    let modes_printed = |s: &str| {
        s.lines()
            .skip_while(|l| !l.starts_with("TOP-EXIT="))
            .skip(1)
            .take(2)
            .filter(|l| !l.trim().is_empty())
            .count()
            == 2
    };
    let screen = tmux.wait_screen("top exited and the shell printed the modes", |s| {
        s.contains("TOP-EXIT=") && modes_printed(s)
    });
    assert!(screen.contains("TOP-EXIT=0"), "{screen}");
    assert!(screen.contains("BEFORE-TOP"), "main screen back: {screen}");
    assert!(!screen.contains("services ("), "{screen}");
    let modes: Vec<&str> = screen
        .lines()
        .skip_while(|l| !l.starts_with("TOP-EXIT="))
        .skip(1)
        .take(2)
        .collect();
    assert_eq!(modes, ["icanon", "echo"], "cooked mode: {screen}");
    assert_eq!(tmux.format("#{alternate_on}"), "0");
    assert_eq!(tmux.format("#{cursor_flag}"), "1", "cursor shown");
}

/// What a hostile check and service say reaches the screen as visible
/// escapes: the check's reason (OSC title, CSI erase, CR, bidi) and the
/// service's own output, which also tries to retitle the window. tmux
/// would obey any that leaked: the pane title stays ours. NO_COLOR drops
/// every colour; `vigil status --wide` on the same terminal draws a
/// latency sparkline per service. When vigil goes away, top says so and
/// keeps its last view.
#[test]
fn top_escapes_hostile_text_honours_no_color_and_survives_vigil_going_away() {
    let setup = Setup::new("top-hostile");
    let dir = setup.service(
        "evil",
        &format!(
            "{}\n[checks.readiness]\ncheck = \"check.wasm\"\nperiod = \"300ms\"\n",
            command(&[
                "sh",
                "-c",
                "while true; do printf '\\033]0;pwn\\007hi-log\\n'; sleep 0.3; done"
            ])
        ),
    );
    std::fs::copy(programs::TERMINAL_ESCAPE, dir.join("check.wasm")).expect("copy the check");
    setup.service(
        "fine",
        &format!(
            "{}\n[checks.liveness]\ncheck = \"builtin:process\"\nperiod = \"200ms\"\n",
            command(&["sleep", "1000"])
        ),
    );
    let mut vigil = setup.run();
    vigil.wait_event(|e| is(e, "evil", "check"), SOON);
    let tmux = Tmux::start(&setup.root, &top_script(&setup.state, "NO_COLOR=1"));
    let title = tmux.format("#{pane_title}");
    // evil is first by name: selected, its reason and log in the detail.
    let screen = tmux.wait_screen("the hostile reason and log line", |s| {
        s.contains("\\x1b]0;pwned\\x07") && s.contains("\\x1b]0;pwn\\x07hi-log")
    });
    assert!(screen.contains("\\x1b[1A"), "{screen}");
    assert!(
        !screen.contains('\u{1b}') && !screen.contains('\u{202e}'),
        "{screen:?}"
    );
    assert_eq!(
        tmux.format("#{pane_title}"),
        title,
        "nothing retitled the pane"
    );
    assert!(row(&screen, "evil").is_some(), "{screen}");
    assert!(row(&screen, "fine").is_some(), "{screen}");

    // NO_COLOR: the pane's cells carry no colour (capture with -e keeps
    // the attributes: bold and reverse video only).
    let styled = text(&tmux.cmd(&["capture-pane", "-p", "-e", "-t", "top"]).stdout);
    assert!(
        styled.contains("\u{1b}[7m"),
        "the selection is reverse video: {styled:?}"
    );
    assert_eq!(colours(&styled), Vec::<String>::new(), "{styled:?}");

    // vigil goes away: top says so and keeps the last view.
    vigil.terminate();
    let screen = tmux.wait_screen("top says vigil is gone", |s| s.contains("(last view kept)"));
    assert!(row(&screen, "fine").is_some(), "last view kept: {screen}");
    tmux.keys(&["q"]);
    tmux.wait_screen("top exited", |s| s.contains("TOP-EXIT=0"));
}

/// `vigil status --wide` on a terminal: a latency sparkline per service
/// with checks.
#[test]
fn status_wide_draws_a_latency_sparkline_on_a_terminal() {
    let setup = Setup::new("status-spark");
    setup.service(
        "db",
        &format!(
            "{}\n[checks.liveness]\ncheck = \"builtin:process\"\nperiod = \"100ms\"\n",
            command(&["sleep", "1000"])
        ),
    );
    let vigil = setup.run();
    vigil.wait_until("a few checks", || {
        text(&cli(&setup.state, &["journal", "-n", "100"]).stdout).contains("db check")
    });
    let script = format!(
        "{} status --wide --state-dir {}; sleep 600",
        env!("CARGO_BIN_EXE_vigil"),
        setup.state.display()
    );
    let tmux = Tmux::start(&setup.root, &script);
    let screen = tmux.wait_screen("the sparkline", |s| s.contains("LATENCY (last"));
    let line = screen
        .lines()
        .skip_while(|l| !l.starts_with("LATENCY"))
        .nth(1)
        .unwrap_or_default();
    assert!(line.starts_with("db  "), "{screen}");
    assert!(
        line.chars().any(|c| ('▁'..='█').contains(&c)),
        "bars: {screen}"
    );
    assert!(line.contains("ms.."), "the range: {screen}");
    // Piped, the output stays the plain table.
    let piped = text(&cli(&setup.state, &["status", "--wide"]).stdout);
    assert!(!piped.contains("LATENCY (last"), "{piped}");
}

/// A service with a held socket in `vigil top`: the detail pane lists its
/// recent checks, every outcome (`liveness ok` with a latency, not only
/// failures), and its socket (name, address, fd); the footer names `p
/// replace`; `p` asks first, `y` starts the replace, which the detail pane
/// shows with both pids while the new child is judged, then the table has
/// the new pid.
#[test]
fn top_shows_checks_sockets_and_a_replace_started_by_a_key() {
    let setup = Setup::new("top-replace");
    let dir = setup.checks.join("web");
    setup.service(
        "web",
        &format!(
            "{}notify = true\n[sockets.web]\nlisten = \"127.0.0.1:0\"\n\
             [checks.liveness]\ncheck = \"builtin:process\"\nperiod = \"300ms\"\n",
            crate::sockets::server_command(&dir)
        ),
    );
    let vigil = setup.run();
    wait_socket(&vigil);
    let entry = wait_status(&vigil, "web", |s| s["state"] == "ready");
    let old = entry["pid"].as_i64().expect("a pid");
    let socket = crate::sockets::bound(&entry, "web");
    let tmux = Tmux::start(&setup.root, &top_script(&setup.state, ""));
    // Results that were ok are listed too (` 12:03:04 liveness ok 0.4ms`),
    // besides the last check's own line (`check liveness ok`).
    let listed_ok = |s: &str| {
        s.lines()
            .filter(|l| l.contains("liveness ok") && !l.contains("check liveness"))
            .count()
            >= 2
    };
    let screen = tmux.wait_screen("web's checks and socket in the detail pane", |s| {
        s.contains("recent checks:")
            && listed_ok(s)
            && s.contains(&format!("sockets: web {socket} fd 3"))
    });
    assert!(screen.contains("p replace"), "the footer: {screen}");

    // The new child says READY=1 only after 4 s: long enough to be seen.
    std::fs::write(dir.join("delay"), "4").expect("write delay");
    tmux.keys(&["p"]);
    tmux.wait_screen("the confirmation", |s| s.contains("replace web?"));
    let from = vigil.journal().len();
    tmux.keys(&["y"]);
    let screen = tmux.wait_screen("the replace with both pids", |s| {
        s.contains(&format!("replacing: pid {old} → new pid "))
    });
    let (_, replacing) = vigil.wait_kind(from, "web", "replacing");
    assert_eq!(replacing["cause"], "operator", "{replacing}");
    let new = replacing["new_pid"].as_i64().expect("the new pid");
    assert!(
        screen.contains(&format!("→ new pid {new}")),
        "the new pid: {screen}"
    );
    tmux.wait_screen("the new pid in the table", |s| {
        row(s, "web").is_some_and(|r| r.contains(&format!(" {new} "))) && !s.contains("replacing:")
    });
}
