"""The soak's figures: samples.csv and a small SVG plot of Vigil's RSS and
open fds over the run (no plotting library needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

W, H, PAD = 720, 300, 48


def write(out: Path, summary: dict[str, Any], samples: list[tuple[float, int, int, int]]) -> None:
    with open(out / "samples.csv", "w") as f:
        f.write("t_s,vigil_pid,rss_kib,fds\n")
        for t, pid, rss, fds in samples:
            f.write(f"{t:.1f},{pid},{rss},{fds}\n")
    if samples:
        (out / "rss.svg").write_text(svg(samples, summary))
    (out / "RELIABILITY-section.md").write_text(markdown(summary))


def _poly(points: list[tuple[float, float]], color: str) -> str:
    return (f'<polyline fill="none" stroke="{color}" stroke-width="1.2" points="'
            + " ".join(f"{x:.1f},{y:.1f}" for x, y in points) + '"/>')


def svg(samples: list[tuple[float, int, int, int]], summary: dict[str, Any]) -> str:
    t_max = max(s[0] for s in samples) or 1.0
    rss_max = max(s[2] for s in samples) / 1024 * 1.15 or 1.0
    fd_max = max(s[3] for s in samples) * 1.15 or 1.0
    pw, ph = W - 2 * PAD, H - 2 * PAD

    def x(t: float) -> float:
        return PAD + t / t_max * pw

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" '
             f'font-size="11"><rect width="{W}" height="{H}" fill="white"/>',
             f'<rect x="{PAD}" y="{PAD}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    # One polyline per instance (a kill of Vigil starts a new one).
    runs: list[list[tuple[float, int, int, int]]] = []
    for s in samples:
        if not runs or runs[-1][-1][1] != s[1]:
            runs.append([])
        runs[-1].append(s)
    for r in runs:
        parts.append(_poly([(x(s[0]), PAD + ph - s[2] / 1024 / rss_max * ph) for s in r], "#1f77b4"))
        parts.append(_poly([(x(s[0]), PAD + ph - s[3] / fd_max * ph) for s in r], "#d62728"))
        parts.append(f'<line x1="{x(r[0][0]):.1f}" y1="{PAD}" x2="{x(r[0][0]):.1f}" y2="{PAD + ph}" '
                     f'stroke="#ccc" stroke-dasharray="2,3"/>')
    for i in range(5):
        y = PAD + ph - i / 4 * ph
        parts.append(f'<text x="{PAD - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#1f77b4">'
                     f'{rss_max * i / 4:.0f}</text>')
        parts.append(f'<text x="{W - PAD + 4}" y="{y + 4:.1f}" fill="#d62728">{fd_max * i / 4:.0f}</text>')
        parts.append(f'<text x="{x(t_max * i / 4):.1f}" y="{H - PAD + 16}" text-anchor="middle">'
                     f'{t_max * i / 4 / 60:.0f} min</text>')
    parts.append(f'<text x="{PAD}" y="{PAD - 18}">vigil RSS (MiB, blue, left) and open fds (red, right); '
                 f'dashed: a new vigil instance; {summary.get("faults_total", 0)} faults, '
                 f'{summary.get("violations_total", 0)} violations</text>')
    parts.append("</svg>")
    return "\n".join(parts)


INVARIANTS = [
    ("two-incarnations", "never two live incarnations (leaders) of a service outside a replace (/proc, every second)"),
    ("alive-after-stop", "no process of a service (escapees included) alive after `vigil stop` answered, "
                         "its directory was removed, or Vigil shut down"),
    ("spawn-without-exit", "every spawn has its `exited` (or `recovered`) in the journal of an instance that quit"),
    ("journal-line", "every journal line parses, has a valid `ts` and `kind`, and times never go back"),
    ("recovery-missed", "after each kill -9 of Vigil, the new instance stops every process the old one left"),
    ("recovery-overreach", "... and nothing else: not a bystander process, no pid that was no service's"),
    ("rss-growth", "Vigil's RSS flat (median of the last third of an instance's life vs the first, after warm-up)"),
    ("fd-growth", "Vigil's open fds flat (the same test)"),
    ("late-check", "no liveness check later than its period (hits on the driver's loopback server)"),
    ("control-latency", "every control command answers within 5 s (stop, start, restart, reload, status; "
                        "replace 15 s, shutdown 30 s)"),
    ("missed-restart", "a service killed with kill -9 is spawned again within 15 s (unless something else "
                       "stopped it meanwhile)"),
    ("edit-not-applied", "a valid manifest edit, or a new service directory, is reloaded within 20 s"),
    ("vigil-died", "Vigil never exits on its own"),
    ("final-quit", "the last instance shuts down cleanly (`quit`)"),
    ("shutdown", "`vigil shutdown` ends Vigil within 30 s"),
]


def markdown(summary: dict[str, Any]) -> str:
    """The soak's section of RELIABILITY.md, from its summary."""
    by: dict[str, int] = {}
    for v in summary.get("violations", []):
        by[v["name"]] = by.get(v["name"], 0) + 1
    out = [f"Seed {summary['seed']}, {summary['elapsed_s'] / 60:.1f} minutes, {summary['services']} faulted "
           f"services and {summary['tickers']} timing services, {summary['vigil_instances']} Vigil instances, "
           f"{summary['journal_lines']} journal lines.", "",
           "| fault | injected |", "|---|---|"]
    for k, n in summary["faults"].items():
        out.append(f"| {k} | {n} |")
    out.append(f"| **total** | **{summary['faults_total']}** |")
    out += ["", "| invariant | violations |", "|---|---|"]
    for name, text in INVARIANTS:
        out.append(f"| {text} | {by.get(name, 0)} |")
    return "\n".join(out) + "\n"
