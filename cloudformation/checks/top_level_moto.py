#!/usr/bin/env python3
"""`deploy.sh --top-level-stacks --include-lambda` against the moto emulator, through the AWS CLI.

Starts `moto_server` on a free loopback port, runs deploy.sh with AWS_ENDPOINT_URL pointing at it, then checks that
the core, SQS and Lambda stacks are CREATE_COMPLETE, that each has every output its template declares (except those of
resources moto did not create), and that every
parameter wired from an output (`deploy.sh --print-wiring`) holds that output's value. deploy.sh prints the template
resources moto did not create (types its CloudFormation skips, see moto_smoke.py).

Uses the AWS CLI pinned in tools/requirements.txt (the venv's `aws`, else one on PATH); without one it fails, naming
scripts/dev-env.sh.

Usage: .venv/bin/python cloudformation/checks/top_level_moto.py   (exit code 0 = passed)
"""

import os
import pathlib
import shutil
import subprocess
import sys
import time

import boto3
from cfnlint.decode import decode

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from moto_smoke import REGION, Failures, free_port, start_moto  # noqa: E402

TEMPLATES = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = TEMPLATES / "deploy.sh"
STACK = "logrelay-top-level"
STACKS = {
    "CoreInfrastructureStack": ("core-infrastructure.yaml", f"{STACK}-core"),
    "SQSStack": ("sqs-stack.yaml", f"{STACK}-sqs"),
    "LambdaStack": ("lambda-stack.yaml", f"{STACK}-lambda"),
}
# deploy.sh (cfn-lint, three stacks) takes about 25 s here; this bounds a hang.
DEPLOY_TIMEOUT_S = 240


def declared_outputs(template: str, created: set[str]) -> set[str]:
    """The outputs of a template, except those whose value refers to a resource that was not created (moto drops
    them with the resource)."""
    parsed, matches = decode(str(TEMPLATES / template))
    if parsed is None:
        raise AssertionError(f"{template}: {matches}")

    def refers_to_missing(value) -> bool:
        if isinstance(value, dict):
            for fn, arg in value.items():
                target = arg if fn == "Ref" else arg[0] if fn == "Fn::GetAtt" and isinstance(arg, list) else None
                if target in parsed["Resources"] and target not in created:
                    return True
                if refers_to_missing(arg):
                    return True
        if isinstance(value, list):
            return any(refers_to_missing(v) for v in value)
        return False

    return {name for name, body in parsed.get("Outputs", {}).items() if not refers_to_missing(body["Value"])}


def main() -> int:
    venv_bin = pathlib.Path(sys.executable).parent
    if not (venv_bin / "aws").exists() and shutil.which("aws") is None:
        print("  no AWS CLI: run scripts/dev-env.sh (tools/requirements.txt pins awscli)")
        return 1
    port = free_port()
    started = time.monotonic()
    moto = start_moto(port)
    try:
        env = dict(
            os.environ,
            AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_REGION=REGION,
            AWS_DEFAULT_REGION=REGION,
            PATH=f"{pathlib.Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        )
        run = subprocess.run(
            [str(DEPLOY), "--top-level-stacks", "--stack-name", STACK, "--include-lambda",
             "--ecr-image-uri", "123456789012.dkr.ecr.us-east-1.amazonaws.com/logrelay-processor:0.1.0",
             "--oidc-issuer", "oidc.example.com/cluster-a"],
            env=env, capture_output=True, text=True, timeout=DEPLOY_TIMEOUT_S,
        )
        for line in (run.stdout + run.stderr).splitlines():
            if line.startswith(("[INFO] creating", "[INFO] deploying", "[WARN]", "[ERROR]")) or "COMPLETE" in line:
                print(f"  deploy.sh: {line}")
        f = Failures()
        f.check(run.returncode == 0, f"deploy.sh --top-level-stacks exits 0 (got {run.returncode})")
        if run.returncode != 0:
            print(run.stdout[-3000:], run.stderr[-3000:], sep="\n")
            return 1
        cfn = boto3.client(
            "cloudformation", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=REGION,
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )
        stacks = {}
        for logical, (template, name) in STACKS.items():
            stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
            stacks[logical] = stack
            f.check(stack["StackStatus"] == "CREATE_COMPLETE", f"{name}: {stack['StackStatus']}")
            outputs = {o["OutputKey"] for o in stack.get("Outputs", [])}
            resources = cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]
            missing = declared_outputs(template, {r["LogicalResourceId"] for r in resources}) - outputs
            f.check(not missing, f"{name}: every output of {template} ({sorted(missing) or 'none missing'})")
        wiring = subprocess.run([str(DEPLOY), "--print-wiring"], check=True, capture_output=True, text=True).stdout
        wired, wrong = 0, 0
        for line in wiring.splitlines():
            logical, param, source = line.split()
            if ".Outputs." not in source:
                continue
            origin, output = source.split(".Outputs.")
            given = {p["ParameterKey"]: p["ParameterValue"] for p in stacks[logical].get("Parameters", [])}
            value = {o["OutputKey"]: o["OutputValue"] for o in stacks[origin].get("Outputs", [])}.get(output)
            if given.get(param) != value or value is None:
                f.check(False, f"{logical}.{param} = {source} ({given.get(param)!r} != {value!r})")
                wrong += 1
            wired += 1
        f.check(wired > 0 and not wrong, f"{wired} parameters wired from outputs hold those outputs' values")
        print(f"  ({time.monotonic() - started:.1f} s)")
        return 1 if f.items else 0
    finally:
        moto.terminate()
        moto.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
