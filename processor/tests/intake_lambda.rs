//! Lambda mode end to end: the real processor binary runs the real `lambda_runtime` client against
//! the testkit's Runtime API emulator, with the AWS emulator behind a fault proxy. One batch holds a
//! deliverable object, an object whose reads fail with 5xx, a malformed body and the `s3:TestEvent`;
//! the response must name exactly the transiently failed message. An invocation whose deadline is
//! already within the processor's margin starts nothing and reports every message.

mod intake_support;

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use intake_support::{ACCOUNT_A, Central, expected_lines, messages, processor_command};
use logrelay_common::key::Partition;
use logrelay_processor::intake::dead_letter::{ATTR_REASON, ATTR_SOURCE_MESSAGE_ID};
use logrelay_testkit::lambda_runtime_api::{InvocationResult, LambdaRuntimeApi};
use logrelay_testkit::{FaultKind, FaultMatch, FaultPlan, FaultProxy};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Longest wait for one invocation (the transient object is retried with backoff first).
const INVOCATION_DEADLINE: Duration = Duration::from_secs(90);

fn sqs_record(message_id: &str, body: &str) -> Value {
    json!({
        "messageId": message_id,
        "receiptHandle": format!("receipt-{message_id}"),
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:objects",
        "awsRegion": "us-east-1",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_reports_exactly_the_transiently_failed_message() {
    let central = Central::new().await;
    let (tenant, group) = central.new_cloudwatch_tenant(ACCOUNT_A).await;
    let now = Utc::now();
    central
        .put_object(
            &Partition::new(&tenant, "c1", "api", "pod-ok"),
            now,
            5,
            "ok",
        )
        .await;
    central
        .put_object(
            &Partition::new(&tenant, "c1", "api", "pod-flaky"),
            now,
            5,
            "flaky",
        )
        .await;
    let bodies = central.take_bodies().await;
    let body_with = |needle: &str| -> String {
        bodies
            .iter()
            .find(|b| b.contains(needle))
            .cloned()
            .unwrap_or_else(|| panic!("no body with {needle}: {bodies:?}"))
    };
    let event = json!({"Records": [
        sqs_record("m-ok", &body_with("pod-ok")),
        sqs_record("m-flaky", &body_with("pod-flaky")),
        sqs_record("m-bad", "{not json"),
        sqs_record("m-test", &body_with("s3:TestEvent")),
    ]});

    // Every read of the flaky object's key answers 500; everything else passes through.
    let proxy = FaultProxy::start(&central.moto_url).await.expect("proxy");
    proxy.set_plan(FaultPlan {
        error_rate: 1.0,
        kinds: vec![FaultKind::Status5xx],
        only: Some(FaultMatch::Path("pod-flaky".into())),
    });
    let api = LambdaRuntimeApi::start().await.expect("runtime API");
    let mut env: HashMap<&'static str, String> = central.processor_env(&proxy.url());
    env.extend(api.runtime_env());
    env.insert("EXECUTION_MODE", "lambda".into());
    let mut child = tokio::process::Command::from(processor_command(&env))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout piped");
    let stdout_lines = tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        let mut all = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            all.push(line);
        }
        all
    });
    assert!(
        api.wait_for_runtime(Duration::from_secs(30)).await,
        "the runtime asks for work"
    );

    let result = tokio::time::timeout(INVOCATION_DEADLINE, api.invoke(event))
        .await
        .expect("invocation answered");
    let InvocationResult::Response(response) = result else {
        panic!("expected a batch response, got {result:?}");
    };
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": "m-flaky"}]})
    );
    assert!(proxy.faults_injected() > 0, "the flaky object was tried");

    assert_eq!(
        messages(ACCOUNT_A, &group).await,
        expected_lines("ok", 5),
        "the good object is delivered"
    );

    let dead = aws_sdk_sqs::Client::new(&central.aws)
        .receive_message()
        .queue_url(&central.queue.dlq_url)
        .message_attribute_names("All")
        .wait_time_seconds(1)
        .send()
        .await
        .expect("receive from DLQ")
        .messages
        .unwrap_or_default();
    assert_eq!(dead.len(), 1, "only the malformed body is dead-lettered");
    assert_eq!(dead[0].body.as_deref(), Some("{not json"));
    let attribute = |name: &str| {
        dead[0]
            .message_attributes
            .as_ref()
            .and_then(|a| a.get(name))
            .and_then(|v| v.string_value.clone())
    };
    assert_eq!(attribute(ATTR_REASON).as_deref(), Some("malformed_json"));
    assert_eq!(attribute(ATTR_SOURCE_MESSAGE_ID).as_deref(), Some("m-bad"));

    child.kill().await.expect("kill");
    let stdout = stdout_lines.await.expect("reader");
    let emf: Vec<Value> = stdout
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|value| value.get("_aws").is_some())
        .collect();
    assert!(
        emf.iter().any(|line| line["tenant"] == tenant.as_str()
            && line["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]
                .as_array()
                .is_some_and(|d| d.contains(&json!("tenant")))),
        "per-tenant EMF metrics on stdout: {stdout:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_near_its_deadline_starts_nothing_and_reports_every_message() {
    let central = Central::new().await;
    let (tenant, group) = central.new_cloudwatch_tenant(ACCOUNT_A).await;
    central
        .put_object(
            &Partition::new(&tenant, "c1", "api", "pod-late"),
            Utc::now(),
            5,
            "late",
        )
        .await;
    let bodies = central.take_bodies().await;
    let body = bodies
        .iter()
        .find(|b| b.contains("pod-late"))
        .cloned()
        .expect("the object's notification");
    let event = json!({"Records": [sqs_record("m-late", &body), sqs_record("m-also", &body)]});

    let api = LambdaRuntimeApi::start().await.expect("runtime API");
    let mut env: HashMap<&'static str, String> = central.processor_env(&central.moto_url);
    env.extend(api.runtime_env());
    env.insert("EXECUTION_MODE", "lambda".into());
    let mut child = tokio::process::Command::from(processor_command(&env))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    assert!(
        api.wait_for_runtime(Duration::from_secs(30)).await,
        "the runtime asks for work"
    );
    // 5 s left: less than the processor's margin.
    let result = tokio::time::timeout(
        INVOCATION_DEADLINE,
        api.invoke_with_timeout(event, Duration::from_secs(5)),
    )
    .await
    .expect("invocation answered");
    let InvocationResult::Response(response) = result else {
        panic!("expected a batch response, got {result:?}");
    };
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": "m-late"}, {"itemIdentifier": "m-also"}]})
    );
    assert!(
        messages(ACCOUNT_A, &group).await.is_empty(),
        "nothing was delivered"
    );
    child.kill().await.expect("kill");
}
