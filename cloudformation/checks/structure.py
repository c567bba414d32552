#!/usr/bin/env python3
"""Structural assertions over the CloudFormation templates: what cfn-lint and checkov cannot know.

Each check reads the parsed templates (cfn-lint's loader understands !Ref, !GetAtt, !Sub …) and returns a list of
problems. `--self-test` proves that every check can fail: it applies, per check, one mutation that breaks exactly
the property the check guards, and fails if the check still passes.

Usage: .venv/bin/python cloudformation/checks/structure.py [--self-test] [TEMPLATE_DIR]
"""

import copy
import json
import pathlib
import re
import sys
from typing import Callable, Iterator, NamedTuple

from cfnlint.decode import decode

FILES = {
    "main": "main.yaml",
    "core": "core-infrastructure.yaml",
    "sqs": "sqs-stack.yaml",
    "lambda": "lambda-stack.yaml",
    "customer": "customer-log-distribution-role.yaml",
    "cluster": "cluster-s3-writer-role.yaml",
}
# AWS guidance for SQS event sources: queue visibility timeout >= 6 x the function timeout.
VISIBILITY_FACTOR = 6
# Receives before the DLQ: at least 5 so throttled or briefly failing messages are retried (AWS guidance).
MIN_MAX_RECEIVE_COUNT = 5
# SQS maximum retention, 14 days: time to fix a tenant's role and redrive.
DLQ_RETENTION_S = 1_209_600
NO_VALUE = {"Ref": "AWS::NoValue"}

Templates = dict


# ------------------------------------------------------------------------------------------------ helpers
def load(directory: pathlib.Path) -> Templates:
    """The known templates by short name, plus any other *.yaml of the directory (by file name), so the
    policy-wide checks also cover templates added later."""
    for extra in sorted(p.name for p in directory.glob("*.yaml")):
        if extra not in FILES.values():
            FILES[extra] = extra
    out = {}
    for name, file in FILES.items():
        parsed, matches = decode(str(directory / file))
        if parsed is None:
            raise SystemExit(f"{file}: cannot parse: {matches}")
        out[name] = to_plain(parsed)
    return out


def to_plain(node):
    """cfn-lint's nodes -> plain dicts/lists/strings (so deepcopy and == behave)."""
    if isinstance(node, dict):
        return {str(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


def resources(t: dict, kind: str) -> dict:
    return {k: v for k, v in t.get("Resources", {}).items() if v.get("Type") == kind}


def props(t: dict, logical: str) -> dict:
    return t["Resources"][logical].get("Properties", {})


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def branches(value) -> list:
    """Both branches of an Fn::If (recursively), without AWS::NoValue."""
    if isinstance(value, dict) and "Fn::If" in value:
        return [b for branch in value["Fn::If"][1:] for b in branches(branch)]
    return [] if value == NO_VALUE else [value]


def sub_text(value) -> str | None:
    """The template string of an Fn::Sub (short or long form)."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    return None


def document(value):
    """A policy document; an Fn::Sub JSON string is parsed with ${X} kept as <X>."""
    text = sub_text(value)
    if text is not None:
        return json.loads(re.sub(r"\$\{([^}]+)\}", r"<\1>", text))
    return value


def statements(doc) -> list:
    doc = document(doc)
    return [s for item in as_list(doc.get("Statement", [])) for s in branches(item)]


class Policy(NamedTuple):
    where: str
    kind: str  # trust | identity | resource | key
    doc: dict


def policies(ts: Templates) -> Iterator[Policy]:
    """Every policy document of every template."""
    resource_policies = {
        "AWS::S3::BucketPolicy": "PolicyDocument",
        "AWS::SQS::QueuePolicy": "PolicyDocument",
        "AWS::SNS::TopicPolicy": "PolicyDocument",
    }
    for name, t in ts.items():
        for logical, res in t.get("Resources", {}).items():
            kind, p = res.get("Type"), res.get("Properties", {})
            where = f"{FILES[name]}:{logical}"
            if kind == "AWS::IAM::Role":
                yield Policy(where, "trust", document(p["AssumeRolePolicyDocument"]))
                for pol in p.get("Policies", []):
                    yield Policy(f"{where}/{pol['PolicyName']}", "identity", document(pol["PolicyDocument"]))
            elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                yield Policy(where, "identity", document(p["PolicyDocument"]))
            elif kind in resource_policies:
                yield Policy(where, "resource", document(p[resource_policies[kind]]))
            elif kind == "AWS::KMS::Key":
                yield Policy(where, "key", document(p["KeyPolicy"]))


def allows(doc) -> list:
    return [s for s in statements(doc) if s.get("Effect") == "Allow"]


def actions(statement) -> set:
    return set(as_list(statement.get("Action", [])))


def only_resource(ts: Templates, template: str, kind: str) -> tuple[str, dict]:
    found = resources(ts[template], kind)
    if len(found) != 1:
        raise AssertionError(f"{FILES[template]}: expected one {kind}, found {sorted(found)}")
    return next(iter(found.items()))


def param_bounds(t: dict, value) -> tuple[float | None, float | None]:
    """(default, minimum) of a literal or of a Ref to a Number parameter."""
    if isinstance(value, dict) and "Ref" in value:
        p = t["Parameters"][value["Ref"]]
        default = p.get("Default")
        low = p.get("MinValue")
        if low is None and "AllowedValues" in p:
            low = min(float(v) for v in p["AllowedValues"])
        return (None if default is None else float(default), None if low is None else float(low))
    return float(value), float(value)


# ------------------------------------------------------------------------------------------------ checks
def bucket_notifies_topic_for_gz(ts: Templates) -> list[str]:
    topic, _ = only_resource(ts, "core", "AWS::SNS::Topic")
    _, bucket = only_resource(ts, "core", "AWS::S3::Bucket")
    found = []
    for cfg in bucket["Properties"].get("NotificationConfiguration", {}).get("TopicConfigurations", []):
        rules = cfg.get("Filter", {}).get("S3Key", {}).get("Rules", [])
        gz = {"Name": "suffix", "Value": ".gz"} in rules or {"Name": "Suffix", "Value": ".gz"} in rules
        if cfg.get("Event", "").startswith("s3:ObjectCreated:") and gz and cfg.get("Topic") == {"Ref": topic}:
            found.append(cfg)
    return [] if found else [f"bucket has no s3:ObjectCreated:* notification with suffix .gz to {topic}"]


def topic_policy_admits_only_this_bucket(ts: Templates) -> list[str]:
    topic, _ = only_resource(ts, "core", "AWS::SNS::Topic")
    bucket_logical, bucket = only_resource(ts, "core", "AWS::S3::Bucket")
    policy_logical, policy = only_resource(ts, "core", "AWS::SNS::TopicPolicy")
    problems = []
    if policy["Properties"]["Topics"] != [{"Ref": topic}]:
        problems.append(f"{policy_logical} does not apply to exactly {topic}")
    if policy_logical not in as_list(bucket.get("DependsOn", [])):
        problems.append(f"{bucket_logical} must DependsOn {policy_logical} (S3 validates the destination)")
    bucket_name = sub_text(bucket["Properties"].get("BucketName"))
    want_arn = f"arn:${{AWS::Partition}}:s3:::{bucket_name}"
    stmts = allows(policy["Properties"]["PolicyDocument"])
    if not stmts:
        problems.append("topic policy allows nothing")
    for s in stmts:
        cond = s.get("Condition", {})
        source_arn = (cond.get("ArnEquals") or cond.get("ArnLike") or {}).get("aws:SourceArn")
        if s.get("Principal") != {"Service": "s3.amazonaws.com"} or actions(s) != {"sns:Publish"}:
            problems.append(f"topic policy statement {s.get('Sid')} admits more than S3 publishing")
        if sub_text(source_arn) != want_arn:
            problems.append(f"topic policy aws:SourceArn {source_arn} is not this bucket ({want_arn})")
        if cond.get("StringEquals", {}).get("aws:SourceAccount") != {"Ref": "AWS::AccountId"}:
            problems.append("topic policy lacks aws:SourceAccount = this account")
    return problems


def queue_subscribed_and_only_topic_sends(ts: Templates) -> list[str]:
    sqs = ts["sqs"]
    queue = main_queue(sqs)
    topic = {"Ref": "LogDeliveryTopicArn"}
    problems = []
    subs = [
        s
        for s in resources(sqs, "AWS::SNS::Subscription").values()
        if s["Properties"].get("Protocol") == "sqs"
        and s["Properties"].get("Endpoint") == {"Fn::GetAtt": [queue, "Arn"]}
        and s["Properties"].get("TopicArn") == topic
    ]
    if not subs:
        problems.append(f"{queue} is not subscribed (protocol sqs) to LogDeliveryTopicArn")
    policies_ = [
        (k, v) for k, v in resources(sqs, "AWS::SQS::QueuePolicy").items() if {"Ref": queue} in v["Properties"]["Queues"]
    ]
    if not policies_:
        problems.append(f"no queue policy on {queue}")
    for logical, pol in policies_:
        stmts = allows(pol["Properties"]["PolicyDocument"])
        if not stmts:
            problems.append(f"{logical} allows nothing")
        for s in stmts:
            source = s.get("Condition", {}).get("ArnEquals", {}).get("aws:SourceArn")
            if s.get("Principal") != {"Service": "sns.amazonaws.com"} or actions(s) != {"sqs:SendMessage"}:
                problems.append(f"{logical} statement {s.get('Sid')} admits more than SNS SendMessage")
            if source != topic:
                problems.append(f"{logical} statement {s.get('Sid')} does not require aws:SourceArn = the topic")
    return problems


def main_queue(sqs: dict) -> str:
    queues = [k for k, v in resources(sqs, "AWS::SQS::Queue").items() if "RedrivePolicy" in v["Properties"]]
    if len(queues) != 1:
        raise AssertionError(f"sqs-stack.yaml: expected one queue with a RedrivePolicy, found {queues}")
    return queues[0]


def dlq_max_receive_count(ts: Templates) -> list[str]:
    sqs = ts["sqs"]
    queue = main_queue(sqs)
    redrive = props(sqs, queue)["RedrivePolicy"]
    problems = []
    default, low = param_bounds(sqs, redrive.get("maxReceiveCount"))
    if default is None or default < MIN_MAX_RECEIVE_COUNT or low is None or low < MIN_MAX_RECEIVE_COUNT:
        problems.append(f"maxReceiveCount default {default} / minimum {low} < {MIN_MAX_RECEIVE_COUNT}")
    main_default, main_low = param_bounds(ts["main"], {"Ref": "MaxReceiveCount"})
    if (main_low or 0) < MIN_MAX_RECEIVE_COUNT or (main_default or 0) < MIN_MAX_RECEIVE_COUNT:
        problems.append(f"main.yaml MaxReceiveCount default {main_default} / minimum {main_low} < 5")
    target = redrive.get("deadLetterTargetArn", {}).get("Fn::GetAtt", [None])[0]
    if target not in resources(sqs, "AWS::SQS::Queue"):
        problems.append("deadLetterTargetArn is not a queue of this stack")
    elif props(sqs, target).get("MessageRetentionPeriod") != DLQ_RETENTION_S:
        problems.append(f"DLQ {target} does not keep messages {DLQ_RETENTION_S} s (14 days)")
    return problems


def visibility_covers_function_timeout(ts: Templates) -> list[str]:
    sqs, lam, main = ts["sqs"], ts["lambda"], ts["main"]
    problems = []
    vis, _ = param_bounds(sqs, props(sqs, main_queue(sqs))["VisibilityTimeout"])
    _, fn = only_resource(ts, "lambda", "AWS::Lambda::Function")
    timeout, _ = param_bounds(lam, fn["Properties"]["Timeout"])
    if vis is None or timeout is None or vis < VISIBILITY_FACTOR * timeout:
        problems.append(f"default visibility {vis} s < {VISIBILITY_FACTOR} x default function timeout {timeout} s")
    mapping = main["Mappings"]["VisibilityForTimeout"]
    for t, row in mapping.items():
        if int(row["VisibilityTimeout"]) < VISIBILITY_FACTOR * int(t):
            problems.append(f"main.yaml VisibilityForTimeout[{t}] = {row['VisibilityTimeout']} < 6 x {t}")
    allowed = main["Parameters"]["ProcessorTimeoutSeconds"].get("AllowedValues", [])
    if not allowed or set(map(str, allowed)) - set(mapping):
        problems.append("main.yaml ProcessorTimeoutSeconds must be limited to the VisibilityForTimeout keys")
    sqs_params = props(main, "SQSStack")["Parameters"]
    lambda_params = props(main, "LambdaStack")["Parameters"]
    want = {"Fn::FindInMap": ["VisibilityForTimeout", {"Ref": "ProcessorTimeoutSeconds"}, "VisibilityTimeout"]}
    if sqs_params.get("VisibilityTimeoutSeconds") != want:
        problems.append("main.yaml SQSStack VisibilityTimeoutSeconds is not the mapped 6 x timeout")
    if lambda_params.get("TimeoutSeconds") != {"Ref": "ProcessorTimeoutSeconds"}:
        problems.append("main.yaml LambdaStack TimeoutSeconds is not ProcessorTimeoutSeconds")
    return problems


def event_source_reports_batch_item_failures(ts: Templates) -> list[str]:
    _, esm = only_resource(ts, "lambda", "AWS::Lambda::EventSourceMapping")
    p = esm["Properties"]
    problems = []
    if "ReportBatchItemFailures" not in p.get("FunctionResponseTypes", []):
        problems.append("event source mapping does not report batch item failures")
    default, _ = param_bounds(ts["lambda"], p.get("BatchSize", 10))
    if default != 10:
        problems.append(f"event source mapping batch size default {default}, want 10")
    return problems


def customer_trust_requires_external_id(ts: Templates) -> list[str]:
    _, role = only_resource(ts, "customer", "AWS::IAM::Role")
    stmts = allows(role["Properties"]["AssumeRolePolicyDocument"])
    problems = [] if stmts else ["customer role trusts nobody"]
    for s in stmts:
        eq = s.get("Condition", {}).get("StringEquals", {})
        if s.get("Principal") != {"AWS": {"Ref": "CentralLogDistributionRoleArn"}}:
            problems.append(f"customer trust principal {s.get('Principal')} is not only the central role")
        if eq.get("sts:ExternalId") != {"Ref": "ExternalId"}:
            problems.append("customer trust does not require sts:ExternalId = the ExternalId parameter")
        if eq.get("aws:RequestTag/tenant_id") != {"Ref": "TenantId"}:
            problems.append("customer trust does not require the session tag tenant_id = TenantId")
        if "sts:AssumeRole" not in actions(s):
            problems.append("customer trust statement does not cover sts:AssumeRole")
    return problems


def customer_retention_changes_are_opt_out(ts: Templates) -> list[str]:
    """logs:PutRetentionPolicy only in a role policy that exists when AllowRetentionChanges is true."""
    _, role = only_resource(ts, "customer", "AWS::IAM::Role")
    problems = []
    for pol in role["Properties"].get("Policies", []):
        for st in pol["PolicyDocument"]["Statement"]:
            if "logs:PutRetentionPolicy" in actions(st):
                problems.append(f"customer role policy {pol['PolicyName']}: PutRetentionPolicy without the switch")
    extra = resources(ts["customer"], "AWS::IAM::RolePolicy")
    for logical, body in extra.items():
        granted = set().union(*(actions(st) for st in body["Properties"]["PolicyDocument"]["Statement"]))
        if body.get("Condition") != "ShouldAllowRetentionChanges" or granted != {"logs:PutRetentionPolicy"}:
            problems.append(f"customer {logical}: not just PutRetentionPolicy behind ShouldAllowRetentionChanges")
    if ts["customer"]["Conditions"].get("ShouldAllowRetentionChanges") != {
        "Fn::Equals": [{"Ref": "AllowRetentionChanges"}, "true"]
    }:
        problems.append("customer template: ShouldAllowRetentionChanges is not AllowRetentionChanges == true")
    return problems


def no_star_resource(ts: Templates) -> list[str]:
    problems = []
    for pol in policies(ts):
        if pol.kind in ("trust", "key"):  # trust policies have no Resource; in a key policy "*" is the key itself
            continue
        for s in allows(pol.doc):
            if "NotResource" in s or "NotAction" in s:
                problems.append(f"{pol.where}: Allow with NotResource/NotAction")
            if "*" in as_list(s.get("Resource", [])):
                problems.append(f"{pol.where}: Allow {sorted(actions(s))} on Resource '*'")
    return problems


def no_wildcard_principals(ts: Templates) -> list[str]:
    problems = []
    for pol in policies(ts):
        for s in allows(pol.doc):
            principal = s.get("Principal")
            values = [principal] if isinstance(principal, str) else [
                v for vs in (principal or {}).values() for v in as_list(vs)
            ]
            if "*" in values or "NotPrincipal" in s:
                problems.append(f"{pol.where}: Allow statement {s.get('Sid')} with a wildcard principal")
    return problems


WRITER_ACTIONS = {"s3:PutObject", "s3:AbortMultipartUpload", "kms:GenerateDataKey", "kms:Decrypt"}


def writer_roles_only_put_objects(ts: Templates) -> list[str]:
    problems = []
    for name in ("core", "cluster"):
        for logical, role in resources(ts[name], "AWS::IAM::Role").items():
            if "s3-writer" not in str(role["Properties"].get("RoleName")):
                continue
            trust = document(role["Properties"]["AssumeRolePolicyDocument"])
            for s in allows(trust):
                eq = s.get("Condition", {}).get("StringEquals", {})
                if actions(s) != {"sts:AssumeRoleWithWebIdentity"} or not any(k.endswith(":sub") for k in eq):
                    problems.append(f"{FILES[name]}:{logical} trust is not web identity bound to a ServiceAccount")
            for pol in role["Properties"].get("Policies", []):
                for s in allows(pol["PolicyDocument"]):
                    extra = actions(s) - WRITER_ACTIONS
                    if extra:
                        problems.append(f"{FILES[name]}:{logical} allows more than writing: {sorted(extra)}")
                    if any(a.startswith("kms:") for a in actions(s)) and "kms:ViaService" not in str(s):
                        problems.append(f"{FILES[name]}:{logical} uses KMS outside S3")
                    if any(a.startswith("s3:") for a in actions(s)) and not str(sub_text(s.get("Resource"))).endswith("/*"):
                        problems.append(f"{FILES[name]}:{logical} S3 resource is not objects of the bucket")
    return problems


CENTRAL_ACTIONS = {
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:ListBucket",
    "kms:Decrypt",
    "sts:AssumeRole",
    "sts:TagSession",
}
# The processor roles the central role trusts: the names the Lambda and SQS stacks give them.
PROCESSOR_ROLE_NAMES = [
    "${ProjectName}-${Environment}-processor-lambda-${RandomSuffix}",
    "${ProjectName}-${Environment}-processor-sqs-${RandomSuffix}",
]
# Only for copying into tenants' buckets, and only with these conditions.
CENTRAL_COPY_ACTIONS = {"s3:PutObject", "s3:PutObjectAcl"}


def central_role_trusts_the_processor_roles(ts: Templates) -> list[str]:
    role = props(ts["core"], "CentralLogDistributionRole")
    problems = []
    for s in allows(role["AssumeRolePolicyDocument"]):
        trusted = s.get("Condition", {}).get("ArnEquals", {}).get("aws:PrincipalArn", [])
        names = sorted(str(sub_text(arn)).rsplit("/", 1)[-1] for arn in trusted)
        if names != PROCESSOR_ROLE_NAMES:
            problems.append(f"central role trusts {names or 'any principal'}, not exactly {PROCESSOR_ROLE_NAMES}")
    for stack, logical in (("lambda", "ProcessorExecutionRole"), ("sqs", "ProcessorPodRole")):
        name = sub_text(props(ts[stack], logical).get("RoleName"))
        if name not in PROCESSOR_ROLE_NAMES:
            problems.append(f"{stack} stack's {logical} is named {name}, which the central role does not trust")
    return problems


def central_role_least_privilege(ts: Templates) -> list[str]:
    role = props(ts["core"], "CentralLogDistributionRole")
    problems = []
    for pol in role.get("Policies", []):
        for s in allows(pol["PolicyDocument"]):
            acts = actions(s)
            if acts & {"sts:AssumeRole", "sts:TagSession"}:
                if not str(sub_text(s.get("Resource"))).endswith(":role/${CustomerRoleNamePrefix}*"):
                    problems.append(f"central role assumes roles outside the customer name pattern: {s.get('Resource')}")
            if acts <= CENTRAL_ACTIONS:
                continue
            cond = s.get("Condition", {})
            copy_ok = (
                acts <= CENTRAL_COPY_ACTIONS
                and cond.get("StringNotEquals", {}).get("s3:ResourceAccount") == {"Ref": "AWS::AccountId"}
                and cond.get("StringEquals", {}).get("s3:x-amz-acl") == "bucket-owner-full-control"
            )
            if not copy_ok:
                problems.append(f"central role allows {sorted(acts - CENTRAL_ACTIONS)} beyond its job")
    return problems


def bucket_is_locked_down(ts: Templates) -> list[str]:
    logical, bucket = only_resource(ts, "core", "AWS::S3::Bucket")
    p = bucket["Properties"]
    problems = []
    pab = p.get("PublicAccessBlockConfiguration", {})
    for key in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
        if pab.get(key) is not True:
            problems.append(f"{logical}: {key} is not true")
    sse = p.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [{}])[0]
    if "aws:kms" not in branches(sse.get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm")):
        problems.append(f"{logical}: no SSE-KMS")
    if True not in branches(sse.get("BucketKeyEnabled")):
        problems.append(f"{logical}: no bucket key with SSE-KMS")
    rules = p.get("LifecycleConfiguration", {}).get("Rules", [])
    if not any("ExpirationInDays" in r and r.get("Status") == "Enabled" for r in rules):
        problems.append(f"{logical}: no enabled lifecycle expiration")
    tls = False
    for pol in resources(ts["core"], "AWS::S3::BucketPolicy").values():
        if pol["Properties"]["Bucket"] != {"Ref": logical}:
            continue
        for s in statements(pol["Properties"]["PolicyDocument"]):
            bool_cond = s.get("Condition", {}).get("Bool", {})
            if s.get("Effect") == "Deny" and bool_cond.get("aws:SecureTransport") in ("false", False):
                tls = True
    if not tls:
        problems.append(f"{logical}: no policy denying requests without TLS")
    return problems


def tables_have_the_processor_schema(ts: Templates) -> list[str]:
    tables = resources(ts["core"], "AWS::DynamoDB::Table")
    want = {
        "TenantConfigTable": [{"AttributeName": "tenant_id", "KeyType": "HASH"}, {"AttributeName": "type", "KeyType": "RANGE"}],
        "DeliveryProgressTable": [{"AttributeName": "pk", "KeyType": "HASH"}],
    }
    problems = []
    for logical, keys in want.items():
        p = tables.get(logical, {}).get("Properties", {})
        if p.get("KeySchema") != keys:
            problems.append(f"{logical}: key schema {p.get('KeySchema')} != {keys}")
        if p.get("TimeToLiveSpecification") != {"AttributeName": "ttl", "Enabled": True}:
            problems.append(f"{logical}: TTL is not enabled on attribute ttl")
        if p.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is not True:
            problems.append(f"{logical}: no point-in-time recovery")
        if p.get("SSESpecification", {}).get("SSEType") != "KMS":
            problems.append(f"{logical}: not encrypted with the stack's KMS key")
    return problems


def outputs_are_exported_under_the_stack_name(ts: Templates) -> list[str]:
    """Every output of the main stack and of the cluster writer-role stack is exported as
    `${AWS::StackName}-<output name>` (the naming other stacks import, docs/deploy.md)."""
    problems = []
    for template in ("main", "cluster"):
        for name, output in ts[template].get("Outputs", {}).items():
            want = {"Fn::Sub": f"${{AWS::StackName}}-{name}"}
            got = output.get("Export", {}).get("Name")
            if got != want:
                problems.append(f"{template} output {name}: export name {got} != {want}")
    return problems


def _allows_action_on(doc, action: str, resource) -> bool:
    return any(action in actions(s) and resource in as_list(s.get("Resource")) for s in allows(doc))


def _role_policies(t: dict, logical: str) -> list:
    return [pol["PolicyDocument"] for pol in props(t, logical).get("Policies", [])]


def _dlq(sqs: dict) -> str:
    return props(sqs, main_queue(sqs))["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]


def _sqs_output_of(sqs: dict, value) -> str | None:
    """The name of the SQS stack output whose Value is `value`."""
    return next((name for name, out in sqs.get("Outputs", {}).items() if out.get("Value") == value), None)


def sqs_role_may_forward_to_the_dlq(ts: Templates) -> list[str]:
    """The SQS-mode processor role may sqs:SendMessage to the DLQ (the main queue's redrive target), which is the
    queue the LogDeliveryDLQUrl output gives the processor's DLQ_URL."""
    sqs = ts["sqs"]
    dlq = _dlq(sqs)
    if any(_allows_action_on(d, "sqs:SendMessage", {"Fn::GetAtt": [dlq, "Arn"]}) for d in _role_policies(sqs, "ProcessorPodRole")):
        return []
    return [f"sqs-stack.yaml:ProcessorPodRole may not sqs:SendMessage to {dlq} (DLQ_URL)"]


def lambda_role_may_forward_to_the_dlq(ts: Templates) -> list[str]:
    """The Lambda's execution role may sqs:SendMessage to the queue its DLQ_URL names, followed through main.yaml."""
    sqs, lam, main = ts["sqs"], ts["lambda"], ts["main"]
    dlq = _dlq(sqs)
    fn_logical, fn = only_resource(ts, "lambda", "AWS::Lambda::Function")
    url_ref = fn["Properties"].get("Environment", {}).get("Variables", {}).get("DLQ_URL")
    if url_ref is None:
        return []
    problems = []
    role = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    passed = props(main, "LambdaStack")["Parameters"]
    url_output = _sqs_output_of(sqs, {"Ref": dlq})
    if not (isinstance(url_ref, dict) and passed.get(url_ref.get("Ref")) == {"Fn::GetAtt": ["SQSStack", f"Outputs.{url_output}"]}):
        problems.append(f"lambda-stack.yaml:{fn_logical} DLQ_URL is not main.yaml's SQSStack output {url_output}")
    arn_output = _sqs_output_of(sqs, {"Fn::GetAtt": [dlq, "Arn"]})
    arn_params = [p for p, v in passed.items() if v == {"Fn::GetAtt": ["SQSStack", f"Outputs.{arn_output}"]}]
    if not any(
        _allows_action_on(d, "sqs:SendMessage", {"Ref": p}) for p in arn_params for d in _role_policies(lam, role)
    ):
        problems.append(f"lambda-stack.yaml:{role} may not sqs:SendMessage to the DLQ (SQS output {arn_output}) its DLQ_URL names")
    return problems


# The docs section that tells operators which role runs `replay`, and that role.
REPLAY_DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "processor.md"
REPLAY_ROLE = ("sqs", "ProcessorPodRole", "ProcessorPodRoleArn")


def replay_role_may_list_the_bucket(ts: Templates) -> list[str]:
    """`replay` lists the central bucket with the role docs/processor.md tells operators to use."""
    template, logical, output = REPLAY_ROLE
    problems = []
    replay_section = REPLAY_DOC.read_text().split("### Replay", 1)[-1].split("\n### ", 1)[0]
    if output not in replay_section:
        problems.append(f"docs/processor.md, Replay, does not name the role to run replay with ({output})")
    bucket = {"Ref": "CentralLoggingBucketArn"}
    if not any(_allows_action_on(d, "s3:ListBucket", bucket) for d in _role_policies(ts[template], logical)):
        problems.append(f"{FILES[template]}:{logical} (replay's role) may not s3:ListBucket on the central bucket")
    return problems


class Check(NamedTuple):
    run: Callable[[Templates], list[str]]
    # Breaks the guarded property in a copy of the templates (for --self-test).
    mutate: Callable[[Templates], None]


def _set(path: list, value) -> Callable[[Templates], None]:
    def apply(ts: Templates) -> None:
        node = ts
        for key in path[:-1]:
            node = node[key]
        if value is DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return apply


def _get(ts: Templates, path: list):
    node = ts
    for key in path:
        node = node[key]
    return node


def processor_policy_path(template: str, logical: str) -> list:
    """Path of a role's first inline policy document."""
    return [template, "Resources", logical, "Properties", "Policies", 0, "PolicyDocument"]


def _drop_statements(ts: Templates, template: str, logical: str, action: str) -> None:
    """Removes every statement granting `action` from a role's first inline policy."""
    path = processor_policy_path(template, logical) + ["Statement"]
    _set(path, [st for st in _get(ts, path) if action not in actions(st)])(ts)


DELETE = object()
CORE_BUCKET = ["core", "Resources", "CentralLoggingBucket", "Properties"]
TOPIC_STMT = ["core", "Resources", "LogDeliveryTopicPolicy", "Properties", "PolicyDocument", "Statement", 0]
QUEUE_STMT = ["sqs", "Resources", "LogDeliveryQueuePolicy", "Properties", "PolicyDocument", "Statement", 0]
CUSTOMER_TRUST = ["customer", "Resources", "CustomerLogDistributionRole", "Properties", "AssumeRolePolicyDocument"]
CENTRAL_POLICY = ["core", "Resources", "CentralLogDistributionRole", "Properties", "Policies", 0, "PolicyDocument"]
WRITER_POLICY = ["cluster", "Resources", "ClusterS3WriterRole", "Properties", "Policies", 0, "PolicyDocument"]

CHECKS = {
    "bucket notifies the topic for .gz creations": Check(
        bucket_notifies_topic_for_gz,
        _set(CORE_BUCKET + ["NotificationConfiguration", "TopicConfigurations", 0, "Filter", "S3Key", "Rules", 0, "Value"], ".json"),
    ),
    "topic policy admits only this bucket": Check(
        topic_policy_admits_only_this_bucket,
        _set(TOPIC_STMT + ["Condition", "StringEquals"], DELETE),
    ),
    "queue subscribed, queue policy admits only the topic": Check(
        queue_subscribed_and_only_topic_sends,
        _set(QUEUE_STMT + ["Condition"], DELETE),
    ),
    "DLQ after >= 5 receives, DLQ keeps 14 days": Check(
        dlq_max_receive_count,
        _set(["sqs", "Parameters", "MaxReceiveCount", "MinValue"], 1),
    ),
    "visibility timeout >= 6 x function timeout": Check(
        visibility_covers_function_timeout,
        _set(["main", "Mappings", "VisibilityForTimeout", "300", "VisibilityTimeout"], 1500),
    ),
    "event source mapping reports batch item failures": Check(
        event_source_reports_batch_item_failures,
        _set(["lambda", "Resources", "ProcessorEventSourceMapping", "Properties", "FunctionResponseTypes"], DELETE),
    ),
    "customer trust requires ExternalId and tenant session tag": Check(
        customer_trust_requires_external_id,
        _set(CUSTOMER_TRUST + ["Statement", 0, "Condition", "StringEquals", "sts:ExternalId"], DELETE),
    ),
    "customer role: retention changes only behind AllowRetentionChanges": Check(
        customer_retention_changes_are_opt_out,
        _set(["customer", "Resources", "RetentionOfCreatedGroups", "Condition"], DELETE),
    ),
    "no Allow on Resource '*'": Check(
        no_star_resource,
        _set(CENTRAL_POLICY + ["Statement", 2, "Resource"], "*"),
    ),
    "no wildcard principals": Check(
        no_wildcard_principals,
        _set(CUSTOMER_TRUST + ["Statement", 0, "Principal"], {"AWS": "*"}),
    ),
    "agent writer roles only put objects": Check(
        writer_roles_only_put_objects,
        _set(WRITER_POLICY + ["Statement", 0, "Action"], ["s3:PutObject", "s3:GetObject"]),
    ),
    "central role trusts exactly this deployment's processor roles": Check(
        central_role_trusts_the_processor_roles,
        _set(
            ["core", "Resources", "CentralLogDistributionRole", "Properties", "AssumeRolePolicyDocument", "Statement", 0,
             "Condition"],
            {"ArnLike": {"aws:PrincipalArn": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${ProjectName}-${Environment}-processor-*"}}},
        ),
    ),
    "central role: read, assume tenant roles, nothing else": Check(
        central_role_least_privilege,
        _set(CENTRAL_POLICY + ["Statement", 2, "Action"], ["dynamodb:GetItem", "dynamodb:PutItem"]),
    ),
    "bucket: public access blocked, SSE-KMS + bucket key, TLS only, expiry": Check(
        bucket_is_locked_down,
        _set(CORE_BUCKET + ["PublicAccessBlockConfiguration", "BlockPublicPolicy"], False),
    ),
    "SQS-mode processor role may send to the DLQ (DLQ_URL)": Check(
        sqs_role_may_forward_to_the_dlq,
        lambda ts: _drop_statements(ts, "sqs", "ProcessorPodRole", "sqs:SendMessage"),
    ),
    "Lambda processor role may send to the DLQ its DLQ_URL names": Check(
        lambda_role_may_forward_to_the_dlq,
        lambda ts: _drop_statements(ts, "lambda", "ProcessorExecutionRole", "sqs:SendMessage"),
    ),
    "replay's role may list the central bucket": Check(
        replay_role_may_list_the_bucket,
        lambda ts: _drop_statements(ts, "sqs", "ProcessorPodRole", "s3:ListBucket"),
    ),
    "outputs exported as <stack name>-<output>": Check(
        outputs_are_exported_under_the_stack_name,
        _set(["main", "Outputs", "CentralLoggingBucketName", "Export"], DELETE),
    ),
    "tables: keys, TTL ttl, PITR, KMS": Check(
        tables_have_the_processor_schema,
        _set(["core", "Resources", "TenantConfigTable", "Properties", "TimeToLiveSpecification", "AttributeName"], "expires"),
    ),
}


def run_all(ts: Templates, verbose: bool = True) -> dict[str, list[str]]:
    results = {}
    for name, check in CHECKS.items():
        try:
            problems = check.run(ts)
        except (AssertionError, KeyError, IndexError, TypeError, ValueError) as err:
            problems = [f"check could not read the templates: {type(err).__name__}: {err}"]
        results[name] = problems
        if verbose:
            print(f"  {'ok  ' if not problems else 'FAIL'} {name}")
            for p in problems:
                print(f"         {p}")
    return results


def self_test(ts: Templates) -> int:
    failures = 0
    for name, check in CHECKS.items():
        broken = copy.deepcopy(ts)
        check.mutate(broken)
        caught = run_all(broken, verbose=False)[name]
        print(f"  {'ok  ' if caught else 'FAIL'} {name}: {'fails' if caught else 'STILL PASSES'} on a broken copy")
        if caught:
            print(f"         ({caught[0]})")
        failures += not caught
    return failures


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    directory = pathlib.Path(args[0]) if args else pathlib.Path(__file__).resolve().parent.parent
    ts = load(directory)
    if "--self-test" in argv:
        print("structure checks, self-test (each check must fail on its broken copy):")
        return 1 if self_test(ts) else 0
    print(f"structure checks on {directory}:")
    failed = [name for name, problems in run_all(ts).items() if problems]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
