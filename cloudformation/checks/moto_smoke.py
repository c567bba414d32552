#!/usr/bin/env python3
"""Smoke deployment of the core and SQS stacks into the moto emulator.

Starts `moto_server` on a free loopback port, creates core-infrastructure.yaml, then sqs-stack.yaml with the core
stack's outputs, and checks that every Ref, GetAtt and Output resolved to a real emulated resource. moto is a smoke
test only: it skips AWS::SNS::Subscription, AWS::SQS::QueuePolicy and AWS::SNS::TopicPolicy and ignores the
bucket's NotificationConfiguration, LifecycleConfiguration and PublicAccessBlockConfiguration and the tables'
TimeToLiveSpecification, and also skips AWS::S3::BucketPolicy (see docs/deploy.md); structure.py checks those in the templates.

Usage: .venv/bin/python cloudformation/checks/moto_smoke.py   (exit code 0 = passed)
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.parse

import boto3
from botocore.config import Config

TEMPLATES = pathlib.Path(__file__).resolve().parent.parent
REGION = "us-east-1"
# A stack in moto completes synchronously; this bounds a hang, it is not a tuning knob.
STACK_TIMEOUT_S = 60
SUFFIX = "0a1b2c3d"
# Resource types moto's CloudFormation skips (it still reports CREATE_COMPLETE). A skip outside this list fails the
# smoke test, so a moto upgrade or a new resource type cannot silently stop being deployed.
MOTO_SKIPS = {
    "AWS::SNS::TopicPolicy",
    "AWS::S3::BucketPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::SNS::Subscription",
    # Deployed by this script through the CloudWatch API instead, from the template's own properties.
    "AWS::CloudWatch::Alarm",
}
ISSUER = "oidc.example.com/cluster-a"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(port: int) -> subprocess.Popen:
    server = pathlib.Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto_server did not start within 20 s")


def deploy(cfn, name: str, template: str, params: dict) -> dict:
    body = (TEMPLATES / template).read_text()
    cfn.create_stack(
        StackName=name,
        TemplateBody=body,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
    )
    deadline = time.monotonic() + STACK_TIMEOUT_S
    while True:
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        status = stack["StackStatus"]
        if status == "CREATE_COMPLETE":
            return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        if not status.endswith("IN_PROGRESS") or time.monotonic() > deadline:
            events = cfn.describe_stack_events(StackName=name)["StackEvents"]
            reasons = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}" for e in events]
            raise AssertionError(f"{name}: {status}\n  " + "\n  ".join(reasons))
        time.sleep(0.2)


def put_alarms(cloudwatch, template: str, params: dict, queue_names: dict) -> list[str]:
    """Creates the template's AWS::CloudWatch::Alarm resources through PutMetricAlarm (moto's CloudFormation skips
    them), resolving the intrinsics they use: Ref of a parameter, Fn::Sub of parameters, Fn::GetAtt Queue.QueueName,
    Fn::If on HasAlarmAction (false here: no action ARN). Returns the alarm names."""
    from cfnlint.decode import decode

    parsed, matches = decode(str(TEMPLATES / template))
    if parsed is None:
        raise AssertionError(f"{template}: {matches}")

    def resolve(value):
        if isinstance(value, list):
            return [v for v in (resolve(x) for x in value) if v is not None]
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            return None if value["Ref"] == "AWS::NoValue" else params[value["Ref"]]
        if "Fn::Sub" in value:
            text = value["Fn::Sub"]
            for key, param in params.items():
                text = text.replace("${" + key + "}", param)
            return text
        if "Fn::GetAtt" in value:
            logical, attribute = value["Fn::GetAtt"]
            assert attribute == "QueueName", attribute
            return queue_names[logical]
        if "Fn::If" in value:
            condition, when_true, when_false = value["Fn::If"]
            assert condition == "HasAlarmAction", condition
            return resolve(when_true if params.get("AlarmActionArn") else when_false)
        return {k: v for k, v in ((k, resolve(v)) for k, v in value.items()) if v is not None}

    names = []
    for body in parsed["Resources"].values():
        if body["Type"] != "AWS::CloudWatch::Alarm":
            continue
        props = resolve(body["Properties"])
        props["Threshold"] = float(props["Threshold"])
        cloudwatch.put_metric_alarm(**props)
        names.append(props["AlarmName"])
    return names


def resource_types(template: str) -> dict:
    """Logical id -> type of every resource declared in a template (all conditions true in the smoke deploy)."""
    from cfnlint.decode import decode

    parsed, matches = decode(str(TEMPLATES / template))
    if parsed is None:
        raise AssertionError(f"{template}: {matches}")
    return {logical: body["Type"] for logical, body in parsed["Resources"].items()}


class Failures:
    def __init__(self) -> None:
        self.items: list[str] = []

    def check(self, ok: bool, what: str) -> None:
        print(f"  {'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            self.items.append(what)


def main() -> int:
    port = free_port()
    started = time.monotonic()
    moto = start_moto(port)
    try:
        os.environ.update(
            AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=REGION
        )
        endpoint = f"http://127.0.0.1:{port}"
        cfg = Config(retries={"max_attempts": 2, "mode": "standard"})

        def client(name):
            return boto3.client(name, endpoint_url=endpoint, region_name=REGION, config=cfg)

        cfn = client("cloudformation")
        base = {"Environment": "development", "ProjectName": "logrelay-smoke", "RandomSuffix": SUFFIX}
        core = deploy(cfn, "logrelay-core", "core-infrastructure.yaml", {**base, "ClusterOidcIssuer": ISSUER})
        sqs_out = deploy(
            cfn,
            "logrelay-sqs",
            "sqs-stack.yaml",
            {
                **base,
                "LogDeliveryTopicArn": core["LogDeliveryTopicArn"],
                "KmsKeyArn": core["KmsKeyArn"],
                "ClusterOidcIssuer": ISSUER,
                "CentralLoggingBucketArn": core["CentralLoggingBucketArn"],
                "TenantConfigTableArn": core["TenantConfigTableArn"],
                "DeliveryProgressTableArn": core["DeliveryProgressTableArn"],
                "CentralLogDistributionRoleArn": core["CentralLogDistributionRoleArn"],
            },
        )

        f = Failures()
        for name, template in (("logrelay-core", "core-infrastructure.yaml"), ("logrelay-sqs", "sqs-stack.yaml")):
            created = {
                r["LogicalResourceId"]
                for r in cfn.describe_stack_resources(StackName=name)["StackResources"]
                if "LogicalResourceId" in r
            }
            declared = resource_types(template)
            skipped = {logical: kind for logical, kind in declared.items() if logical not in created}
            print(f"  {name}: moto skipped {sorted(skipped) or 'nothing'}")
            f.check(set(skipped.values()) <= MOTO_SKIPS, f"{name}: only known moto skips ({sorted(MOTO_SKIPS)})")
        bucket = core["CentralLoggingBucketName"]
        f.check(bucket == f"logrelay-smoke-development-central-{SUFFIX}", f"bucket name resolved: {bucket}")
        s3 = client("s3")
        f.check(bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]], "bucket exists")
        enc = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
        f.check(
            enc["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
            and enc["ApplyServerSideEncryptionByDefault"].get("KMSMasterKeyID") == core["KmsKeyArn"],
            "bucket SSE-KMS with the stack's key (GetAtt LogRelayKey.Arn)",
        )

        ddb = client("dynamodb")
        tenant = ddb.describe_table(TableName=core["TenantConfigTableName"])["Table"]
        keys = {k["AttributeName"]: k["KeyType"] for k in tenant["KeySchema"]}
        f.check(keys == {"tenant_id": "HASH", "type": "RANGE"}, f"tenant table keys {keys}")
        f.check(tenant["TableArn"] == core["TenantConfigTableArn"], "tenant table GetAtt Arn matches")
        progress = ddb.describe_table(TableName=core["DeliveryProgressTableName"])["Table"]
        f.check(
            [(k["AttributeName"], k["KeyType"]) for k in progress["KeySchema"]] == [("pk", "HASH")],
            "delivery-progress table HASH pk",
        )

        topics = [t["TopicArn"] for t in client("sns").list_topics()["Topics"]]
        f.check(core["LogDeliveryTopicArn"] in topics, "topic exists (Ref = ARN)")

        iam = client("iam")
        for output in ("S3WriterRoleArn", "CentralLogDistributionRoleArn"):
            name = core[output].split("/")[-1]
            f.check(iam.get_role(RoleName=name)["Role"]["Arn"] == core[output], f"{output} exists: {name}")
        trust = iam.get_role(RoleName=core["S3WriterRoleArn"].split("/")[-1])["Role"]["AssumeRolePolicyDocument"]
        if isinstance(trust, str):
            trust = json.loads(urllib.parse.unquote(trust))
        cond = trust["Statement"][0]["Condition"]["StringEquals"]
        f.check(
            cond.get(f"{ISSUER}:sub") == "system:serviceaccount:logrelay:logrelay-agent"
            and trust["Statement"][0]["Principal"]["Federated"].endswith(f":oidc-provider/{ISSUER}"),
            "S3WriterRole trust (Fn::Sub JSON) names the issuer and the agent ServiceAccount",
        )
        # (moto's DescribeKey fails with HTTP 500 on a key created by CloudFormation; ListKeys works.)
        keys = [k["KeyArn"] for k in client("kms").list_keys()["Keys"]]
        f.check(core["KmsKeyArn"] in keys, "KMS key exists (GetAtt Arn)")

        sqs = client("sqs")
        attrs = sqs.get_queue_attributes(QueueUrl=sqs_out["LogDeliveryQueueUrl"], AttributeNames=["All"])[
            "Attributes"
        ]
        f.check(attrs["QueueArn"] == sqs_out["LogDeliveryQueueArn"], "queue GetAtt Arn matches its URL")
        f.check(int(attrs["VisibilityTimeout"]) == 1800, f"visibility timeout {attrs['VisibilityTimeout']}")
        f.check(attrs.get("KmsMasterKeyId") == core["KmsKeyArn"], "queue encrypted with the core key")
        redrive = attrs.get("RedrivePolicy", "")
        f.check(
            sqs_out["LogDeliveryDLQArn"] in redrive and '"maxReceiveCount": 5' in redrive.replace('"5"', "5"),
            f"redrive to the DLQ after 5 receives: {redrive}",
        )
        dlq = sqs.get_queue_attributes(QueueUrl=sqs_out["LogDeliveryDLQUrl"], AttributeNames=["All"])["Attributes"]
        f.check(dlq["MessageRetentionPeriod"] == "1209600", "DLQ keeps messages 14 days")
        pod_role = sqs_out["ProcessorPodRoleArn"].split("/")[-1]
        f.check(
            iam.get_role(RoleName=pod_role)["Role"]["Arn"] == sqs_out["ProcessorPodRoleArn"],
            f"processor pod role exists: {pod_role}",
        )

        cloudwatch = client("cloudwatch")
        queue_names = {
            "LogDeliveryQueue": sqs_out["LogDeliveryQueueUrl"].rsplit("/", 1)[-1],
            "LogDeliveryDLQ": sqs_out["LogDeliveryDLQUrl"].rsplit("/", 1)[-1],
        }
        alarm_params = {**base, "OldestMessageAlarmSeconds": "900", "AlarmActionArn": ""}
        names = put_alarms(cloudwatch, "sqs-stack.yaml", alarm_params, queue_names)
        alarms = {a["AlarmName"]: a for a in cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]}
        f.check(len(alarms) == 2, f"both alarms accepted by CloudWatch PutMetricAlarm: {sorted(alarms)}")
        dlq_alarm = alarms.get("logrelay-smoke-development-log-delivery-dlq-not-empty", {})
        f.check(
            dlq_alarm.get("MetricName") == "ApproximateNumberOfMessagesVisible"
            and dlq_alarm.get("Dimensions") == [{"Name": "QueueName", "Value": sqs_out["LogDeliveryDLQUrl"].rsplit("/", 1)[-1]}]
            and dlq_alarm.get("Threshold") == 0,
            f"DLQ-not-empty alarm on the DLQ: {dlq_alarm.get('AlarmName')}",
        )
        age_alarm = alarms.get("logrelay-smoke-development-log-delivery-oldest-message-age", {})
        f.check(
            age_alarm.get("MetricName") == "ApproximateAgeOfOldestMessage"
            and age_alarm.get("Dimensions")
            == [{"Name": "QueueName", "Value": sqs_out["LogDeliveryQueueUrl"].rsplit("/", 1)[-1]}]
            and age_alarm.get("Threshold") == 900,
            f"oldest-message-age alarm on the delivery queue: {age_alarm.get('AlarmName')}",
        )

        print(f"moto smoke deploy: {len(f.items)} failure(s) in {time.monotonic() - started:.1f} s")
        return 1 if f.items else 0
    finally:
        moto.terminate()
        try:
            moto.wait(timeout=5)
        except subprocess.TimeoutExpired:
            moto.kill()


if __name__ == "__main__":
    sys.exit(main())
