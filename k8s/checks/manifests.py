#!/usr/bin/env python3
"""Assertions over every rendered agent DaemonSet (and the ClusterRole and NetworkPolicy rendered with it) and the
processor's NetworkPolicy and PodDisruptionBudget, and every PodMonitor: the
properties that docs/deploy.md, docs/security.md and the agent rely on, which
schema validation and checkov cannot know. Whether ports, probe paths, scrape annotations and the environment agree with
what the agent binary serves and accepts is checked by scripts/contract.py, through the binary's --check-config.

`--self-test` breaks each property in a copy and requires its check to fail.

Usage: .venv/bin/python k8s/checks/manifests.py [--self-test] RENDERED.yaml…
"""

import copy
import sys
from typing import Callable

import yaml

# The agent's shutdown grace (flush partial batches, finish uploads, save checkpoints): agent default, 25 s.
AGENT_SHUTDOWN_GRACE_S = 25


def agent_container(ds: dict) -> dict:
    return ds["spec"]["template"]["spec"]["containers"][0]


def mount(c: dict, path: str) -> dict:
    return next((m for m in c.get("volumeMounts", []) if m["mountPath"] == path), {})


def volume(ds: dict, name: str) -> dict:
    return next((v for v in ds["spec"]["template"]["spec"].get("volumes", []) if v["name"] == name), {})


def env(c: dict, name: str) -> dict:
    return next((e for e in c.get("env", []) if e["name"] == name), {})


def probe_ok(probe: dict, path: str) -> bool:
    get = probe.get("httpGet", {})
    return get.get("path") == path and get.get("port") is not None


AGENT_CHECKS: dict[str, Callable[[dict], bool]] = {
    "/var/log/pods from the host, read-only, and no other part of /var/log": lambda ds: mount(
        agent_container(ds), "/var/log/pods"
    ).get("readOnly")
    is True
    and volume(ds, mount(agent_container(ds), "/var/log/pods").get("name", "")).get("hostPath", {}).get("path")
    == "/var/log/pods"
    and all(
        m["mountPath"] == "/var/log/pods" or not m["mountPath"].startswith("/var/log")
        for m in agent_container(ds).get("volumeMounts", [])
    ),
    "checkpoint data dir on the host": lambda ds: "hostPath"
    in volume(ds, mount(agent_container(ds), "/var/lib/logrelay").get("name", "")),
    "NODE_NAME from the downward API": lambda ds: env(agent_container(ds), "NODE_NAME").get("valueFrom", {})
    == {"fieldRef": {"fieldPath": "spec.nodeName"}},
    "tolerates every taint": lambda ds: {"operator": "Exists"} in ds["spec"]["template"]["spec"].get("tolerations", []),
    "priority class system-node-critical": lambda ds: ds["spec"]["template"]["spec"].get("priorityClassName")
    == "system-node-critical",
    "requests 50m / 64Mi, limits set": lambda ds: agent_container(ds).get("resources", {}).get("requests")
    == {"cpu": "50m", "memory": "64Mi"}
    and {"cpu", "memory"} <= set(agent_container(ds)["resources"].get("limits", {})),
    "readiness /readyz, liveness /healthz": lambda ds: probe_ok(agent_container(ds).get("readinessProbe", {}), "/readyz")
    and probe_ok(agent_container(ds).get("livenessProbe", {}), "/healthz"),
    "read-only root filesystem, no privilege escalation": lambda ds: agent_container(ds)["securityContext"].get(
        "readOnlyRootFilesystem"
    )
    is True
    and agent_container(ds)["securityContext"].get("allowPrivilegeEscalation") is False,
    "capabilities: drop ALL, add only DAC_READ_SEARCH": lambda ds: agent_container(ds)["securityContext"].get(
        "capabilities"
    )
    == {"drop": ["ALL"], "add": ["DAC_READ_SEARCH"]},
    f"termination grace above the agent's {AGENT_SHUTDOWN_GRACE_S} s": lambda ds: ds["spec"]["template"]["spec"].get(
        "terminationGracePeriodSeconds", 30
    )
    > AGENT_SHUTDOWN_GRACE_S,
    "Prometheus scrape annotations": lambda ds: ds["spec"]["template"]["metadata"].get("annotations", {}).get(
        "prometheus.io/scrape"
    )
    == "true"
    and bool(ds["spec"]["template"]["metadata"]["annotations"].get("prometheus.io/port")),
}

# Per agent check: a mutation of the DaemonSet that must make it fail.
AGENT_BREAKS: dict[str, Callable[[dict], None]] = {
    "/var/log/pods from the host, read-only, and no other part of /var/log": lambda ds: agent_container(ds)[
        "volumeMounts"
    ].append({"name": "pod-logs", "mountPath": "/var/log", "readOnly": True}),
    "checkpoint data dir on the host": lambda ds: volume(ds, "data").pop("hostPath"),
    "NODE_NAME from the downward API": lambda ds: env(agent_container(ds), "NODE_NAME").update(
        valueFrom={"fieldRef": {"fieldPath": "metadata.name"}}
    ),
    "tolerates every taint": lambda ds: ds["spec"]["template"]["spec"].update(tolerations=[]),
    "priority class system-node-critical": lambda ds: ds["spec"]["template"]["spec"].pop("priorityClassName"),
    "requests 50m / 64Mi, limits set": lambda ds: agent_container(ds)["resources"].pop("limits"),
    "readiness /readyz, liveness /healthz": lambda ds: agent_container(ds).pop("livenessProbe"),
    "read-only root filesystem, no privilege escalation": lambda ds: agent_container(ds)["securityContext"].update(
        readOnlyRootFilesystem=False
    ),
    "capabilities: drop ALL, add only DAC_READ_SEARCH": lambda ds: agent_container(ds)["securityContext"][
        "capabilities"
    ].update(add=["DAC_READ_SEARCH", "SYS_ADMIN"]),
    f"termination grace above the agent's {AGENT_SHUTDOWN_GRACE_S} s": lambda ds: ds["spec"]["template"]["spec"].update(
        terminationGracePeriodSeconds=AGENT_SHUTDOWN_GRACE_S
    ),
    "Prometheus scrape annotations": lambda ds: ds["spec"]["template"]["metadata"]["annotations"].pop(
        "prometheus.io/scrape"
    ),
}


def of_kind(docs: list[dict], kind: str, name: str) -> dict:
    return next((d for d in docs if d.get("kind") == kind and d["metadata"]["name"] == name), {})


def egress_ports(policy: dict) -> set[tuple[str, int]]:
    return {(p.get("protocol", "TCP"), p.get("port")) for rule in policy["spec"]["egress"] for p in rule["ports"]}


# Properties of the other objects rendered with the DaemonSet (RBAC, network policy).
RENDER_CHECKS: dict[str, Callable[[list[dict]], bool]] = {
    "ClusterRole: list/watch of pods and namespaces, nothing else": lambda docs: of_kind(
        docs, "ClusterRole", "logrelay-agent"
    )["rules"]
    == [{"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["list", "watch"]}],
    "NetworkPolicy: egress limited to HTTPS, the API server and DNS": lambda docs: "Egress"
    in of_kind(docs, "NetworkPolicy", "logrelay-agent")["spec"]["policyTypes"]
    and egress_ports(of_kind(docs, "NetworkPolicy", "logrelay-agent"))
    == {("TCP", 443), ("TCP", 6443), ("UDP", 53), ("TCP", 53)},
}

RENDER_BREAKS: dict[str, Callable[[list[dict]], None]] = {
    "ClusterRole: list/watch of pods and namespaces, nothing else": lambda docs: of_kind(
        docs, "ClusterRole", "logrelay-agent"
    )["rules"][0]["resources"].append("nodes"),
    "NetworkPolicy: egress limited to HTTPS, the API server and DNS": lambda docs: of_kind(
        docs, "NetworkPolicy", "logrelay-agent"
    )["spec"].update(policyTypes=["Ingress"]),
}


def processor_pdb_ok(docs: list[dict]) -> bool:
    """maxUnavailable 1 (a minAvailable equal to one replica would block every node drain), selecting the pods of the
    processor Deployment."""
    pdb = of_kind(docs, "PodDisruptionBudget", "logrelay-processor")
    pod_labels = of_kind(docs, "Deployment", "logrelay-processor")["spec"]["template"]["metadata"]["labels"]
    selector = pdb["spec"]["selector"]["matchLabels"]
    return (
        pdb["spec"].get("maxUnavailable") == 1
        and "minAvailable" not in pdb["spec"]
        and bool(selector)
        and selector.items() <= pod_labels.items()
    )


# The processor Deployment's network policy and disruption budget, in every render that holds the Deployment.
PROCESSOR_CHECKS: dict[str, Callable[[list[dict]], bool]] = {
    "processor NetworkPolicy: egress limited to HTTPS and DNS": lambda docs: "Egress"
    in of_kind(docs, "NetworkPolicy", "logrelay-processor")["spec"]["policyTypes"]
    and egress_ports(of_kind(docs, "NetworkPolicy", "logrelay-processor")) == {("TCP", 443), ("UDP", 53), ("TCP", 53)},
    "processor NetworkPolicy: ingress only to the metrics port": lambda docs: [
        p for rule in of_kind(docs, "NetworkPolicy", "logrelay-processor")["spec"]["ingress"] for p in rule["ports"]
    ]
    == [{"protocol": "TCP", "port": 9090}],
    "processor PodDisruptionBudget: one pod at a time, selecting the Deployment's pods": processor_pdb_ok,
}

PROCESSOR_BREAKS: dict[str, Callable[[list[dict]], None]] = {
    "processor NetworkPolicy: egress limited to HTTPS and DNS": lambda docs: of_kind(
        docs, "NetworkPolicy", "logrelay-processor"
    )["spec"]["egress"].append({"ports": [{"protocol": "TCP", "port": 5432}]}),
    "processor NetworkPolicy: ingress only to the metrics port": lambda docs: of_kind(
        docs, "NetworkPolicy", "logrelay-processor"
    )["spec"]["ingress"].append({"ports": [{"protocol": "TCP", "port": 22}]}),
    "processor PodDisruptionBudget: one pod at a time, selecting the Deployment's pods": lambda docs: docs.remove(
        of_kind(docs, "PodDisruptionBudget", "logrelay-processor")
    ),
}


def workload_of(monitor: dict, docs: list[dict]) -> dict:
    """The DaemonSet or Deployment a PodMonitor is named after."""
    name = monitor["metadata"]["name"]
    return next(d for d in docs if d.get("kind") in ("DaemonSet", "Deployment") and d["metadata"]["name"] == name)


def pod_monitors(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d.get("kind") == "PodMonitor"]


def selects_its_pods(monitor: dict, docs: list[dict]) -> bool:
    workload = workload_of(monitor, docs)
    selector = monitor["spec"]["selector"]["matchLabels"]
    return (
        monitor["apiVersion"] == "monitoring.coreos.com/v1"
        and bool(selector)
        and selector.items() <= workload["spec"]["template"]["metadata"]["labels"].items()
        and monitor["metadata"].get("namespace") == workload["metadata"].get("namespace")
        and "namespaceSelector" not in monitor["spec"]
    )


def scrapes_the_metrics_port(monitor: dict, docs: list[dict]) -> bool:
    pod = workload_of(monitor, docs)["spec"]["template"]["spec"]
    named = {p["name"] for c in pod["containers"] for p in c.get("ports", []) if "name" in p}
    endpoints = monitor["spec"]["podMetricsEndpoints"]
    return (
        bool(endpoints)
        and "metrics" in named
        and all(e.get("port") == "metrics" and e.get("path") == "/metrics" for e in endpoints)
    )


# Every PodMonitor (the opt-in k8s/components/prometheus-operator) against the workload it is named after.
MONITOR_CHECKS: dict[str, Callable[[list[dict]], bool]] = {
    "PodMonitor in its workload's namespace, selecting its pods": lambda docs: all(
        selects_its_pods(m, docs) for m in pod_monitors(docs)
    ),
    "PodMonitor scrapes the named metrics port at /metrics": lambda docs: all(
        scrapes_the_metrics_port(m, docs) for m in pod_monitors(docs)
    ),
}

MONITOR_BREAKS: dict[str, Callable[[list[dict]], None]] = {
    "PodMonitor in its workload's namespace, selecting its pods": lambda docs: pod_monitors(docs)[0]["spec"][
        "selector"
    ]["matchLabels"].update({"app.kubernetes.io/name": "another-app"}),
    "PodMonitor scrapes the named metrics port at /metrics": lambda docs: pod_monitors(docs)[0]["spec"][
        "podMetricsEndpoints"
    ][0].update(port="http"),
}


def run(checks: dict, subject) -> list[str]:
    """The names of the `checks` that `subject` fails."""
    failed = []
    for name, check in checks.items():
        try:
            ok = check(subject)
        except (KeyError, IndexError, TypeError, AttributeError, StopIteration):
            ok = False
        if not ok:
            failed.append(name)
    return failed


def report(f: str, what: str, checks: dict, breaks: dict, subject, self_test: bool) -> bool:
    """Runs `checks` on `subject` (or, with `self_test`, each of `breaks` on a copy); prints; True when all is well."""
    if self_test:
        missed = []
        for name, brk in breaks.items():
            broken = copy.deepcopy(subject)
            brk(broken)
            if name not in run(checks, broken):
                missed.append(name)
        print(f"  {'ok  ' if not missed else 'FAIL'} {f}: {len(breaks) - len(missed)}/{len(breaks)} {what} breaks caught")
        for name in missed:
            print(f"         still passes when broken: {name}")
        return not missed
    failed = run(checks, subject)
    print(f"  {'ok  ' if not failed else 'FAIL'} {f}: {len(checks) - len(failed)}/{len(checks)} {what} properties")
    for name in failed:
        print(f"         missing: {name}")
    return not failed


def main(argv: list[str]) -> int:
    self_test = "--self-test" in argv
    files = [a for a in argv if not a.startswith("--")]
    daemonsets = []
    renders = []
    by_file = {}
    for f in files:
        with open(f) as fh:
            by_file[f] = [doc for doc in yaml.safe_load_all(fh) if doc]
    every_doc = [doc for docs in by_file.values() for doc in docs]
    for f, docs in by_file.items():
        for doc in docs:
            if doc.get("kind") == "DaemonSet" and doc["metadata"]["name"] == "logrelay-agent":
                daemonsets.append((f, doc))
                # A rendered overlay holds its RBAC and policy; raw manifests keep them in files of their own.
                rendered = any(d.get("kind") == "ClusterRole" for d in docs)
                renders.append((f, docs if rendered else every_doc))
    if not daemonsets:
        print("no logrelay-agent DaemonSet in the given manifests")
        return 1
    ok = True
    for f, ds in daemonsets:
        ok &= report(f, "DaemonSet", AGENT_CHECKS, AGENT_BREAKS, ds, self_test)
    for f, docs in renders:
        ok &= report(f, "RBAC/policy", RENDER_CHECKS, RENDER_BREAKS, docs, self_test)
    for f, docs in by_file.items():
        if of_kind(docs, "Deployment", "logrelay-processor"):
            rendered = of_kind(docs, "NetworkPolicy", "logrelay-processor")
            ok &= report(f, "processor policy/PDB", PROCESSOR_CHECKS, PROCESSOR_BREAKS, docs if rendered else every_doc, self_test)
    for f, docs in by_file.items():
        if pod_monitors(docs):
            rendered = any(d.get("kind") in ("DaemonSet", "Deployment") for d in docs)
            ok &= report(f, "PodMonitor", MONITOR_CHECKS, MONITOR_BREAKS, docs if rendered else every_doc, self_test)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
