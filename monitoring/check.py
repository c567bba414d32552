#!/usr/bin/env python3
"""Checks the monitoring files against the code: every logrelay metric that alerts.rules.yaml and
grafana-dashboard.json query is one the agent or processor exports (a string literal or constant in their Rust
sources), the dashboard is well-formed (unique panel ids, a Prometheus query per target), and every dashboard
query parses as PromQL (`promtool check rules` over a generated recording-rule file), when promtool is present.

Usage: python3 monitoring/check.py   (exit code 0 = passed)
"""

import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
METRIC = re.compile(r"\blogrelay_(?:agent|processor)_[a-z0-9_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def exported_metrics() -> set[str]:
    names: set[str] = set()
    for crate in ("agent", "processor"):
        for path in (ROOT / crate / "src").rglob("*.rs"):
            names.update(re.findall(r'"(logrelay_(?:agent|processor)_[a-z0-9_]+)"', path.read_text()))
    return names


def base_name(name: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def dashboard_exprs(dashboard: dict, problems: list[str]) -> list[str]:
    exprs, ids = [], set()
    for panel in dashboard.get("panels", []):
        if panel.get("id") in ids:
            problems.append(f"dashboard: duplicate panel id {panel.get('id')}")
        ids.add(panel.get("id"))
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"dashboard panel {panel.get('title')!r}: no targets")
        for target in targets:
            expr = target.get("expr", "")
            if not expr:
                problems.append(f"dashboard panel {panel.get('title')!r}: a target without expr")
            exprs.append(expr)
    return exprs


def promql_problems(exprs: list[str]) -> list[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        print("  promtool not found: dashboard queries not parsed (apt-get install prometheus)")
        return []
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for i, expr in enumerate(exprs):
        lines.append(f"      - record: dashboard:query{i}")
        lines.append(f"        expr: {json.dumps(expr)}")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write("\n".join(lines) + "\n")
    result = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
    pathlib.Path(f.name).unlink()
    return [] if result.returncode == 0 else [f"dashboard queries: {result.stdout}{result.stderr}"]


def main() -> int:
    problems: list[str] = []
    exported = exported_metrics()
    rules = (ROOT / "monitoring" / "alerts.rules.yaml").read_text()
    dashboard = json.loads((ROOT / "monitoring" / "grafana-dashboard.json").read_text())
    exprs = dashboard_exprs(dashboard, problems)
    for where, text in (("alerts.rules.yaml", rules), ("grafana-dashboard.json", "\n".join(exprs))):
        for name in sorted(set(METRIC.findall(text))):
            if base_name(name) not in exported:
                problems.append(f"{where}: {name} is not exported by the agent or the processor")
    problems += promql_problems(exprs)
    for problem in problems:
        print(f"  FAIL {problem}")
    print(f"monitoring: {len(problems)} problem(s); {len(exprs)} dashboard queries, {len(exported)} exported metrics")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
