//! Command-line interface: clap types only; the work is in [`crate::commands`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::units::{parse_duration, parse_size};

#[derive(Debug, Parser)]
#[command(
    name = "vigil",
    version,
    about = "A process supervisor whose health checks are WebAssembly components"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one check once and exit: 0 ok, 75 retry, 1 error, 2 usage or load error.
    ///
    /// Works as a Kubernetes exec probe or a Docker HEALTHCHECK.
    Check(CheckArgs),
    /// Show what a component is: its world, capabilities, exports, producers.
    ///
    /// For an ELF binary: the components it carries (`vigil embed`), each
    /// with its role, size, world and version, and SHA-256.
    Inspect(InspectArgs),
    /// Carry checks and a loader inside a service's ELF binary.
    ///
    /// Adds or replaces its .vigil.components section (roles not given are
    /// kept), in place through a temporary file and a rename, mode kept;
    /// the binary runs as before. A manifest then names a check as
    /// `check = "embedded:readiness"`, and a directory holding only a
    /// binary that carries a loader is a service. Each component is loaded
    /// (world, version, compile) before anything is written.
    Embed(EmbedArgs),
    /// Compile components into the cache now, so their first check is on time.
    ///
    /// A FILE is a component; a DIR is a checks directory (every check and
    /// loader its service manifests name) plus every .wasm file under it.
    /// Compiles as many at once as there are cores; one line per component
    /// (name, size, seconds, or "cached" when it already was). Exit 1 names
    /// each component that does not compile and why.
    Compile(CompileArgs),
    /// Supervise every service in a checks directory until SIGTERM/SIGINT.
    ///
    /// Each subdirectory of DIR is a service: a service.toml and the .wasm
    /// checks it names, or only a loader.wasm. SIGHUP forces a rescan.
    Run(RunArgs),
    /// Check a checks directory (or one service directory) and report every problem at once.
    ///
    /// Beyond the manifests, it loads every .wasm check and loader, checks
    /// each check's config against the schema its component declares, and
    /// the destinations the config names against the service's [grants].
    /// A program not found is a warning; entries that are not service
    /// directories (README, lost+found, dotfiles) are ignored with a note.
    /// Exit 0 when nothing is wrong (warnings allowed), 1 otherwise.
    Validate(ValidateArgs),
    /// Start a program detached; exit 0 once a check says it is ready.
    ///
    /// The program gets its own session, stdio on /dev/null (or --log) and
    /// this command's environment and directory. Until --check (default
    /// builtin:process: it runs) says ok, it is checked every --interval
    /// with its pid; an error, its exit, or --timeout kills its process group
    /// and exits 1 with the reason. On success the pid is printed.
    Daemonize(DaemonizeArgs),
    /// Show the services of a running vigil: state, pid, uptime, restarts, last exit, last check.
    ///
    /// Exits 0 when every service is ready, stopped by an operator or a
    /// finished one-shot, 6 otherwise; a failing service's last stderr
    /// lines and log path follow the table. Exit codes of every client
    /// command: 0 done, 1 failed or refused, 3 no vigil is running, 4 no
    /// such service.
    Status(StatusArgs),
    /// Start a stopped, exited or failed service.
    Start(ServiceArgs),
    /// Stop a service; it stays stopped until started (or vigil restarts).
    Stop(ServiceArgs),
    /// Stop a service and start it again at once.
    Restart(ServiceArgs),
    /// Start a new child beside the running one (same sockets), switch to
    /// it once its checks pass, then stop the old one; keep the old one if
    /// the new one does not get ready within `replace-timeout`.
    Replace(ServiceArgs),
    /// Run N replicas of a service with `instances` in its manifest.
    ///
    /// Missing replicas (NAME@i) start; surplus ones stop, the highest
    /// index first. The count holds across reloads until the manifest's
    /// `instances` changes, which makes that the count again.
    Scale(ScaleArgs),
    /// Rescan the checks directory now (like SIGHUP); says why if refused.
    Reload(ControlArgs),
    /// Stop every service and vigil itself; waits until it is gone.
    Shutdown(ShutdownArgs),
    /// Print the journal (the last lines, then new ones with -f).
    ///
    /// With no vigil running, reads the journal files in the state directory.
    Journal(JournalArgs),
    /// Print a service's captured output (the last lines, then new ones with -f).
    ///
    /// Reads <state-dir>/logs/NAME.log and its rotated files, whether a
    /// vigil runs or not. Each line: time, stream (stdout or stderr), text.
    Logs(LogsArgs),
    /// A live view of a running vigil: services, checks, exits, logs, journal.
    ///
    /// Full-screen on a terminal; follows the journal stream and refreshes
    /// every second. Keys: arrows select, r restart, x stop, s start (stop
    /// and restart ask first), R reload, l logs, / filter, o sort, q quit.
    /// NO_COLOR turns colours off.
    Top(TopArgs),
    /// Test a restart policy against a real journal: replay a service's
    /// recorded lives through a candidate (a loader, or the built-in
    /// policy with a manifest's settings) and compare its decisions with
    /// the recorded ones. Exit 0 when they match, 1 when they differ.
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The service whose lives to replay (its name in the journal).
    #[arg(long, value_name = "NAME")]
    pub service: String,
    /// A journal file, or a state directory (its journal.jsonl and
    /// rotated files) [default: the state directory's].
    #[arg(long, value_name = "FILE|DIR")]
    pub journal: Option<PathBuf>,
    /// The candidate loader (its `decide` is asked about every event).
    #[arg(long, value_name = "X.wasm", required_unless_present = "policy")]
    pub loader: Option<PathBuf>,
    /// A service.toml (or its directory): the built-in policy with its
    /// restart settings and checks; with --loader, its settings and
    /// [loader.config] for the loader.
    #[arg(long, value_name = "service.toml")]
    pub policy: Option<PathBuf>,
    /// A [loader.config] entry for the loader (repeatable; over the
    /// manifest's).
    #[arg(long = "config", value_name = "KEY=VALUE", requires = "loader")]
    pub config: Vec<String>,
    /// Only lines recorded since T: RFC 3339 or a duration ago (10m, 1h30m).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// The state directory whose journal to read when --journal is not
    /// given [default: $XDG_STATE_HOME/vigil or ~/.local/state/vigil].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DaemonizeArgs {
    /// The readiness check: a .wasm component or builtin:NAME [default: builtin:process].
    #[arg(long, value_name = "CHECK")]
    pub check: Option<String>,
    #[command(flatten)]
    pub inputs: CheckInputs,
    /// Give up (and kill the program) when it is not ready after this long.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Pause between two checks.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub interval: Duration,
    /// Deadline of one check run.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub check_timeout: Duration,
    /// Lock this pid file (refused when another holds it) and write the
    /// program's pid; the program keeps the lock while it runs.
    #[arg(long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
    /// Append the program's stdout and stderr to this file [default: /dev/null].
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// How a client command finds the running vigil.
#[derive(Debug, Clone, Args)]
pub struct ControlArgs {
    /// The state directory of the vigil to talk to (as given to `run`)
    /// [default: $XDG_STATE_HOME/vigil or ~/.local/state/vigil].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Its control socket [default: control.sock in the state directory].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub control: ControlArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this service (a replicated service's name: every replica).
    pub name: Option<String>,
    /// Print the JSON the control socket answers.
    #[arg(long)]
    pub json: bool,
    /// On a terminal, show reasons whole instead of cut to fit (a pipe
    /// always gets them whole).
    #[arg(long, short)]
    pub wide: bool,
    #[command(flatten)]
    pub control: ControlArgs,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The service (its directory name, not one replica's NAME@i).
    pub name: String,
    /// How many replicas to run (at least 1).
    pub instances: u32,
    #[command(flatten)]
    pub control: ControlArgs,
}

#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// The service (its directory name).
    pub name: String,
    #[command(flatten)]
    pub control: ControlArgs,
}

#[derive(Debug, Args)]
pub struct ShutdownArgs {
    /// How long to wait for vigil to be gone.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub control: ControlArgs,
}

#[derive(Debug, Args)]
pub struct JournalArgs {
    /// Only lines about this service (a replicated service's name: every
    /// replica's).
    pub name: Option<String>,
    /// Keep printing new lines as they are recorded: until vigil exits,
    /// or with no vigil running, from the files until interrupted.
    #[arg(long, short)]
    pub follow: bool,
    /// How many past lines to print first [default: 50, or all with --since].
    #[arg(long, short = 'n', value_name = "N")]
    pub lines: Option<usize>,
    /// Only lines recorded since T: RFC 3339 (2026-12-06T22:00:00Z,
    /// 2026-12-06T23:00:00+01:00, 2026-12-06) or a duration ago (10m, 1h30m).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Only events of these kinds (exited, killed, check, warning, ...);
    /// comma-separated or repeated.
    #[arg(long, value_name = "K,...", value_delimiter = ',')]
    pub kind: Vec<String>,
    /// Print the journal's JSON lines as they are.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub control: ControlArgs,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The service (its directory name; a replicated service's name
    /// merges every replica's lines, each labelled `NAME@i | `).
    pub name: String,
    /// Keep printing new lines as they are written, until interrupted.
    #[arg(long, short)]
    pub follow: bool,
    /// How many past lines to print first [default: 50, or all with --since].
    #[arg(long, short = 'n', value_name = "N")]
    pub lines: Option<usize>,
    /// Only lines written since T: RFC 3339 (2026-12-06T22:00:00Z,
    /// 2026-12-06) or a duration ago (10m, 1h30m).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Only what the service wrote to its stderr.
    #[arg(long)]
    pub stderr: bool,
    #[command(flatten)]
    pub control: ControlArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The directory of services.
    #[arg(long, value_name = "DIR")]
    pub checks: PathBuf,
    /// Journal and logs [default: $XDG_STATE_HOME/vigil or ~/.local/state/vigil].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Do not echo service output and transitions to the terminal.
    #[arg(long, short)]
    pub quiet: bool,
    /// Leave the RFC 3339 time out of each line of the service logs and of
    /// the echo of their output (for services that stamp their own lines).
    #[arg(long)]
    pub no_timestamps: bool,
    /// Run in the background: exit 0 once the daemon answers on its control
    /// socket and every startup check has passed; otherwise kill it and
    /// exit 1 with the reason and the last journal lines.
    #[arg(long)]
    pub daemon: bool,
    /// With --daemon: how long the daemon may take to be up.
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "D")]
    pub ready_timeout: Duration,
    /// The single-instance lock [default: vigil.pid in the state directory].
    #[arg(long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
    /// The control socket [default: control.sock in the state directory].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Serve read-only /livez, /readyz and /metrics on this TCP address
    /// (e.g. 127.0.0.1:9100, or 0.0.0.0:9100 for a pod). Off by default.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
    /// Serve read-only grpc.health.v1 (Check, Watch) on this TCP address,
    /// HTTP/2 cleartext: service "" is every service ready, a service by
    /// its name (e.g. 127.0.0.1:9101, for kubelet's grpc probe). Off by default.
    #[arg(long, value_name = "ADDR")]
    pub grpc: Option<std::net::SocketAddr>,
    /// Enable start, stop and restart on the --http status page for
    /// requests that carry this file's token (first line) as
    /// `Authorization: Bearer TOKEN`. Without it the page is read-only.
    #[arg(long, value_name = "FILE", requires = "http")]
    pub http_token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompileArgs {
    /// Components (.wasm, builtin:NAME) and checks directories.
    #[arg(required = true, value_name = "FILE|DIR")]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The directory of services, or one service directory in it.
    #[arg(value_name = "DIR")]
    pub checks: PathBuf,
}

/// What a one-shot check is given (`vigil check`, `vigil daemonize`):
/// its config and its grants.
#[derive(Debug, Args)]
pub struct CheckInputs {
    /// A config setting for the check, KEY=VALUE; repeatable.
    #[arg(long = "config", short = 'c', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub config: Vec<(String, String)>,
    /// Grant the check an outbound destination, [SCHEME://]HOST[:PORT]; repeatable.
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_hosts: Vec<String>,
    /// Grant the check read access to a path and everything beneath it; repeatable.
    #[arg(long = "allow-path", value_name = "PATH")]
    pub allow_paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A .wasm component or builtin:NAME (builtin:http, builtin:tcp, builtin:process,
    /// builtin:file, builtin:redis, builtin:postgres, builtin:grpc).
    pub target: String,
    /// Pid of the process to judge (enables the process capability for its tree).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Phase reported to the check.
    #[arg(long, value_enum, default_value_t = PhaseArg::Liveness)]
    pub phase: PhaseArg,
    #[command(flatten)]
    pub inputs: CheckInputs,
    /// Deadline of the whole check.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Memory cap of the check: all its linear memories and tables together.
    #[arg(long, default_value = "64MiB", value_parser = parse_memory)]
    pub memory: usize,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Exit-code convention: k8s (0 ok, 75 retry, 1 error, 2 cannot load),
    /// nagios (0 ok, 1 warning = retry, 2 critical = error, 3 unknown =
    /// trapped, timed out or cannot load; Consul, Nomad), docker (0
    /// healthy, 1 anything else: never the reserved 2).
    #[arg(long, value_enum, default_value_t = crate::commands::exit::ExitCodes::K8s)]
    pub exit_codes: crate::commands::exit::ExitCodes,
}

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// The ELF binary to carry the components.
    pub binary: std::path::PathBuf,
    /// ROLE=FILE.wasm: a check component and its role (startup,
    /// readiness, liveness or another name of a-z, 0-9, - and _).
    /// Repeatable.
    #[arg(long = "check", value_name = "ROLE=FILE")]
    pub checks: Vec<String>,
    /// A loader component (role `loader`).
    #[arg(long, value_name = "FILE")]
    pub loader: Option<std::path::PathBuf>,
    /// Write the result here instead of replacing BINARY.
    #[arg(short = 'o', long, value_name = "OUT")]
    pub output: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A .wasm component, builtin:NAME, or an ELF binary carrying components.
    pub file: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PhaseArg {
    Startup,
    Readiness,
    Liveness,
}

impl From<PhaseArg> for crate::wasm::Phase {
    fn from(phase: PhaseArg) -> Self {
        match phase {
            PhaseArg::Startup => crate::wasm::Phase::Startup,
            PhaseArg::Readiness => crate::wasm::Phase::Readiness,
            PhaseArg::Liveness => crate::wasm::Phase::Liveness,
        }
    }
}

pub(crate) fn parse_memory(text: &str) -> Result<usize, String> {
    let bytes = parse_size(text).map_err(|e| e.to_string())?;
    usize::try_from(bytes).map_err(|_| format!("`{text}` is out of range"))
}

pub(crate) fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}
