//! SQS mode end to end with the real core: objects of two tenants land in the central bucket →
//! S3 → SNS → SQS → the processor binary (sqs mode) → each tenant's CloudWatch Logs in its own
//! account. Also checks `/metrics`, `/healthz`, `/readyz` and a clean exit on SIGTERM.

mod intake_support;

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use chrono::Utc;
use intake_support::{
    ACCOUNT_A, ACCOUNT_B, Central, expected_lines, free_port, messages, processor_command,
};
use logrelay_common::key::Partition;
use logrelay_testkit::unique_name;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest wait for delivery to show up.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(60);

/// A plain HTTP/1.1 GET; the whole response, or an empty string when nothing listens yet.
async fn http_get(port: u16, path: &str) -> String {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_of_two_tenants_reach_only_their_own_accounts() {
    let central = Central::new().await;
    let (tenant_a, tenant_b) = (unique_name("acme"), unique_name("globex"));
    let (group_a, group_b) = (
        format!("/logrelay/{tenant_a}"),
        format!("/logrelay/{tenant_b}"),
    );
    central
        .add_cloudwatch_tenant(&tenant_a, ACCOUNT_A, &group_a)
        .await;
    central
        .add_cloudwatch_tenant(&tenant_b, ACCOUNT_B, &group_b)
        .await;

    let port = free_port();
    let mut env = central.processor_env(&central.moto_url);
    env.insert("SQS_QUEUE_URL", central.queue.url.clone());
    env.insert("LOGRELAY_LISTEN", format!("127.0.0.1:{port}"));
    let mut command = tokio::process::Command::from(processor_command(&env));
    command.arg("sqs").kill_on_drop(true);
    let mut child = command.spawn().expect("spawn processor");

    let now = Utc::now();
    central
        .put_object(
            &Partition::new(&tenant_a, "c1", "api", "api-1"),
            now,
            20,
            "a1",
        )
        .await;
    central
        .put_object(
            &Partition::new(&tenant_a, "c1", "my app", "pod+2"),
            now,
            7,
            "a2",
        )
        .await;
    central
        .put_object(
            &Partition::new(&tenant_b, "c9", "web", "web-1"),
            now,
            11,
            "b1",
        )
        .await;

    let mut want_a = [expected_lines("a1", 20), expected_lines("a2", 7)].concat();
    want_a.sort();
    let want_b = expected_lines("b1", 11);
    let delivered = tokio::time::timeout(DELIVERY_DEADLINE, async {
        loop {
            if messages(ACCOUNT_A, &group_a).await == want_a
                && messages(ACCOUNT_B, &group_b).await == want_b
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await;
    assert!(
        delivered.is_ok(),
        "delivery incomplete: A has {:?}, B has {:?}",
        messages(ACCOUNT_A, &group_a).await.len(),
        messages(ACCOUNT_B, &group_b).await.len()
    );
    assert!(
        messages(ACCOUNT_B, &group_a).await.is_empty(),
        "A's group is not in B's account"
    );
    assert!(
        messages(ACCOUNT_A, &group_b).await.is_empty(),
        "B's group is not in A's account"
    );

    let health = http_get(port, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let ready = http_get(port, "/readyz").await;
    assert!(
        ready.starts_with("HTTP/1.1 200"),
        "ready while polling: {ready}"
    );
    let metrics = http_get(port, "/metrics").await;
    assert!(
        metrics.contains("logrelay_processor_messages_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("tenant=\"{tenant_a}\"")),
        "per-tenant metrics: {metrics}"
    );

    // SIGTERM: stop receiving, drain, exit 0.
    let pid = child.id().expect("running");
    let killed = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(40), child.wait())
        .await
        .expect("exits within the grace period")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
    let remaining = aws_sdk_sqs::Client::new(&central.aws)
        .get_queue_attributes()
        .queue_url(&central.queue.url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .expect("attributes")
        .attributes
        .and_then(|attributes| {
            attributes
                .get(&QueueAttributeName::ApproximateNumberOfMessages)
                .cloned()
        });
    assert_eq!(remaining.as_deref(), Some("0"), "every message deleted");
}
