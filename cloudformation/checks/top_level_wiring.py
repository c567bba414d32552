#!/usr/bin/env python3
"""`deploy.sh --top-level-stacks` passes each stack exactly what main.yaml passes the nested stack.

Reads main.yaml's AWS::CloudFormation::Stack resources (their template and every Parameters entry) and compares them
with `deploy.sh --print-wiring` ("LOGICAL PARAMETER SOURCE" lines) and deploy.sh's stack table: a parameter wired
differently, missing or extra, a stack in another order or on another template, or a main.yaml intrinsic the mode
cannot resolve fails the check. `--self-test` changes the wiring in a copy of main.yaml in three ways (another
output, a dropped parameter, another mapping key) and of deploy.sh's in two (another output, stacks reordered), and
expects each to fail.

Usage: .venv/bin/python cloudformation/checks/top_level_wiring.py [--self-test]   (exit code 0 = passed)
"""

import copy
import json
import pathlib
import re
import subprocess
import sys

from cfnlint.decode import decode

TEMPLATES = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = TEMPLATES / "deploy.sh"


def plain(node):
    """cfn-lint's nodes -> plain dicts/lists/strings."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


def source(value, conditions: dict) -> str:
    """One nested-stack parameter value as deploy.sh writes its source; UNSUPPORTED:… when the mode has no form."""
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Ref" and isinstance(arg, str):
            return f"Ref:{arg}"
        if fn == "Fn::GetAtt":
            parts = arg.split(".", 1) if isinstance(arg, str) else arg
            if len(parts) == 2 and parts[1].startswith("Outputs."):
                return f"{parts[0]}.{parts[1]}"
        if fn == "Fn::FindInMap" and len(arg) == 3 and isinstance(arg[1], dict) and "Ref" in arg[1]:
            return f"FindInMap:{arg[0]}:{arg[1]['Ref']}:{arg[2]}"
        if fn == "Fn::If" and len(arg) == 3 and all(isinstance(a, dict) and "Ref" in a for a in arg[1:]):
            first, second = arg[1]["Ref"], arg[2]["Ref"]
            # deploy.sh resolves the condition as "first is not empty".
            if conditions.get(arg[0]) == {"Fn::Not": [{"Fn::Equals": [{"Ref": first}, ""]}]}:
                return f"If:{arg[0]}:{first}:{second}"
    return f"UNSUPPORTED:{json.dumps(value, sort_keys=True)}"


def main_wiring(main: dict) -> tuple[list[tuple[str, str]], set[str]]:
    """main.yaml's nested stacks in order (logical id, template file) and "LOGICAL PARAMETER SOURCE" lines."""
    stacks, lines = [], set()
    conditions = main.get("Conditions", {})
    for logical, resource in main["Resources"].items():
        if resource.get("Type") != "AWS::CloudFormation::Stack":
            continue
        url = resource["Properties"]["TemplateURL"]
        text = url.get("Fn::Sub", "") if isinstance(url, dict) else url
        text = text[0] if isinstance(text, list) else text
        stacks.append((logical, re.sub(r".*[/}]", "", text)))
        for param, value in resource["Properties"].get("Parameters", {}).items():
            lines.add(f"{logical} {param} {source(value, conditions)}")
    return stacks, lines


def script_wiring() -> tuple[list[tuple[str, str]], set[str]]:
    """deploy.sh's stack table and what it passes (--print-wiring)."""
    out = subprocess.run([str(DEPLOY), "--print-wiring"], check=True, capture_output=True, text=True).stdout
    text = DEPLOY.read_text()
    table = re.search(r"^top_level_stacks=\((.*?)^\)", text, re.S | re.M)
    if table is None:
        raise SystemExit("deploy.sh: no top_level_stacks table")
    stacks = [tuple(entry.split()[:2]) for entry in re.findall(r'"([^"]+)"', table.group(1))]
    return stacks, set(out.splitlines())


def problems(main: dict, script: tuple[list, set]) -> list[str]:
    main_stacks, main_lines = main_wiring(main)
    script_stacks, script_lines = script
    out = [f"main.yaml wires what deploy.sh does not: {line}" for line in sorted(main_lines - script_lines)]
    out += [f"deploy.sh wires what main.yaml does not: {line}" for line in sorted(script_lines - main_lines)]
    out += [f"main.yaml uses an intrinsic deploy.sh cannot resolve: {line}" for line in sorted(main_lines)
            if " UNSUPPORTED:" in line]
    if main_stacks != script_stacks:
        out.append(f"stacks (order, templates): main.yaml {main_stacks}, deploy.sh {script_stacks}")
    return out


def self_test(main: dict, script: tuple[list, set]) -> int:
    def other_output(m):
        m["Resources"]["SQSStack"]["Properties"]["Parameters"]["KmsKeyArn"] = {
            "Fn::GetAtt": ["CoreInfrastructureStack", "Outputs.S3WriterRoleArn"]}

    def dropped(m):
        del m["Resources"]["LambdaStack"]["Properties"]["Parameters"]["DLQArn"]

    def other_key(m):
        m["Resources"]["SQSStack"]["Properties"]["Parameters"]["VisibilityTimeoutSeconds"] = {
            "Fn::FindInMap": ["VisibilityForTimeout", {"Ref": "ReservedConcurrency"}, "VisibilityTimeout"]}

    failed = 0
    for name, mutate in [("another output", other_output), ("a dropped parameter", dropped),
                         ("another mapping key", other_key)]:
        broken = copy.deepcopy(main)
        mutate(broken)
        caught = bool(problems(broken, script))
        print(f"  {'ok ' if caught else 'FAIL'} main.yaml, {name}: {'detected' if caught else 'NOT detected'}")
        failed += not caught
    # The same on deploy.sh's side: one of its lines wired to another output.
    stacks, lines = script
    changed = {line.replace("LogDeliveryQueueUrl", "LogDeliveryDLQUrl") for line in lines}
    for name, broken_script in [("deploy.sh, another output", (stacks, changed)),
                                ("deploy.sh, stacks reordered", (stacks[::-1], lines))]:
        caught = bool(problems(main, broken_script))
        print(f"  {'ok ' if caught else 'FAIL'} {name}: {'detected' if caught else 'NOT detected'}")
        failed += not caught
    return failed


def main(argv: list[str]) -> int:
    parsed, matches = decode(str(TEMPLATES / "main.yaml"))
    if parsed is None:
        raise SystemExit(f"main.yaml: cannot parse: {matches}")
    main_yaml = plain(parsed)
    script = script_wiring()
    if "--self-test" in argv:
        print("top-level wiring, self-test (each changed wiring must fail):")
        return 1 if self_test(main_yaml, script) else 0
    found = problems(main_yaml, script)
    for problem in found:
        print(f"  FAIL {problem}")
    if not found:
        print(f"  ok deploy.sh --top-level-stacks wires {len(script[1])} parameters of {len(script[0])} stacks "
              "as main.yaml does")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
