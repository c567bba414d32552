#!/usr/bin/env python3
"""Soak run (docs/reliability.md#soak): the local end-to-end demo at a steady rate for a long time,
sampling the agent's and the processor's RSS and CPU from /proc, then a CSV, a PNG plot and a
summary with a growth check under bench/soak/.

    scripts/soak.sh                       # 30 min at 200 lines/s (builds, sets up the venv)
    scripts/soak.py --duration 5m --rate 500 --out bench/soak-short

The demo itself verifies delivery at the end (0 missing / 0 misrouted, its JSON summary is kept).
Growth check: after the warm-up (default the first third of the run), a least-squares line through
each component's RSS; the slope in KiB per minute and the first-vs-last-window difference are
reported. Exit code: the demo's (0 = everything delivered), or 3 when a component's RSS grew by more
than --max-growth-mib between the first and last windows after warm-up.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMPONENTS = ("logrelay-agent", "logrelay-processor")
TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def parse_duration(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 30m)")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def children_of(root: int) -> dict[int, str]:
    """Every descendant of `root`: pid → command name (comm)."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # comm is in parentheses and may contain spaces: split after the last ')'.
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
        names[int(entry)] = name
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found:
                found[child] = names[child]
                frontier.append(child)
    return found


def sample(pid: int) -> tuple[float, int] | None:
    """(CPU seconds used so far, RSS KiB) of a process, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        statm = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
    return cpu, int(statm[1]) * PAGE_KIB


def slope_kib_per_min(points: list[tuple[float, int]]) -> float:
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_r = sum(r for _, r in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (r - mean_r) for t, r in points)
    return cov / var * 60


def analyse(rows: list[dict], duration: float, warmup: float) -> dict:
    report = {}
    for component in COMPONENTS:
        mine = [r for r in rows if r["component"] == component]
        if not mine:
            continue
        after = [(r["elapsed_s"], r["rss_kib"]) for r in mine if r["elapsed_s"] >= warmup]
        window = max(60.0, (duration - warmup) / 5)
        first = [rss for t, rss in after if t < warmup + window]
        last = [rss for t, rss in after if t >= duration - window]
        cpu = [r["cpu_pct"] for r in mine if r["cpu_pct"] is not None and r["elapsed_s"] >= warmup]
        report[component] = {
            "samples": len(mine),
            "restarts": len({r["pid"] for r in mine}) - 1,
            "peak_rss_mib": round(max(r["rss_kib"] for r in mine) / 1024, 1),
            "rss_first_window_mib": round(sum(first) / len(first) / 1024, 1) if first else None,
            "rss_last_window_mib": round(sum(last) / len(last) / 1024, 1) if last else None,
            "rss_slope_kib_per_min_after_warmup": round(slope_kib_per_min(after), 1),
            "cpu_pct_mean_after_warmup": round(sum(cpu) / len(cpu), 2) if cpu else None,
            "cpu_pct_max": round(max(cpu), 1) if cpu else None,
        }
    return report


def plot(rows: list[dict], path: Path, title: str, warmup: float) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("soak: matplotlib missing, no plot (pip install matplotlib)", file=sys.stderr)
        return False
    fig, (rss_ax, cpu_ax) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for component in COMPONENTS:
        mine = [r for r in rows if r["component"] == component]
        minutes = [r["elapsed_s"] / 60 for r in mine]
        rss_ax.plot(minutes, [r["rss_kib"] / 1024 for r in mine], label=component)
        cpu_ax.plot(
            [m for m, r in zip(minutes, mine) if r["cpu_pct"] is not None],
            [r["cpu_pct"] for r in mine if r["cpu_pct"] is not None],
            label=component,
        )
    for ax in (rss_ax, cpu_ax):
        ax.axvline(warmup / 60, color="grey", linestyle=":", label="end of warm-up")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left")
    rss_ax.set_ylabel("RSS (MiB)")
    rss_ax.set_ylim(bottom=0)
    cpu_ax.set_ylabel("CPU (% of one core)")
    cpu_ax.set_ylim(bottom=0)
    cpu_ax.set_xlabel("minutes")
    rss_ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=parse_duration, default=parse_duration("30m"))
    parser.add_argument("--rate", type=int, default=200, help="lines per second written by the fake node")
    parser.add_argument("--interval", type=parse_duration, default=parse_duration("5s"))
    parser.add_argument("--warmup", type=float, default=1 / 3, help="fraction of the run treated as warm-up")
    parser.add_argument("--max-growth-mib", type=float, default=16.0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "soak")
    parser.add_argument("--bin-dir", type=Path, default=REPO / "target" / "release")
    parser.add_argument("demo_args", nargs="*", help="more `logrelay-demo run` flags (after --)")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    work = REPO / ".run" / f"soak-{time.strftime('%Y%m%d-%H%M%S')}"
    demo_json = args.out / "demo-summary.json"
    command = [
        str(args.bin_dir / "logrelay-demo"),
        "run",
        "--duration",
        f"{int(args.duration)}s",
        "--rate",
        str(args.rate),
        "--json",
        "--work-dir",
        str(work),
        "--bin-dir",
        str(args.bin_dir),
        *args.demo_args,
    ]
    print(f"soak: {' '.join(command)}", file=sys.stderr)
    with open(demo_json, "w") as summary_out:
        demo = subprocess.Popen(command, stdout=summary_out)
        rows: list[dict] = []
        last: dict[int, tuple[float, float]] = {}
        started = time.monotonic()
        while demo.poll() is None:
            now = time.monotonic() - started
            for pid, name in children_of(demo.pid).items():
                component = next((c for c in COMPONENTS if name.startswith(c[:15])), None)
                if component is None:
                    continue
                measured = sample(pid)
                if measured is None:
                    continue
                cpu, rss = measured
                previous = last.get(pid)
                pct = None
                if previous is not None and now > previous[0]:
                    pct = round((cpu - previous[1]) / (now - previous[0]) * 100, 2)
                last[pid] = (now, cpu)
                rows.append(
                    {
                        "elapsed_s": round(now, 1),
                        "component": component,
                        "pid": pid,
                        "rss_kib": rss,
                        "cpu_s": round(cpu, 2),
                        "cpu_pct": pct,
                    }
                )
            time.sleep(args.interval)
        code = demo.wait()

    with open(args.out / "samples.csv", "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["elapsed_s", "component", "pid", "rss_kib", "cpu_s", "cpu_pct"])
        writer.writeheader()
        writer.writerows(rows)
    warmup = args.duration * args.warmup
    report = {
        "duration_s": args.duration,
        "rate_lines_per_s": args.rate,
        "interval_s": args.interval,
        "warmup_s": round(warmup, 1),
        "demo_exit_code": code,
        "components": analyse(rows, args.duration, warmup),
    }
    try:
        report["demo"] = json.loads(demo_json.read_text())
    except (OSError, json.JSONDecodeError):
        report["demo"] = None
    title = f"logrelay soak: {args.duration / 60:.0f} min at {args.rate} lines/s"
    report["plot"] = plot(rows, args.out / "soak.png", title, warmup)
    (args.out / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["components"], indent=2))
    grew = [
        c
        for c, r in report["components"].items()
        if r["rss_first_window_mib"] is not None
        and r["rss_last_window_mib"] is not None
        and r["rss_last_window_mib"] - r["rss_first_window_mib"] > args.max_growth_mib
    ]
    if code != 0:
        return code
    if grew:
        print(f"soak: RSS grew after warm-up: {', '.join(grew)}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
