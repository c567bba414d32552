//! Shared setup of the intake end-to-end tests: the central account's resources in the emulator
//! (bucket → SNS → SQS with DLQ, tenant and progress tables), customer accounts with delivery
//! roles, objects of records, the processor binary as a child process, and reading back what
//! reached a customer's CloudWatch Logs.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use logrelay_common::key::{ObjectKey, Partition};
use logrelay_common::record::{LogRecord, Stream};
use logrelay_common::tenant::DeliveryConfig;
use logrelay_processor::tenant::DynamoItem;
use logrelay_testkit::{DEFAULT_ACCOUNT_ID, Moto, TestQueue, unique_name};

/// A customer account.
pub const ACCOUNT_A: &str = "111111111111";
/// Another customer account.
pub const ACCOUNT_B: &str = "222222222222";

/// The central account's resources of one test.
pub struct Central {
    pub moto_url: String,
    pub aws: SdkConfig,
    pub bucket: String,
    pub queue: TestQueue,
    pub tenant_table: String,
    pub progress_table: String,
}

impl Central {
    /// Creates the bucket (notifying SNS → the queue), the queue with its DLQ and both tables.
    pub async fn new() -> Self {
        let moto = Moto::shared().await;
        let aws = moto.config(DEFAULT_ACCOUNT_ID).await;
        let bucket = unique_name("central");
        let tenant_table = unique_name("tenants");
        let progress_table = unique_name("progress");
        logrelay_testkit::create_bucket(&aws, &bucket)
            .await
            .expect("bucket");
        logrelay_testkit::create_tenant_table(&aws, &tenant_table)
            .await
            .expect("tenant table");
        logrelay_testkit::create_progress_table(&aws, &progress_table)
            .await
            .expect("progress table");
        let topic = logrelay_testkit::create_topic(&aws, &unique_name("objects"))
            .await
            .expect("topic");
        let queue = logrelay_testkit::create_queue(&aws, &unique_name("objects"), 5)
            .await
            .expect("queue");
        logrelay_testkit::subscribe_queue_to_topic(&aws, &topic, &queue, false)
            .await
            .expect("subscribe");
        logrelay_testkit::notify_bucket_to_topic(&aws, &bucket, &topic)
            .await
            .expect("notify");
        Self {
            moto_url: moto.url().to_owned(),
            aws,
            bucket,
            queue,
            tenant_table,
            progress_table,
        }
    }

    /// Gives `tenant` a CloudWatch delivery into `group` of `account` (a role created there).
    pub async fn add_cloudwatch_tenant(&self, tenant: &str, account: &str, group: &str) {
        self.add_cloudwatch_tenant_with(tenant, account, group, None)
            .await;
    }

    /// Like [`Central::add_cloudwatch_tenant`], with a `log_stream_template` when given.
    pub async fn add_cloudwatch_tenant_with(
        &self,
        tenant: &str,
        account: &str,
        group: &str,
        stream_template: Option<&str>,
    ) {
        let moto = Moto::shared().await;
        let customer = moto.config(account).await;
        let external_id = format!("ext-{tenant}");
        let role = logrelay_testkit::create_role(
            &customer,
            &unique_name("delivery"),
            &logrelay_testkit::trust_policy("*", Some(&external_id)),
            Some(&logrelay_testkit::allow_policy(&["logs:*"])),
        )
        .await
        .expect("customer role");
        let config: DeliveryConfig = serde_json::from_value(serde_json::json!({
            "tenant_id": tenant,
            "type": "cloudwatch",
            "log_distribution_role_arn": role,
            "external_id": external_id,
            "log_group_name": group,
            "log_stream_template": stream_template,
            "target_region": "us-east-1",
        }))
        .expect("config");
        aws_sdk_dynamodb::Client::new(&self.aws)
            .put_item()
            .table_name(&self.tenant_table)
            .set_item(Some(config.to_item().expect("item")))
            .send()
            .await
            .expect("put config");
    }

    /// A new tenant (`acme-…`) with a CloudWatch delivery into `/logrelay/{tenant}` of `account`;
    /// returns the tenant and the group.
    pub async fn new_cloudwatch_tenant(&self, account: &str) -> (String, String) {
        let tenant = unique_name("acme");
        let group = format!("/logrelay/{tenant}");
        self.add_cloudwatch_tenant(&tenant, account, &group).await;
        (tenant, group)
    }

    /// Writes `count` records of `tenant` as one object of `partition` created at `created`;
    /// returns its key. Messages are `{tag} line {i}`.
    pub async fn put_object(
        &self,
        partition: &Partition,
        created: DateTime<Utc>,
        count: usize,
        tag: &str,
    ) -> String {
        let records = records(partition, count, tag);
        let body = logrelay_common::codec::encode_records(&records).expect("encode");
        let id = unique_name("obj").replace('-', "");
        let key = ObjectKey::new(partition.clone(), created, &id[..id.len().min(32)])
            .expect("key")
            .to_key();
        logrelay_testkit::put_object(&self.aws, &self.bucket, &key, body)
            .await
            .expect("put object");
        key
    }

    /// Every body now in the queue (received and deleted), the `s3:TestEvent` included.
    pub async fn take_bodies(&self) -> Vec<String> {
        logrelay_testkit::receive_all(&self.aws, &self.queue.url)
            .await
            .expect("receive")
    }

    /// The environment of a processor child acting as the central account against `endpoint`.
    pub fn processor_env(&self, endpoint: &str) -> HashMap<&'static str, String> {
        HashMap::from([
            ("AWS_ENDPOINT_URL", endpoint.to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_REGION", logrelay_testkit::TEST_REGION.to_owned()),
            ("TENANT_CONFIG_TABLE", self.tenant_table.clone()),
            ("DELIVERY_PROGRESS_TABLE", self.progress_table.clone()),
            ("DLQ_URL", self.queue.dlq_url.clone()),
            ("RETRY_ATTEMPTS", "2".to_owned()),
            ("LOGRELAY_LOG_FORMAT", "json".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ])
    }
}

/// Records of one object.
pub fn records(partition: &Partition, count: usize, tag: &str) -> Vec<LogRecord> {
    let start = Utc::now() - chrono::Duration::minutes(30);
    (0..count)
        .map(|i| LogRecord {
            timestamp: start + chrono::Duration::milliseconds(i64::try_from(i).unwrap_or(0)),
            message: format!("{tag} line {i}"),
            stream: Stream::Stdout,
            customer_id: partition.customer_id.clone(),
            cluster_id: partition.cluster_id.clone(),
            namespace: "ns".into(),
            application: partition.application.clone(),
            pod_name: partition.pod_name.clone(),
            container_name: "main".into(),
            node_name: "node-1".into(),
            ingest_timestamp: start,
            kubernetes: None,
            extra: Default::default(),
        })
        .collect()
}

/// Every message in `group` of `account`, sorted (empty when the group does not exist).
pub async fn messages(account: &str, group: &str) -> Vec<String> {
    let client = aws_sdk_cloudwatchlogs::Client::new(&Moto::shared().await.config(account).await);
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let Ok(page) = client
            .filter_log_events()
            .log_group_name(group)
            .set_next_token(token.clone())
            .send()
            .await
        else {
            break;
        };
        out.extend(
            page.events()
                .iter()
                .filter_map(|e| e.message().map(str::to_owned)),
        );
        match page.next_token() {
            Some(next) if Some(next) != token.as_deref() && !page.events().is_empty() => {
                token = Some(next.to_owned())
            }
            _ => break,
        }
    }
    out.sort();
    out
}

/// The sorted messages `{tag} line 0..count`.
pub fn expected_lines(tag: &str, count: usize) -> Vec<String> {
    let mut lines: Vec<String> = (0..count).map(|i| format!("{tag} line {i}")).collect();
    lines.sort();
    lines
}

/// Runs the processor with `env`, `args` and `stdin`; waits for it.
pub fn run_processor(env: &HashMap<&'static str, String>, args: &[&str], stdin: &str) -> Output {
    let mut command = processor_command(env);
    command.args(args).stdin(Stdio::piped());
    let mut child = command.spawn().expect("spawn processor");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// The processor binary with `env` and nothing inherited that could point it elsewhere.
pub fn processor_command(env: &HashMap<&'static str, String>) -> Command {
    let mut command = Command::new(Path::new(env!("CARGO_BIN_EXE_logrelay-processor")));
    command.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A free loopback port (bound and released; fine for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
