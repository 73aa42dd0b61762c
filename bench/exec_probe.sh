#!/usr/bin/env bash
# Whole-process cost of an exec probe (issue 15 §2): what kubelet, Docker
# or Consul pay for each `vigil check`, beside /bin/true, curl and nc -z
# against the same loopback servers, in one run.
#
#   bench/exec_probe.sh [N] [VIGIL]     (N default 200; VIGIL default the
#                                        release binary in $CARGO_TARGET_DIR)
#
# Each row forks and execs the command N times (os.posix_spawn, then
# waitpid: no shell in between), after 5 warm-ups (the first `vigil check`
# compiles the builtin into the cache), the rows taking turns (one run of
# each per round), and prints the median and p99 of the wall time from
# spawn to reaped, as a Markdown table. The servers (an HTTP
# server answering 200, a TCP listener; bench/exec_probe_servers.py) run
# in a process of their own on 127.0.0.1, on one asyncio loop, and the
# HTTP server's own time per request is printed below the table: it is in
# every HTTP row, curl's and vigil's alike. Run it on a quiet machine:
# these are milliseconds, and a loaded core shows up in them.
set -euo pipefail

n=${1:-200}
target=${CARGO_TARGET_DIR:-$HOME/.cache/vigil/target}
vigil=${2:-$target/release/vigil}
# vigil-probe, the lean `vigil check` for exec probes, from beside vigil.
probe=${vigil}-probe
[[ -x $vigil ]] || { echo "no vigil binary at $vigil (cargo build --release -p vigil)" >&2; exit 2; }
[[ -x $probe ]] || { echo "no vigil-probe binary at $probe (cargo build --release -p vigil)" >&2; exit 2; }
for tool in curl nc; do
    command -v "$tool" >/dev/null || { echo "$tool is not installed (apt-get install curl netcat-openbsd)" >&2; exit 2; }
done

servers=$(dirname "$0")/exec_probe_servers.py
exec python3 - "$n" "$vigil" "$probe" "$servers" <<'PY'
import json, os, statistics, subprocess, sys, time, urllib.request

n, vigil, probe, servers = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]

# The servers run in a process of their own (bench/exec_probe_servers.py).
server = subprocess.Popen([sys.executable, servers], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
http_port, tcp_port = map(int, server.stdout.readline().split())

url = f"http://127.0.0.1:{http_port}/healthz"
rows = [
    ("/bin/true", ["/bin/true"]),
    (f"nc -z (tcp connect)", ["nc", "-z", "127.0.0.1", str(tcp_port)]),
    ("vigil check builtin:tcp", [vigil, "check", "builtin:tcp", "--config", f"port={tcp_port}",
                                 "--allow-host", f"tcp://127.0.0.1:{tcp_port}"]),
    ("vigil-probe builtin:tcp", [probe, "builtin:tcp", "--config", f"port={tcp_port}",
                                 "--allow-host", f"tcp://127.0.0.1:{tcp_port}"]),
    ("curl -fsS (HTTP GET)", ["curl", "-fsS", "-o", "/dev/null", url]),
    ("vigil check builtin:http", [vigil, "check", "builtin:http", "--config", f"url={url}",
                                  "--allow-host", f"http://127.0.0.1:{http_port}"]),
    ("vigil-probe builtin:http", [probe, "builtin:http", "--config", f"url={url}",
                                  "--allow-host", f"http://127.0.0.1:{http_port}"]),
    ("vigil --version", [vigil, "--version"]),
]

devnull = os.open(os.devnull, os.O_RDWR)
def run(argv):
    actions = [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]
    start = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions)
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{argv}: exit {os.waitstatus_to_exitcode(status)}")
    return elapsed

def fmt(seconds):
    return f"{seconds * 1e3:.2f} ms"

# Interleaved: each round runs every row once, so that whatever drifts
# during the run (another process, the CPU's clock) weighs on every row
# alike and the ratios between rows hold.
for _ in range(5):
    for _, argv in rows:
        run(argv)
samples = {name: [] for name, _ in rows}
for _ in range(n):
    for name, argv in rows:
        samples[name].append(run(argv))
results = {}
for name, taken in samples.items():
    taken.sort()
    results[name] = (statistics.median(taken), taken[min(len(taken) - 1, len(taken) * 99 // 100)])

true_median = results["/bin/true"][0]
curl_median = results["curl -fsS (HTTP GET)"][0]
print(f"| command (N={n}, whole process: spawn to reaped) | median | p99 | median / /bin/true |")
print("|---|---|---|---|")
for name, (median, p99) in results.items():
    print(f"| {name} | {fmt(median)} | {fmt(p99)} | {median / true_median:.1f}x |")
stats = json.load(urllib.request.urlopen(f"http://127.0.0.1:{http_port}/stats"))
server.stdin.close()
print()
print(f"HTTP server's own time per request (in every HTTP row): median {stats['median_ms']:.3f} ms, "
      f"p99 {stats['p99_ms']:.3f} ms over {stats['requests']} requests")
for command in ["vigil check", "vigil-probe"]:
    print(f"{command} builtin:tcp / /bin/true: {results[command + ' builtin:tcp'][0] / true_median:.2f}x (target <= 2x); "
          f"curl / {command} builtin:http: {curl_median / results[command + ' builtin:http'][0]:.2f}x (target >= 3x)")
PY
