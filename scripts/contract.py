#!/usr/bin/env python3
"""The contract between what we ship and the binaries, judged by the binaries themselves (`--check-config`).

For every logrelay container of every rendered manifest, the Lambda function of lambda-stack.yaml and every Containerfile:
- the environment it sets (ConfigMap `envFrom`, `env`, downward API values as the kubelet fills them, Containerfile `ENV`)
  and its command/args are parsed and validated by that binary's own `--check-config`: valid values, no unknown
  `LOGRELAY_*` variable, no variable that is no setting (nor read by the AWS SDK), no deprecated name;
- every CloudFormation Number parameter that feeds a setting has MinValue and MaxValue, and the binary accepts the
  default and both bounds;
- every agent manifest chooses its namespace selector (LOGRELAY_NAMESPACE_SELECTOR) rather than relying on a default;
- the containerPort, the liveness/readiness probes (port and path), the `prometheus.io/port`/`path` annotations, the
  NetworkPolicy's ingress port and the Containerfile's `EXPOSE` all name the address and paths the binary serves with
  that configuration.

`--self-test` breaks each property in a copy and requires the check to fail.

Usage: .venv/bin/python scripts/contract.py --agent BIN --processor BIN [--self-test] RENDERED.yaml…
"""

import argparse
import copy
import json
import pathlib
import re
import subprocess
import sys
from typing import Callable, NamedTuple

import yaml
from cfnlint.decode import decode

ROOT = pathlib.Path(__file__).resolve().parent.parent
LAMBDA_STACK = ROOT / "cloudformation" / "lambda-stack.yaml"
# Containerfile -> the binary in it.
CONTAINERFILES = {
    "containers/Containerfile.agent": "agent",
    "containers/Containerfile.agent.local": "agent",
    "containers/Containerfile.processor": "processor",
    "containers/Containerfile.processor.local": "processor",
}
# Workload name in the manifests -> the binary it runs.
WORKLOADS = {"logrelay-agent": "agent", "logrelay-processor": "processor"}
# Which namespaces are shipped depends on the platform (docs/deploy.md): every agent manifest says it, none relies on the
# binary's default.
EXPLICIT_AGENT_SETTING = "LOGRELAY_NAMESPACE_SELECTOR"
# What the kubelet puts into every pod's environment, and the downward API values of an example pod.
KUBELET_ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
FIELD_REFS = {
    "spec.nodeName": "node-a",
    "metadata.name": "pod-a",
    "metadata.namespace": "logrelay",
    "status.podIP": "10.0.0.7",
}
# What Lambda puts into a function's environment (the Runtime API makes the processor default to lambda mode).
LAMBDA_ENV = {
    "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
    "AWS_LAMBDA_FUNCTION_NAME": "example",
    "AWS_REGION": "us-east-1",
}


class Binaries(NamedTuple):
    agent: str
    processor: str


def check_config(binary: str, env: dict[str, str], args: list[str]) -> dict:
    """The binary's `--check-config` report for this environment and these arguments (plus its exit code)."""
    proc = subprocess.run(
        [binary, *args, "--check-config"],
        env={k: str(v) for k, v in env.items()},
        capture_output=True,
        text=True,
        timeout=30,
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        report = {"errors": [f"no report: {proc.stdout.strip()} {proc.stderr.strip()}"]}
    report["exit_code"] = proc.returncode
    return report


def report_problems(where: str, report: dict, env_names) -> list[str]:
    """Invalid values, unknown or unused variables, deprecated names."""
    problems = [f"{where}: {e}" for e in report.get("errors", [])]
    for name in report.get("unknown_env", []):
        problems.append(f"{where}: {name} is not a setting of {report.get('binary')}")
    for name in report.get("unused_env", []):
        if name in env_names:
            problems.append(f"{where}: {name} is not a setting of {report.get('binary')} (nor read by the AWS SDK)")
    for text in report.get("deprecated", []):
        problems.append(f"{where}: {text}")
    if report.get("exit_code") != 0 and not problems:
        problems.append(f"{where}: --check-config exited {report.get('exit_code')}")
    return problems


def listen_port(report: dict) -> int | None:
    listen = report.get("listen")
    return int(listen.rsplit(":", 1)[1]) if listen else None


# ------------------------------------------------------------------------------------------------ manifests
class Workload(NamedTuple):
    file: str
    binary: str
    doc: dict  # the DaemonSet or Deployment
    docs: list  # every document of its rendered file (ConfigMaps, NetworkPolicies)


def load_workloads(files: list[str]) -> list[Workload]:
    """Each workload with the documents of its rendered file; for unrendered bases (no kubectl), with the documents of
    every file of its directory."""
    by_file = {}
    for f in files:
        with open(f) as fh:
            by_file[f] = [d for d in yaml.safe_load_all(fh) if d]
    out = []
    for f, docs in by_file.items():
        for d in docs:
            if d.get("kind") in ("DaemonSet", "Deployment") and d["metadata"]["name"] in WORKLOADS:
                if not any(x.get("kind") == "ConfigMap" for x in docs):
                    directory = pathlib.Path(f).parent
                    docs = [x for g, xs in by_file.items() if pathlib.Path(g).parent == directory for x in xs]
                out.append(Workload(f, WORKLOADS[d["metadata"]["name"]], d, docs))
    return out


def container(w: Workload) -> dict:
    return w.doc["spec"]["template"]["spec"]["containers"][0]


def container_env(w: Workload) -> dict[str, str]:
    """The container's environment as the kubelet builds it: envFrom ConfigMaps, then env (later wins)."""
    c = container(w)
    configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in w.docs if d.get("kind") == "ConfigMap"}
    env = dict(KUBELET_ENV)
    for source in c.get("envFrom", []):
        name = source.get("configMapRef", {}).get("name")
        env.update({k: str(v) for k, v in configmaps.get(name, {}).items()})
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = str(e["value"])
        else:
            env[e["name"]] = FIELD_REFS.get(e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath"), "x")
    return env


def container_args(w: Workload) -> list[str]:
    """The container's command after the binary, and its args."""
    c = container(w)
    return [*c.get("command", [])[1:], *c.get("args", [])]


def resolve_port(c: dict, port) -> int | None:
    if isinstance(port, int):
        return port
    return next((p["containerPort"] for p in c.get("ports", []) if p.get("name") == port), None)


def workload_problems(w: Workload, bins: Binaries) -> list[str]:
    where = f"{w.file}: {w.doc['kind']}/{w.doc['metadata']['name']}"
    env = container_env(w)
    report = check_config(getattr(bins, w.binary), env, container_args(w))
    problems = report_problems(where, report, set(env) - set(KUBELET_ENV))
    if w.binary == "agent" and EXPLICIT_AGENT_SETTING not in env:
        problems.append(f"{where}: {EXPLICIT_AGENT_SETTING} is not set; which namespaces ship is a per-platform choice")
    port = listen_port(report)
    paths = report.get("http_paths", [])
    c = container(w)
    if port is None:
        if report.get("errors"):
            return problems
        return problems + [f"{where}: the binary serves no HTTP with this configuration, but probes/ports are declared"]
    declared = [p["containerPort"] for p in c.get("ports", [])]
    if declared != [port]:
        problems.append(f"{where}: containerPort {declared} but the binary listens on {report['listen']}")
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = c.get(kind)
        if probe is None:
            continue
        get = probe.get("httpGet", {})
        if resolve_port(c, get.get("port")) != port:
            problems.append(f"{where}: {kind} port {get.get('port')} is not the listen port {port}")
        if get.get("path") not in paths:
            problems.append(f"{where}: {kind} path {get.get('path')} is not served (serves {paths})")
    annotations = w.doc["spec"]["template"]["metadata"].get("annotations", {})
    if annotations.get("prometheus.io/scrape") == "true":
        if annotations.get("prometheus.io/port") != str(port):
            problems.append(f"{where}: prometheus.io/port {annotations.get('prometheus.io/port')} is not {port}")
        if annotations.get("prometheus.io/path", "/metrics") not in paths:
            problems.append(f"{where}: prometheus.io/path {annotations.get('prometheus.io/path')} is not served")
    labels = w.doc["spec"]["template"]["metadata"].get("labels", {})
    for np in (d for d in w.docs if d.get("kind") == "NetworkPolicy"):
        selector = np["spec"].get("podSelector", {}).get("matchLabels", {})
        if not selector.items() <= labels.items() or "Ingress" not in np["spec"].get("policyTypes", ["Ingress"]):
            continue
        ports = [resolve_port(c, p.get("port")) for rule in np["spec"].get("ingress", []) for p in rule.get("ports", [])]
        if port not in ports:
            problems.append(f"{where}: NetworkPolicy/{np['metadata']['name']} admits ports {ports}, not {port}")
    return problems


# ------------------------------------------------------------------------------------------------ Containerfiles
def containerfile_directives(text: str, directive: str) -> list[str]:
    joined = re.sub(r"\\\n", " ", text)
    return [m.group(1).strip() for m in re.finditer(rf"^\s*{directive}\s+(.+)$", joined, re.M | re.I)]


def containerfile_env(text: str) -> dict[str, str]:
    env = {}
    for value in containerfile_directives(text, "ENV"):
        for k, v in re.findall(r'(\w+)=("[^"]*"|\S+)', value):
            env[k] = v.strip('"')
    # Only the final stage's ENV reaches the image.
    last_from = text.lower().rfind("\nfrom ")
    final = text[last_from:] if last_from >= 0 else text
    return {k: v for k, v in env.items() if re.search(rf"\b{k}=", final)}


def containerfile_problems(path: str, text: str, binary: str, bins: Binaries, ports: set[int]) -> list[str]:
    env = containerfile_env(text)
    names = {k for k in env if k != "PATH"}
    report = check_config(getattr(bins, binary), env, [])
    # Only the names are checked here: an image's ENV is completed by the deployment's configuration.
    report["errors"], report["exit_code"] = [], 0
    problems = report_problems(path, report, names)
    exposed = {int(p.split("/")[0]) for value in containerfile_directives(text, "EXPOSE") for p in value.split()}
    if ports and exposed != ports:
        problems.append(f"{path}: EXPOSE {sorted(exposed)} but the manifests' {binary} listens on {sorted(ports)}")
    return problems


# ------------------------------------------------------------------------------------------------ Lambda stack
def to_plain(node):
    if isinstance(node, dict):
        return {str(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    return str(node) if isinstance(node, str) else node


def example_value(name: str, param: dict) -> str:
    """A valid-looking value for a String parameter without a default, by what its name says it holds."""
    if "Default" in param:
        return str(param["Default"])
    for suffix, value in (
        ("TableName", "logrelay-example-table"),
        ("RoleArn", "arn:aws:iam::111111111111:role/logrelay-example"),
        ("Url", "https://sqs.us-east-1.amazonaws.com/111111111111/logrelay-example"),
        ("Arn", "arn:aws:sqs:us-east-1:111111111111:logrelay-example"),
    ):
        if name.endswith(suffix):
            return value
    return "example"


def lambda_problems(template: dict, bins: Binaries) -> list[str]:
    params = template.get("Parameters", {})
    problems = []
    for logical, res in template.get("Resources", {}).items():
        if res.get("Type") != "AWS::Lambda::Function":
            continue
        where = f"lambda-stack.yaml:{logical}"
        variables = res["Properties"].get("Environment", {}).get("Variables", {})
        base, numbers = dict(LAMBDA_ENV), {}
        for name, value in variables.items():
            ref = value.get("Ref") if isinstance(value, dict) else None
            if ref is None:
                base[name] = str(value)
            elif params.get(ref, {}).get("Type") == "Number":
                numbers[name] = ref
                base[name] = str(params[ref].get("Default", params[ref].get("MinValue", 1)))
            else:
                base[name] = example_value(ref, params.get(ref, {}))
        problems += report_problems(where, check_config(bins.processor, base, []), set(variables))
        for name, ref in numbers.items():
            p = params[ref]
            for bound in ("MinValue", "MaxValue"):
                if bound not in p:
                    problems.append(f"{where}: parameter {ref} (-> {name}) has no {bound}; the processor has bounds")
                    continue
                report = check_config(bins.processor, {**base, name: str(p[bound])}, [])
                for e in report.get("errors", []):
                    problems.append(f"{where}: parameter {ref} {bound} {p[bound]} is refused by the processor: {e}")
    return problems


# ------------------------------------------------------------------------------------------------ run
class Inputs(NamedTuple):
    workloads: list[Workload]
    containerfiles: dict[str, str]
    lambda_stack: dict


def run(inputs: Inputs, bins: Binaries) -> list[str]:
    problems = []
    listen_ports: dict[str, set[int]] = {"agent": set(), "processor": set()}
    for w in inputs.workloads:
        problems += workload_problems(w, bins)
        for p in container(w).get("ports", []):
            listen_ports[w.binary].add(p["containerPort"])
    for path, text in inputs.containerfiles.items():
        problems += containerfile_problems(path, text, CONTAINERFILES[path], bins, listen_ports[CONTAINERFILES[path]])
    problems += lambda_problems(inputs.lambda_stack, bins)
    return problems


def _workload(inputs: Inputs, binary: str) -> Workload:
    return next(w for w in inputs.workloads if w.binary == binary)


def _configmap(w: Workload) -> dict:
    return next(d for d in w.docs if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == w.doc["metadata"]["name"])


def _lambda_env(inputs: Inputs) -> dict:
    fn = next(r for r in inputs.lambda_stack["Resources"].values() if r["Type"] == "AWS::Lambda::Function")
    return fn["Properties"]["Environment"]["Variables"]


# Per property: a mutation of the inputs that must make the check fail.
BREAKS: dict[str, Callable[[Inputs], None]] = {
    "agent containerPort": lambda i: container(_workload(i, "agent"))["ports"][0].update(containerPort=9090),
    "agent listen address": lambda i: _configmap(_workload(i, "agent"))["data"].update(LOGRELAY_LISTEN="0.0.0.0:9090"),
    "processor readiness path": lambda i: container(_workload(i, "processor"))["readinessProbe"]["httpGet"].update(
        path="/ready"
    ),
    "agent scrape port": lambda i: _workload(i, "agent").doc["spec"]["template"]["metadata"]["annotations"].update(
        {"prometheus.io/port": "9090"}
    ),
    "agent NetworkPolicy port": lambda i: next(
        d for d in _workload(i, "agent").docs if d.get("kind") == "NetworkPolicy"
    )["spec"]["ingress"][0]["ports"][0].update(port=9090),
    "namespace selector left to the default": lambda i: _configmap(_workload(i, "agent"))["data"].pop(
        EXPLICIT_AGENT_SETTING
    ),
    "unknown LOGRELAY_ variable": lambda i: _configmap(_workload(i, "agent"))["data"].update(LOGRELAY_LISTN="x"),
    "variable that is no setting": lambda i: container(_workload(i, "agent"))["env"].append(
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
    ),
    "deprecated name in a ConfigMap": lambda i: _configmap(_workload(i, "processor"))["data"].update(MAX_BATCH_SIZE="10"),
    "deprecated prefix name": lambda i: _configmap(_workload(i, "agent"))["data"].update(LOGRELAY_S3_PREFIX="p"),
    "invalid value": lambda i: _configmap(_workload(i, "processor"))["data"].update(RETRY_ATTEMPTS="0"),
    "Containerfile EXPOSE": lambda i: i.containerfiles.update(
        {"containers/Containerfile.agent": i.containerfiles["containers/Containerfile.agent"].replace("EXPOSE 9880", "EXPOSE 9090")}
    ),
    "Lambda deprecated variable": lambda i: _lambda_env(i).update(MAX_BATCH_SIZE={"Ref": "BatchSize"}),
    "Lambda parameter bound": lambda i: i.lambda_stack["Parameters"]["RetryAttempts"].update(MinValue=0),
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", required=True)
    parser.add_argument("--processor", required=True)
    parser.add_argument("--self-test", action="store_true")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    bins = Binaries(args.agent, args.processor)
    parsed, matches = decode(str(LAMBDA_STACK))
    if parsed is None:
        print(f"cannot parse {LAMBDA_STACK}: {matches}")
        return 1
    inputs = Inputs(
        load_workloads(args.files),
        {f: (ROOT / f).read_text() for f in CONTAINERFILES},
        to_plain(parsed),
    )
    if {w.binary for w in inputs.workloads} != set(WORKLOADS.values()):
        print(f"expected an agent and a processor workload in the manifests, found {[w.file for w in inputs.workloads]}")
        return 1
    if not args.self_test:
        problems = run(inputs, bins)
        checked = f"{len(inputs.workloads)} workloads, {len(inputs.containerfiles)} Containerfiles, lambda-stack.yaml"
        print(f"  {'ok  ' if not problems else 'FAIL'} {checked}")
        for p in problems:
            print(f"         {p}")
        return 1 if problems else 0
    missed = []
    for name, brk in BREAKS.items():
        broken = copy.deepcopy(inputs)
        brk(broken)
        caught = run(broken, bins)
        print(f"  {'ok  ' if caught else 'FAIL'} {name}: {'fails' if caught else 'STILL PASSES'} on a broken copy")
        if caught:
            print(f"         ({caught[0]})")
        else:
            missed.append(name)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
