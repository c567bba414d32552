//! End-to-end tests of the core against the AWS emulator: an object in the central bucket (account
//! 123456789012) → `Processor::handle` → CloudWatch Logs and S3 in customer accounts.

use super::*;
use crate::object::DeliveryReport;
use crate::retry::RetryPolicy;
use crate::telemetry::events::{
    ASSUME_ROLE_DENIED_TOTAL, OBJECTS_TOTAL, RECORDS_MISATTRIBUTED_TOTAL,
};
use crate::tenant::DynamoItem;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use logrelay_common::key::ObjectKey;
use logrelay_common::key::Partition;
use logrelay_common::record::{LogRecord, Stream};
use logrelay_common::tenant::DeliveryConfig;
use logrelay_testkit::{
    DEFAULT_ACCOUNT_ID, FaultKind, FaultMatch, FaultPlan, FaultProxy, Moto, allow_policy,
    create_bucket, create_progress_table, create_role, create_tenant_table,
    create_user_with_access_key, get_object_bytes, put_object, static_config, test_credentials,
    trust_policy, unique_name,
};
use std::collections::HashMap;
use std::time::Duration;

const ACCOUNT_A: &str = "111111111111";
const ACCOUNT_B: &str = "222222222222";

/// The central account's resources of one test.
struct Central {
    moto_url: String,
    aws: SdkConfig,
    bucket: String,
    tenant_table: String,
    progress_table: String,
}

impl Central {
    /// The central account of the emulator shared by the tests.
    async fn shared() -> Self {
        let moto = Moto::shared().await;
        Self::new(moto, moto.config(DEFAULT_ACCOUNT_ID).await).await
    }

    async fn new(moto: &Moto, aws: SdkConfig) -> Self {
        let bucket = unique_name("central");
        let tenant_table = unique_name("tenants");
        let progress_table = unique_name("progress");
        create_bucket(&aws, &bucket).await.expect("bucket");
        create_tenant_table(&aws, &tenant_table)
            .await
            .expect("tenant table");
        create_progress_table(&aws, &progress_table)
            .await
            .expect("progress table");
        Self {
            moto_url: moto.url().to_owned(),
            aws,
            bucket,
            tenant_table,
            progress_table,
        }
    }

    fn settings(&self) -> ProcessorSettings {
        let mut settings = ProcessorSettings::new(self.aws.clone(), &self.tenant_table);
        settings.delivery_progress_table = Some(self.progress_table.clone());
        settings.limits.retry = RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        };
        settings
    }

    async fn put_config(&self, config: serde_json::Value) {
        let config: DeliveryConfig = serde_json::from_value(config).expect("config json");
        self.put_item(config.to_item().expect("item")).await;
    }

    async fn put_item(&self, item: HashMap<String, AttributeValue>) {
        aws_sdk_dynamodb::Client::new(&self.aws)
            .put_item()
            .table_name(&self.tenant_table)
            .set_item(Some(item))
            .send()
            .await
            .expect("put config");
    }

    /// Writes `records` as an object of `partition`; returns its notification.
    async fn put_records(&self, partition: &Partition, records: &[LogRecord]) -> ObjectRef {
        let body = logrelay_common::codec::encode_records(records).expect("encode");
        self.put_raw(partition, body).await
    }

    async fn put_raw(&self, partition: &Partition, body: Vec<u8>) -> ObjectRef {
        let id = unique_name("obj").replace('-', "");
        let key =
            ObjectKey::new(partition.clone(), Utc::now(), &id[..id.len().min(32)]).expect("key");
        let key = key.to_key();
        put_object(&self.aws, &self.bucket, &key, body)
            .await
            .expect("put object");
        self.object(&key)
    }

    fn object(&self, key: &str) -> ObjectRef {
        ObjectRef {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            size: None,
            etag: None,
            version_id: None,
            sequencer: None,
            event_time: Some(Utc::now()),
            uploader: None,
        }
    }
}

/// A customer account with a delivery role the central account may assume.
async fn customer_role(moto: &Moto, account: &str, external_id: Option<&str>) -> String {
    let config = moto.config(account).await;
    create_role(
        &config,
        &unique_name("delivery"),
        &trust_policy("*", external_id),
        Some(&allow_policy(&["logs:*"])),
    )
    .await
    .expect("customer role")
}

/// A bucket in customer account A for S3 delivery.
async fn tenant_bucket(moto: &Moto) -> String {
    let bucket = unique_name("acme-logs");
    create_bucket(&moto.config(ACCOUNT_A).await, &bucket)
        .await
        .expect("tenant bucket");
    bucket
}

/// One tenant in the shared emulator's central account, the partition (pod `api-1` of application
/// `api` in cluster `c1`) its objects are written to, and the group `/logrelay/{tenant}` of account A
/// its CloudWatch config (if it gets one) delivers to.
struct TestTenant {
    moto: &'static Moto,
    central: Central,
    tenant: String,
    group: String,
    partition: Partition,
}

impl TestTenant {
    /// A tenant without configs yet.
    async fn new() -> Self {
        let tenant = unique_name("acme");
        Self {
            moto: Moto::shared().await,
            central: Central::shared().await,
            group: format!("/logrelay/{tenant}"),
            partition: Partition::new(&tenant, "c1", "api", "api-1"),
            tenant,
        }
    }

    /// A tenant with a CloudWatch config as `cloudwatch_config` makes it, changed by `adjust`.
    async fn with_cloudwatch(adjust: impl FnOnce(&mut serde_json::Value)) -> Self {
        let tenant = Self::new().await;
        let role = customer_role(tenant.moto, ACCOUNT_A, None).await;
        let mut config = cloudwatch_config(&tenant.tenant, &role, "x1", &tenant.group);
        adjust(&mut config);
        tenant.central.put_config(config).await;
        tenant
    }

    /// Gives the tenant an S3 config copying into a new bucket of account A (below `prefix` when
    /// given); returns the bucket.
    async fn add_s3(&self, prefix: Option<&str>) -> String {
        let bucket = tenant_bucket(self.moto).await;
        let mut config = serde_json::json!({
            "tenant_id": self.tenant, "type": "s3", "bucket_name": bucket,
            "bucket_owner_account_id": ACCOUNT_A,
        });
        if let Some(prefix) = prefix {
            config["bucket_prefix"] = serde_json::json!(prefix);
        }
        self.central.put_config(config).await;
        bucket
    }

    /// A processor with the central account's test settings.
    fn processor(&self) -> Processor {
        self.processor_with(|_| {})
    }

    /// A processor with the test settings changed by `adjust`.
    fn processor_with(&self, adjust: impl FnOnce(&mut ProcessorSettings)) -> Processor {
        let mut settings = self.central.settings();
        adjust(&mut settings);
        Processor::new(settings).expect("processor")
    }

    /// `count` records of the tenant (`{tag} line {i}`).
    fn records(&self, count: usize, tag: &str) -> Vec<LogRecord> {
        records(&self.tenant, &self.partition, count, tag)
    }

    /// Writes `count` records as an object of the tenant's partition.
    async fn put(&self, count: usize, tag: &str) -> ObjectRef {
        self.central
            .put_records(&self.partition, &self.records(count, tag))
            .await
    }

    /// Every message in the tenant's group.
    async fn delivered(&self) -> Vec<String> {
        messages(self.moto, ACCOUNT_A, &self.group).await
    }
}

fn cloudwatch_config(
    tenant: &str,
    role: &str,
    external_id: &str,
    group: &str,
) -> serde_json::Value {
    serde_json::json!({
        "tenant_id": tenant,
        "type": "cloudwatch",
        "log_distribution_role_arn": role,
        "external_id": external_id,
        "log_group_name": group,
        "target_region": "us-east-1",
    })
}

fn records(tenant: &str, partition: &Partition, count: usize, tag: &str) -> Vec<LogRecord> {
    let start = Utc::now() - chrono::Duration::minutes(30);
    (0..count)
        .map(|i| LogRecord {
            timestamp: start + chrono::Duration::milliseconds(i as i64),
            message: format!("{tag} line {i}"),
            stream: Stream::Stdout,
            customer_id: tenant.to_owned(),
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

/// Every message in a log group of `account` (empty when the group does not exist).
async fn messages(moto: &Moto, account: &str, group: &str) -> Vec<String> {
    let client = aws_sdk_cloudwatchlogs::Client::new(&moto.config(account).await);
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = match client
            .filter_log_events()
            .log_group_name(group)
            .set_next_token(token.clone())
            .send()
            .await
        {
            Ok(page) => page,
            Err(_) => return out,
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
            _ => return out,
        }
    }
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

fn expect_delivered(outcome: Outcome) -> DeliveryReport {
    match outcome {
        Outcome::Delivered(report) => report,
        other => panic!("expected delivered, got {other:?}"),
    }
}

#[tokio::test]
async fn two_tenants_each_receive_only_their_own_events_in_their_own_accounts() {
    let moto = Moto::shared().await;
    let central = Central::shared().await;
    let central_role = create_role(
        &central.aws,
        &unique_name("central"),
        &trust_policy("*", None),
        None,
    )
    .await
    .expect("central role");
    let (tenant_a, tenant_b) = (unique_name("acme"), unique_name("globex"));
    let (group_a, group_b) = (
        format!("/logrelay/{tenant_a}"),
        format!("/logrelay/{tenant_b}"),
    );
    let role_a = customer_role(moto, ACCOUNT_A, Some("ext-a")).await;
    let role_b = customer_role(moto, ACCOUNT_B, Some("ext-b")).await;
    central
        .put_config(cloudwatch_config(&tenant_a, &role_a, "ext-a", &group_a))
        .await;
    central
        .put_config(cloudwatch_config(&tenant_b, &role_b, "ext-b", &group_b))
        .await;
    let mut settings = central.settings();
    settings.central_role_arn = Some(central_role);
    let processor = Processor::new(settings).expect("processor");

    let part_a = Partition::new(&tenant_a, "c1", "api", "api-1");
    let part_b = Partition::new(&tenant_b, "c9", "db", "db-0");
    let object_a = central
        .put_records(&part_a, &records(&tenant_a, &part_a, 25, "a"))
        .await;
    let object_b = central
        .put_records(&part_b, &records(&tenant_b, &part_b, 40, "b"))
        .await;
    let report_a = expect_delivered(processor.handle(&object_a).await);
    let report_b = expect_delivered(processor.handle(&object_b).await);
    assert_eq!((report_a.records_read, report_a.events_delivered), (25, 25));
    assert_eq!((report_b.records_read, report_b.events_delivered), (40, 40));

    let in_a = messages(moto, ACCOUNT_A, &group_a).await;
    let in_b = messages(moto, ACCOUNT_B, &group_b).await;
    assert_eq!(in_a.len(), 25);
    assert!(in_a.iter().all(|m| m.starts_with("a line ")), "{in_a:?}");
    assert_eq!(in_b.len(), 40);
    assert!(in_b.iter().all(|m| m.starts_with("b line ")));
    assert!(
        messages(moto, ACCOUNT_B, &group_a).await.is_empty(),
        "A's group is not in B's account"
    );
    assert!(
        messages(moto, ACCOUNT_A, &group_b).await.is_empty(),
        "B's group is not in A's account"
    );
    assert!(
        messages(moto, DEFAULT_ACCOUNT_ID, &group_a)
            .await
            .is_empty(),
        "nothing in the central account"
    );
}

#[tokio::test]
async fn s3_delivery_copies_the_object_into_the_tenant_bucket_with_traceable_metadata() {
    let acme = TestTenant::new().await;
    let tenant_bucket = acme.add_s3(Some("logs/")).await;
    let (moto, central, tenant) = (acme.moto, &acme.central, &acme.tenant);
    let processor = acme.processor();
    let object = acme.put(5, "s3").await;

    let report = expect_delivered(processor.handle(&object).await);
    assert_eq!(report.s3_copies, 1);
    let copied_key = format!("logs/{}", object.key);
    let copied = get_object_bytes(&moto.config(ACCOUNT_A).await, &tenant_bucket, &copied_key)
        .await
        .expect("copy exists in the tenant bucket");
    let original = get_object_bytes(&central.aws, &central.bucket, &object.key)
        .await
        .expect("original");
    assert_eq!(copied, original);
    let head = logrelay_common::aws::s3_client(&moto.config(ACCOUNT_A).await)
        .head_object()
        .bucket(&tenant_bucket)
        .key(&copied_key)
        .send()
        .await
        .expect("head");
    let metadata = head.metadata().cloned().unwrap_or_default();
    assert_eq!(
        metadata.get("logrelay-source-bucket"),
        Some(&central.bucket)
    );
    assert_eq!(metadata.get("logrelay-tenant-id"), Some(tenant));
}

#[tokio::test]
async fn records_claiming_another_tenant_are_counted_and_never_delivered() {
    let acme = TestTenant::with_cloudwatch(|_| {}).await;
    let processor = acme.processor();
    let mut lines = acme.records(6, "mine");
    for record in lines.iter_mut().skip(3) {
        record.customer_id = "globex".into();
        record.message = format!("stolen {}", record.message);
    }
    let object = acme.central.put_records(&acme.partition, &lines).await;

    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let report = {
        let _guard = metrics::set_default_local_recorder(&recorder);
        expect_delivered(processor.handle(&object).await)
    };
    assert_eq!(
        (
            report.records_read,
            report.records_misattributed,
            report.events_delivered
        ),
        (6, 3, 3)
    );
    let delivered = acme.delivered().await;
    assert_eq!(delivered.len(), 3);
    assert!(
        delivered.iter().all(|m| !m.starts_with("stolen")),
        "{delivered:?}"
    );
    let rendered = handle.render();
    assert!(
        rendered.contains(&format!(
            "{RECORDS_MISATTRIBUTED_TOTAL}{{tenant=\"{}\"}} 3",
            acme.tenant
        )),
        "{rendered}"
    );
}

#[tokio::test]
async fn a_notification_naming_another_bucket_is_refused_permanently_and_counted() {
    let acme = TestTenant::with_cloudwatch(|_| {}).await;
    let real = acme.put(2, "central").await;
    // The same key, with other lines, in another bucket the processor's identity may read.
    let foreign_bucket = unique_name("foreign");
    create_bucket(&acme.central.aws, &foreign_bucket)
        .await
        .expect("bucket");
    let body = logrelay_common::codec::encode_records(&acme.records(3, "foreign")).expect("encode");
    put_object(&acme.central.aws, &foreign_bucket, &real.key, body)
        .await
        .expect("put");
    let foreign = ObjectRef {
        bucket: foreign_bucket.clone(),
        ..real.clone()
    };
    let central = acme.central.bucket.clone();
    let processor = acme.processor_with(|settings| settings.central_bucket = Some(central));

    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let outcome = {
        let _guard = metrics::set_default_local_recorder(&recorder);
        processor.handle(&foreign).await
    };
    let Outcome::Failed { kind, error } = outcome else {
        panic!("refused: {outcome:?}");
    };
    assert_eq!(kind, FailureKind::Permanent, "dead-lettered, not retried");
    assert_eq!(error.reason(), "foreign_bucket");
    assert!(error.to_string().contains(&foreign_bucket), "{error}");
    let rendered = handle.render();
    assert!(
        rendered.lines().any(|line| line.starts_with(OBJECTS_TOTAL)
            && line.contains("reason=\"foreign_bucket\"")
            && line.contains("outcome=\"failed_permanent\"")),
        "{rendered}"
    );
    assert!(
        acme.delivered().await.is_empty(),
        "nothing of the foreign object delivered"
    );

    expect_delivered(processor.handle(&real).await);
    let delivered = acme.delivered().await;
    assert_eq!(
        delivered.len(),
        2,
        "the central bucket's object is delivered: {delivered:?}"
    );
    assert!(
        delivered.iter().all(|line| line.starts_with("central")),
        "{delivered:?}"
    );
}

#[tokio::test]
async fn an_s3_copy_whose_bucket_owner_cannot_be_named_is_refused() {
    let acme = TestTenant::new().await;
    let bucket = tenant_bucket(acme.moto).await;
    acme.central
        .put_config(
            serde_json::json!({"tenant_id": acme.tenant, "type": "s3", "bucket_name": bucket}),
        )
        .await;
    let object = acme.put(2, "x").await;
    let Outcome::Failed { kind, error } = acme.processor().handle(&object).await else {
        panic!("refused");
    };
    assert_eq!(kind, FailureKind::Permanent);
    assert_eq!(error.reason(), "bucket_owner_unknown");
    let copies = logrelay_common::aws::s3_client(&acme.moto.config(ACCOUNT_A).await)
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .expect("list")
        .key_count()
        .unwrap_or_default();
    assert_eq!(copies, 0, "nothing copied");
}

#[tokio::test]
async fn an_object_with_another_tenants_records_is_not_copied_to_s3() {
    let acme = TestTenant::new().await;
    acme.add_s3(None).await;
    let processor = acme.processor();
    let mut lines = acme.records(2, "x");
    lines[1].customer_id = "globex".into();
    let object = acme.central.put_records(&acme.partition, &lines).await;
    match processor.handle(&object).await {
        Outcome::Failed {
            kind: FailureKind::Permanent,
            error,
        } => {
            assert_eq!(error.reason(), "misattributed_records");
        }
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_duplicate_notification_of_a_delivered_object_is_skipped() {
    let acme = TestTenant::with_cloudwatch(|_| {}).await;
    let processor = acme.processor();
    let object = acme.put(10, "d").await;

    expect_delivered(processor.handle(&object).await);
    let again = processor.handle(&object).await;
    assert!(
        matches!(again, Outcome::Skipped(SkipReason::AlreadyDelivered)),
        "{again:?}"
    );
    // A fresh processor (another Lambda instance) sees the same progress.
    let other = acme.processor();
    assert!(matches!(
        other.handle(&object).await,
        Outcome::Skipped(SkipReason::AlreadyDelivered)
    ));
    assert_eq!(acme.delivered().await.len(), 10);
}

#[tokio::test]
async fn a_forced_redelivery_resends_a_delivered_object_but_not_one_in_progress_elsewhere() {
    let acme = TestTenant::with_cloudwatch(|_| {}).await;
    let object = acme.put(4, "f").await;
    expect_delivered(acme.processor().handle(&object).await);
    let forced = acme.processor_with(|settings| settings.force_redelivery = true);

    let report = expect_delivered(forced.handle(&object).await);
    assert_eq!(report.events_delivered, 4, "all of it again");
    let mut twice = [acme.records(4, "f"), acme.records(4, "f")]
        .concat()
        .into_iter()
        .map(|record| record.message)
        .collect::<Vec<_>>();
    twice.sort();
    assert_eq!(
        sorted(acme.delivered().await),
        twice,
        "duplicated, as asked"
    );
    assert!(
        matches!(
            acme.processor().handle(&object).await,
            Outcome::Skipped(SkipReason::AlreadyDelivered)
        ),
        "the forced attempt completed the progress again"
    );

    // Another attempt holding the object's lease stops even a forced one.
    let etag = logrelay_common::aws::s3_client(&acme.central.aws)
        .head_object()
        .bucket(&object.bucket)
        .key(&object.key)
        .send()
        .await
        .expect("head")
        .e_tag()
        .map(|etag| etag.trim_matches('"').to_owned())
        .expect("etag");
    let store = ProgressStore::new(
        aws_sdk_dynamodb::Client::new(&acme.central.aws),
        ProgressSettings {
            table: Some(acme.central.progress_table.clone()),
            ..ProgressSettings::default()
        },
        RetryPolicy::default(),
    );
    let key = crate::progress::ProgressKey {
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        etag,
        tenant_id: acme.tenant.clone(),
        delivery_type: logrelay_common::tenant::DeliveryType::Cloudwatch,
    };
    let claimed = store.claim_afresh(&key, "another-attempt").await;
    assert!(
        matches!(&claimed, Ok(crate::progress::Claim::Reset(previous)) if previous.complete),
        "{claimed:?}"
    );
    match forced.handle(&object).await {
        Outcome::Failed {
            kind: FailureKind::Transient,
            error,
        } => assert_eq!(error.reason(), "in_progress_elsewhere"),
        other => panic!("expected the lease to win, got {other:?}"),
    }
    assert_eq!(acme.delivered().await.len(), 8, "nothing sent a third time");
}

#[tokio::test]
async fn a_redelivery_after_a_failure_mid_object_resumes_without_duplicates() {
    let acme = TestTenant::with_cloudwatch(|_| {}).await;
    let proxy = FaultProxy::start(&acme.central.moto_url)
        .await
        .expect("proxy");
    let processor = acme.processor_with(|settings| {
        settings.logs_endpoint_url = Some(proxy.url());
        settings.limits.max_batch_events = 10;
        settings.limits.max_in_flight_per_object = 1;
    });
    let object = acme.put(100, "r").await;

    // After a few requests (creating the group and stream, then some batches), CloudWatch fails
    // every PutLogEvents until healed.
    let trigger = {
        let proxy_requests = std::sync::Arc::new(proxy);
        let watcher = proxy_requests.clone();
        let task = tokio::spawn(async move {
            while watcher.requests_seen() < 7 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            watcher.set_plan(FaultPlan {
                error_rate: 1.0,
                kinds: vec![FaultKind::Status5xx],
                only: Some(FaultMatch::Target("PutLogEvents".into())),
            });
        });
        (proxy_requests, task)
    };
    let first = processor.handle(&object).await;
    let _ = trigger.1.await;
    let delivered_first = match first {
        Outcome::Failed {
            kind: FailureKind::Transient,
            error,
        } => error
            .report()
            .map(|report| report.events_delivered)
            .unwrap_or(0),
        other => panic!("expected a transient failure, got {other:?}"),
    };
    assert!(
        delivered_first > 0 && delivered_first < 100,
        "delivered {delivered_first} before the fault"
    );

    trigger.0.heal();
    let report = expect_delivered(processor.handle(&object).await);
    assert_eq!(
        report.events_delivered,
        100 - delivered_first,
        "only the rest is sent"
    );
    let expected: Vec<String> = (0..100).map(|i| format!("r line {i}")).collect();
    assert_eq!(
        sorted(acme.delivered().await),
        sorted(expected),
        "every line exactly once"
    );
}

#[tokio::test]
async fn the_pieces_of_an_oversized_message_arrive_in_order_though_the_head_is_slower() {
    let acme = TestTenant::with_cloudwatch(|_| {}).await;
    let proxy = FaultProxy::start(&acme.central.moto_url)
        .await
        .expect("proxy");
    // A full-size request takes longer than a small one, as on a real network.
    proxy.set_plan(FaultPlan {
        error_rate: 1.0,
        kinds: vec![FaultKind::Delay(Duration::from_millis(400))],
        only: Some(FaultMatch::BodyAtLeast(512 * 1024)),
    });
    let processor = acme.processor_with(|settings| {
        settings.logs_endpoint_url = Some(proxy.url());
        settings.limits.max_in_flight_per_object = 4;
    });
    // 1.1 MB in one line, every 10-byte piece numbered so any reordering shows; then a short line.
    let oversized: String = (0..110_000).map(|i| format!("{i:09}|")).collect();
    let mut records = acme.records(2, "o");
    records[0].message = oversized.clone();
    let object = acme.central.put_records(&acme.partition, &records).await;

    let report = expect_delivered(processor.handle(&object).await);
    assert_eq!(report.events_delivered, 3, "two pieces and the short line");
    assert!(
        proxy.faults_injected() > 0,
        "the head request was slowed down"
    );
    let delivered = acme.delivered().await;
    assert_eq!(delivered.len(), 3);
    assert_eq!(
        delivered[0].len() + delivered[1].len(),
        oversized.len(),
        "the pieces are the whole message"
    );
    assert!(
        delivered[..2].concat() == oversized,
        "the pieces, in the stream's order, are the message (head {} bytes first)",
        delivered[0].len()
    );
    assert_eq!(delivered[2], "o line 1");
}

#[tokio::test]
async fn progress_costs_a_claim_and_a_completion_per_object_plus_one_write_per_earlier_batch() {
    let moto = Moto::shared().await;
    let proxy = FaultProxy::start(moto.url()).await.expect("proxy");
    let central = Central::new(moto, static_config(&proxy.url(), test_credentials()).await).await;
    let tenant = unique_name("acme");
    let partition = Partition::new(&tenant, "c1", "api", "api-1");
    let role = customer_role(moto, ACCOUNT_A, None).await;
    central
        .put_config(cloudwatch_config(
            &tenant,
            &role,
            "x1",
            &format!("/logrelay/{tenant}"),
        ))
        .await;
    let mut settings = central.settings();
    settings.limits.max_batch_events = 10;
    let processor = Processor::new(settings).expect("processor");
    const UPDATE: &str = "DynamoDB_20120810.UpdateItem";

    let small = central
        .put_records(&partition, &records(&tenant, &partition, 5, "one"))
        .await;
    let before = proxy.requests_to(UPDATE);
    expect_delivered(processor.handle(&small).await);
    assert_eq!(
        proxy.requests_to(UPDATE) - before,
        2,
        "claim and completion"
    );

    let large = central
        .put_records(&partition, &records(&tenant, &partition, 35, "four"))
        .await;
    let before = proxy.requests_to(UPDATE);
    let report = expect_delivered(processor.handle(&large).await);
    assert_eq!(report.events_delivered, 35);
    assert!(
        proxy.requests_to(UPDATE) - before <= 4 + 1,
        "at most one write per batch but the last, plus claim and completion: {}",
        proxy.requests_to(UPDATE) - before
    );
}

#[tokio::test]
async fn injected_throttling_and_server_errors_lose_and_duplicate_nothing() {
    let acme = TestTenant::with_cloudwatch(|_| {}).await;
    let proxy = FaultProxy::start(&acme.central.moto_url)
        .await
        .expect("proxy");
    proxy.set_plan(FaultPlan {
        error_rate: 0.3,
        kinds: vec![FaultKind::Throttling, FaultKind::Status5xx],
        only: Some(FaultMatch::Target("Logs_20140328".into())),
    });
    let processor = acme.processor_with(|settings| {
        settings.logs_endpoint_url = Some(proxy.url());
        settings.limits.max_batch_events = 7;
        settings.limits.retry.attempts = 30;
    });
    let object = acme.put(60, "t").await;

    let report = expect_delivered(processor.handle(&object).await);
    assert_eq!(report.events_delivered, 60);
    assert!(proxy.faults_injected() > 0, "the proxy injected faults");
    assert_eq!(
        sorted(acme.delivered().await),
        sorted((0..60).map(|i| format!("t line {i}")).collect())
    );
}

#[tokio::test]
async fn a_log_group_deleted_by_the_customer_is_recreated_with_retention_and_nothing_is_lost() {
    let acme =
        TestTenant::with_cloudwatch(|config| config["retention_days"] = serde_json::json!(7)).await;
    let processor = acme.processor();
    let first = acme.put(5, "before").await;
    expect_delivered(processor.handle(&first).await);

    let customer_logs = aws_sdk_cloudwatchlogs::Client::new(&acme.moto.config(ACCOUNT_A).await);
    customer_logs
        .delete_log_group()
        .log_group_name(&acme.group)
        .send()
        .await
        .expect("customer deletes the group");
    let second = acme.put(7, "after").await;
    let report = expect_delivered(processor.handle(&second).await);
    assert_eq!(report.events_delivered, 7);
    assert_eq!(
        sorted(acme.delivered().await),
        sorted((0..7).map(|i| format!("after line {i}")).collect())
    );
    let groups = customer_logs
        .describe_log_groups()
        .log_group_name_prefix(&acme.group)
        .send()
        .await
        .expect("describe");
    assert_eq!(
        groups.log_groups()[0].retention_in_days(),
        Some(7),
        "retention set on the group we created"
    );
}

#[tokio::test]
async fn an_invalid_config_does_not_block_the_tenants_valid_one() {
    let acme = TestTenant::new().await;
    acme.add_s3(None).await;
    // A cloudwatch item without role or group.
    acme.central
        .put_item(HashMap::from([
            (
                "tenant_id".to_owned(),
                AttributeValue::S(acme.tenant.clone()),
            ),
            ("type".to_owned(), AttributeValue::S("cloudwatch".into())),
        ]))
        .await;
    let processor = acme.processor();
    let object = acme.put(3, "v").await;
    assert_eq!(
        expect_delivered(processor.handle(&object).await).s3_copies,
        1
    );
}

#[tokio::test]
async fn hostile_objects_and_keys_end_in_clear_counted_outcomes() {
    let acme = TestTenant::with_cloudwatch(|_| {}).await;
    let (central, tenant, partition) = (&acme.central, acme.tenant.as_str(), &acme.partition);
    let processor = acme.processor_with(|settings| {
        settings.limits.read.max_decompressed_bytes = 1 << 20;
    });
    let permanent = |outcome: Outcome| match outcome {
        Outcome::Failed {
            kind: FailureKind::Permanent,
            error,
        } => error.reason(),
        other => panic!("expected a permanent failure, got {other:?}"),
    };

    // Bad lines are skipped and counted; the good ones deliver.
    let good = acme.records(3, "ok");
    let mut body = Vec::new();
    for record in &good {
        body.push(serde_json::to_string(record).expect("json"));
    }
    body.insert(1, "this is not json".into());
    body.insert(2, r#"{"no_message":true}"#.into());
    body.push(String::new());
    let bytes = {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(body.join("\n").as_bytes()).expect("gzip");
        encoder.finish().expect("gzip")
    };
    let object = central.put_raw(partition, bytes).await;
    let report = expect_delivered(processor.handle(&object).await);
    assert_eq!(
        (
            report.records_read,
            report.bad_lines,
            report.events_delivered
        ),
        (3, 2, 3)
    );

    // A gzip bomb stops at the cap.
    let bomb = {
        use std::io::Write;
        let line = serde_json::to_string(&good[0]).expect("json");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        for _ in 0..(4 << 20) / line.len() {
            encoder.write_all(line.as_bytes()).expect("gzip");
            encoder.write_all(b"\n").expect("gzip");
        }
        encoder.finish().expect("gzip")
    };
    let object = central.put_raw(partition, bomb).await;
    assert_eq!(
        permanent(processor.handle(&object).await),
        "object_too_large"
    );

    // Not gzip at all.
    let object = central
        .put_raw(partition, b"plain text, not gzip".to_vec())
        .await;
    assert_eq!(permanent(processor.handle(&object).await), "object_corrupt");

    // Keys: too long, empty segment, empty tenant, unknown tenant.
    let long_key = format!(
        "{tenant}/{}/api/pod/20240101T000000Z-abc.json.gz",
        "c".repeat(1100)
    );
    assert_eq!(
        permanent(processor.handle(&central.object(&long_key)).await),
        "bad_key"
    );
    let empty_segment = format!("{tenant}//api/pod/20240101T000000Z-abc.json.gz");
    assert_eq!(
        permanent(processor.handle(&central.object(&empty_segment)).await),
        "bad_key"
    );
    let no_tenant = "~/c1/api/pod/20240101T000000Z-abc.json.gz";
    assert_eq!(
        permanent(processor.handle(&central.object(no_tenant)).await),
        "bad_tenant_id"
    );
    let unknown = format!(
        "{}/c1/api/pod/20240101T000000Z-abc.json.gz",
        unique_name("nobody")
    );
    assert_eq!(
        permanent(processor.handle(&central.object(&unknown)).await),
        "tenant_not_configured"
    );
    // A key that parses but whose object is gone.
    let missing = ObjectKey::new(partition.clone(), Utc::now(), "gone")
        .expect("key")
        .to_key();
    assert_eq!(
        permanent(processor.handle(&central.object(&missing)).await),
        "object_missing"
    );
}

#[tokio::test]
async fn records_an_application_filter_does_not_want_are_counted() {
    let acme =
        TestTenant::with_cloudwatch(|config| config["groups"] = serde_json::json!(["API"])).await;
    let (central, tenant) = (&acme.central, acme.tenant.as_str());
    let processor = acme.processor();

    let unwanted = Partition::new(tenant, "c1", "my-app", "p");
    let object = central
        .put_records(&unwanted, &records(tenant, &unwanted, 2, "u"))
        .await;
    assert!(matches!(
        processor.handle(&object).await,
        Outcome::Skipped(SkipReason::NothingWanted)
    ));

    let wanted = Partition::new(tenant, "c1", "kube-apiserver", "p");
    let mut lines = records(tenant, &wanted, 4, "w");
    lines[3].application = "etcd".into();
    let object = central.put_records(&wanted, &lines).await;
    let report = expect_delivered(processor.handle(&object).await);
    assert_eq!((report.events_delivered, report.records_filtered), (3, 1));
}

#[tokio::test]
async fn an_object_uploaded_by_another_clusters_writer_is_refused_unread() {
    let acme = TestTenant::with_cloudwatch(|_| {}).await;
    // The test partition's cluster is c1; c2's writer may write only c2's keys.
    let writers: ClusterWriters = "c1=AROACLUSTERONE,c2=AROACLUSTERTWO"
        .parse()
        .expect("writers");
    let processor = acme.processor_with(|settings| settings.cluster_writers = writers);
    let mut forged = acme.put(2, "forged").await;
    forged.uploader = Some("AWS:AROACLUSTERTWO:logrelay-agent-node-3".into());
    match processor.handle(&forged).await {
        Outcome::Failed {
            kind: FailureKind::Permanent,
            error,
        } => {
            assert_eq!(error.reason(), "uploader_not_allowed");
            assert!(error.to_string().contains("AROACLUSTERONE"), "{error}");
        }
        other => panic!("expected a permanent failure, got {other:?}"),
    }
    assert!(acme.delivered().await.is_empty(), "nothing of it delivered");

    let mut genuine = acme.put(2, "genuine").await;
    genuine.uploader = Some("AWS:AROACLUSTERONE:logrelay-agent-node-1".into());
    let report = expect_delivered(processor.handle(&genuine).await);
    assert_eq!(report.events_delivered, 2);
    // The emulator's own notifications name no uploader: delivered, counted as unverified.
    let unnamed = acme.put(1, "unnamed").await;
    expect_delivered(processor.handle(&unnamed).await);
}

#[tokio::test]
async fn quarantined_objects_are_never_delivered_to_the_tenant_their_namespace_names() {
    let acme = TestTenant::with_cloudwatch(|_| {}).await;
    let processor = acme.processor();
    // The agent's quarantine: lines of an unknown pod in a namespace named like the tenant.
    let quarantine = Partition::new(
        logrelay_common::key::QUARANTINE_CUSTOMER,
        "c1",
        acme.tenant.as_str(),
        "p",
    );
    let mut lines = records(&acme.tenant, &quarantine, 3, "q");
    for record in &mut lines {
        record.customer_id = logrelay_common::key::QUARANTINE_CUSTOMER.into();
        record.namespace.clone_from(&acme.tenant);
    }
    let object = acme.central.put_records(&quarantine, &lines).await;
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let outcome = {
        let _guard = metrics::set_default_local_recorder(&recorder);
        processor.handle(&object).await
    };
    assert!(
        matches!(outcome, Outcome::Skipped(SkipReason::Quarantined)),
        "{outcome:?}"
    );
    assert!(acme.delivered().await.is_empty());
    let rendered = handle.render();
    assert!(
        rendered.contains("outcome=\"skipped_quarantined\"")
            && rendered.contains("reason=\"no_known_tenant\""),
        "{rendered}"
    );
}

/// IAM enforced: the customer role's trust policy requires the tenant's ExternalId. moto evaluates
/// trust policies only for roles in the caller's own account, so both tenants' roles live there.
#[tokio::test]
async fn a_tenant_with_a_wrong_external_id_is_refused_and_counted_while_another_is_delivered() {
    let mut moto = Moto::start_private().await;
    let (_user_arn, keys) = create_user_with_access_key(
        &moto.config(DEFAULT_ACCOUNT_ID).await,
        &unique_name("processor"),
        &allow_policy(&["*"]),
    )
    .await
    .expect("processor user");
    let good_role = customer_role(&moto, DEFAULT_ACCOUNT_ID, Some("right-a")).await;
    let bad_role = customer_role(&moto, DEFAULT_ACCOUNT_ID, Some("right-b")).await;
    let central = Central::new(&moto, moto.config(DEFAULT_ACCOUNT_ID).await).await;
    let (tenant_ok, tenant_bad) = (unique_name("good"), unique_name("bad"));
    let (group_ok, group_bad) = (
        format!("/logrelay/{tenant_ok}"),
        format!("/logrelay/{tenant_bad}"),
    );
    central
        .put_config(cloudwatch_config(
            &tenant_ok, &good_role, "right-a", &group_ok,
        ))
        .await;
    central
        .put_config(cloudwatch_config(
            &tenant_bad,
            &bad_role,
            "wrong-b",
            &group_bad,
        ))
        .await;
    let part_ok = Partition::new(&tenant_ok, "c1", "api", "p");
    let part_bad = Partition::new(&tenant_bad, "c1", "api", "p");
    let object_ok = central
        .put_records(&part_ok, &records(&tenant_ok, &part_ok, 4, "ok"))
        .await;
    let object_bad = central
        .put_records(&part_bad, &records(&tenant_bad, &part_bad, 4, "bad"))
        .await;
    moto.enforce_from_now().await.expect("enforce IAM");

    let mut settings = central.settings();
    settings.aws = static_config(moto.url(), keys).await;
    let processor = Processor::new(settings).expect("processor");
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let (ok, bad) = {
        let _guard = metrics::set_default_local_recorder(&recorder);
        (
            processor.handle(&object_ok).await,
            processor.handle(&object_bad).await,
        )
    };
    assert_eq!(expect_delivered(ok).events_delivered, 4);
    match bad {
        Outcome::Failed {
            kind: FailureKind::Permanent,
            error,
        } => assert_eq!(error.reason(), "access_denied"),
        other => panic!("expected access denied, got {other:?}"),
    }
    let rendered = handle.render();
    assert!(
        rendered.contains(&format!(
            "{ASSUME_ROLE_DENIED_TOTAL}{{tenant=\"{tenant_bad}\",type=\"cloudwatch\"}} 1"
        )),
        "{rendered}"
    );
    assert!(!rendered.contains(&format!(
        "{ASSUME_ROLE_DENIED_TOTAL}{{tenant=\"{tenant_ok}\""
    )));
}

#[tokio::test]
async fn a_single_key_table_item_without_type_delivers_as_cloudwatch_and_is_counted() {
    let tenant = TestTenant::new().await;
    let table = unique_name("poc-tenants");
    logrelay_testkit::create_single_key_tenant_table(&tenant.central.aws, &table)
        .await
        .expect("single-key table");
    // The item as the proof of concept's processor read it: no `type`, no ExternalId (it sent the
    // central account id as ExternalId, which `DEFAULT_EXTERNAL_ID` stands for here).
    let role = customer_role(tenant.moto, ACCOUNT_A, Some(DEFAULT_ACCOUNT_ID)).await;
    let s = |text: &str| AttributeValue::S(text.to_owned());
    aws_sdk_dynamodb::Client::new(&tenant.central.aws)
        .put_item()
        .table_name(&table)
        .set_item(Some(HashMap::from([
            ("tenant_id".to_owned(), s(&tenant.tenant)),
            ("log_distribution_role_arn".to_owned(), s(&role)),
            ("log_group_name".to_owned(), s(&tenant.group)),
            ("target_region".to_owned(), s("us-east-1")),
            ("account_id".to_owned(), s(ACCOUNT_A)),
            ("status".to_owned(), s("active")),
        ])))
        .send()
        .await
        .expect("put single-key item");
    let object = tenant.put(3, "poc").await;
    let processor = tenant.processor_with(|settings| {
        settings.tenant_config_table = table.clone();
        settings.default_external_id = Some(DEFAULT_ACCOUNT_ID.to_owned());
    });
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let outcome = {
        let _guard = metrics::set_default_local_recorder(&recorder);
        processor.handle(&object).await
    };
    assert_eq!(expect_delivered(outcome).events_delivered, 3);
    assert_eq!(
        sorted(tenant.delivered().await),
        ["poc line 0", "poc line 1", "poc line 2"]
    );
    let rendered = handle.render();
    assert!(
        rendered.contains(&format!(
            "{}{{tenant=\"{}\",type=\"cloudwatch\"}} 1",
            crate::telemetry::events::CONFIGS_UNTYPED_TOTAL,
            tenant.tenant
        )),
        "{rendered}"
    );
}

#[tokio::test]
async fn an_object_with_a_vector_written_name_delivers_and_is_counted() {
    let tenant = TestTenant::with_cloudwatch(|_| {}).await;
    let time = Utc::now() - chrono::Duration::minutes(3);
    let key = format!(
        "{}{}-0b9d1c4e-6f2a-4c3e-9a7b-2f1e0d9c8b7a.json.gz",
        tenant.partition.key_prefix(),
        time.format("%Y%m%d-%H%M%S")
    );
    let line = serde_json::json!({
        "customer_id": tenant.tenant,
        "kubernetes": {"container_name": "main", "namespace": "ns", "pod_name": "api-1"},
        "message": "written by vector",
        "source_type": "kubernetes_logs",
        "stream": "stdout",
        "timestamp": time.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string(),
    });
    let body = {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder
            .write_all(format!("{line}\n").as_bytes())
            .expect("gzip");
        encoder.finish().expect("gzip")
    };
    put_object(&tenant.central.aws, &tenant.central.bucket, &key, body)
        .await
        .expect("put object");
    let processor = tenant.processor();
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let outcome = {
        let _guard = metrics::set_default_local_recorder(&recorder);
        processor.handle(&tenant.central.object(&key)).await
    };
    assert_eq!(expect_delivered(outcome).events_delivered, 1);
    assert_eq!(tenant.delivered().await, ["written by vector"]);
    let rendered = handle.render();
    assert!(
        rendered.contains(&format!(
            "{}{{tenant=\"{}\"}} 1",
            crate::telemetry::events::VECTOR_OBJECTS_TOTAL,
            tenant.tenant
        )),
        "{rendered}"
    );
}
