#!/usr/bin/env python3
"""Deploys logrelay's CloudFormation templates into a running moto server for the demo.

Run by `logrelay-demo` with the repo's .venv python (boto3 comes with moto). Two subcommands, each printing one JSON
object on stdout (progress and errors go to stderr):

  central  --endpoint URL --templates DIR --project P --suffix HEX8 [--oidc-issuer I] [--visibility-timeout S]
           [--max-receive-count N]
      core-infrastructure.yaml, then sqs-stack.yaml with the core outputs, in the default account 123456789012.
      Prints {"core": {outputs}, "sqs": {outputs}, "skipped": {"logical id": "type", ...}}.

  customer --endpoint URL --templates DIR --account ID --stack-name NAME --param KEY=VALUE ...
      customer-log-distribution-role.yaml in account ID (acting there through an assumed role, which moto maps into
      that account). Prints {"outputs": {outputs}, "skipped": {...}}.

moto's CloudFormation skips some resource types and properties (see docs/deploy.md and cloudformation/checks/
moto_smoke.py); "skipped" lists the resources it did not create, so the caller can wire them through the SDK.
"""

import argparse
import json
import os
import pathlib
import sys
import time

import boto3
from botocore.config import Config

REGION = "us-east-1"
# A stack in moto completes synchronously; this bounds a hang, it is not a tuning knob.
STACK_TIMEOUT_S = 60
# Acting in a customer account: moto maps an assumed role's credentials into the role's account.
CUSTOMER_ADMIN_ROLE = "logrelay-demo-admin"


def log(message: str) -> None:
    print(f"deploy_stacks: {message}", file=sys.stderr, flush=True)


def client(endpoint: str, name: str, credentials: dict | None = None):
    cfg = Config(retries={"max_attempts": 2, "mode": "standard"})
    return boto3.client(name, endpoint_url=endpoint, region_name=REGION, config=cfg, **(credentials or {}))


def deploy(cfn, name: str, template: pathlib.Path, params: dict) -> tuple[dict, dict]:
    """Creates a stack and waits for it; returns (outputs, skipped resources {logical id: type})."""
    cfn.create_stack(
        StackName=name,
        TemplateBody=template.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
    )
    deadline = time.monotonic() + STACK_TIMEOUT_S
    while True:
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        status = stack["StackStatus"]
        if status == "CREATE_COMPLETE":
            break
        if not status.endswith("IN_PROGRESS") or time.monotonic() > deadline:
            events = cfn.describe_stack_events(StackName=name)["StackEvents"]
            reasons = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}" for e in events]
            raise RuntimeError(f"stack {name}: {status}\n  " + "\n  ".join(reasons))
        time.sleep(0.2)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    resources = cfn.describe_stack_resources(StackName=name)["StackResources"]
    created = {r["LogicalResourceId"] for r in resources if "LogicalResourceId" in r}
    declared = declared_resources(template, params)
    skipped = {logical: kind for logical, kind in declared.items() if logical not in created}
    log(f"stack {name}: CREATE_COMPLETE, moto skipped {sorted(skipped.values()) or 'nothing'}")
    return outputs, skipped


def declared_resources(template: pathlib.Path, params: dict) -> dict:
    """Logical id -> type of the resources whose Condition holds with these parameters (conditions the demo
    uses are simple Equals/Not on parameters; anything else counts as true)."""
    from cfnlint.decode import decode

    parsed, matches = decode(str(template))
    if parsed is None:
        raise RuntimeError(f"{template}: {matches}")
    values = {k: str(v.get("Default", "")) for k, v in parsed.get("Parameters", {}).items()}
    values.update(params)

    def holds(expr) -> bool:
        if isinstance(expr, dict) and "Fn::Equals" in expr:
            a, b = (values.get(x["Ref"], "") if isinstance(x, dict) and "Ref" in x else str(x) for x in expr["Fn::Equals"])
            return a == b
        if isinstance(expr, dict) and "Fn::Not" in expr:
            return not holds(expr["Fn::Not"][0])
        if isinstance(expr, dict) and "Condition" in expr:
            return holds(parsed["Conditions"][expr["Condition"]])
        return True

    out = {}
    for logical, body in parsed["Resources"].items():
        condition = body.get("Condition")
        if condition is None or holds(parsed.get("Conditions", {}).get(condition, True)):
            out[logical] = body["Type"]
    return out


def central(args) -> dict:
    cfn = client(args.endpoint, "cloudformation")
    templates = pathlib.Path(args.templates)
    base = {"Environment": "development", "ProjectName": args.project, "RandomSuffix": args.suffix}
    core, core_skipped = deploy(
        cfn,
        f"{args.project}-core",
        templates / "core-infrastructure.yaml",
        {**base, "ClusterOidcIssuer": args.oidc_issuer},
    )
    sqs, sqs_skipped = deploy(
        cfn,
        f"{args.project}-sqs",
        templates / "sqs-stack.yaml",
        {
            **base,
            "LogDeliveryTopicArn": core["LogDeliveryTopicArn"],
            "KmsKeyArn": core["KmsKeyArn"],
            "ClusterOidcIssuer": args.oidc_issuer,
            "VisibilityTimeoutSeconds": str(args.visibility_timeout),
            "MaxReceiveCount": str(args.max_receive_count),
            "CentralLoggingBucketArn": core["CentralLoggingBucketArn"],
            "TenantConfigTableArn": core["TenantConfigTableArn"],
            "DeliveryProgressTableArn": core["DeliveryProgressTableArn"],
            "CentralLogDistributionRoleArn": core["CentralLogDistributionRoleArn"],
        },
    )
    return {"core": core, "sqs": sqs, "skipped": {**core_skipped, **sqs_skipped}}


def customer(args) -> dict:
    sts = client(args.endpoint, "sts")
    creds = sts.assume_role(
        RoleArn=f"arn:aws:iam::{args.account}:role/{CUSTOMER_ADMIN_ROLE}", RoleSessionName="logrelay-demo"
    )["Credentials"]
    credentials = {
        "aws_access_key_id": creds["AccessKeyId"],
        "aws_secret_access_key": creds["SecretAccessKey"],
        "aws_session_token": creds["SessionToken"],
    }
    acting = client(args.endpoint, "sts", credentials).get_caller_identity()["Account"]
    if acting != args.account:
        raise RuntimeError(f"expected to act in {args.account}, moto says {acting}")
    params = dict(p.split("=", 1) for p in args.param)
    cfn = client(args.endpoint, "cloudformation", credentials)
    outputs, skipped = deploy(
        cfn, args.stack_name, pathlib.Path(args.templates) / "customer-log-distribution-role.yaml", params
    )
    return {"outputs": outputs, "skipped": skipped}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("central", "customer"):
        p = sub.add_parser(name)
        p.add_argument("--endpoint", required=True)
        p.add_argument("--templates", required=True)
    c = sub.choices["central"]
    c.add_argument("--project", required=True)
    c.add_argument("--suffix", required=True)
    c.add_argument("--oidc-issuer", default="")
    c.add_argument("--visibility-timeout", type=int, default=1800)
    c.add_argument("--max-receive-count", type=int, default=5)
    u = sub.choices["customer"]
    u.add_argument("--account", required=True)
    u.add_argument("--stack-name", required=True)
    u.add_argument("--param", action="append", default=[])
    args = parser.parse_args()
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=REGION)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    try:
        result = central(args) if args.command == "central" else customer(args)
    except Exception as error:  # noqa: BLE001 - reported to the caller, which names the step
        log(f"error: {error}")
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
