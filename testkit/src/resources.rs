//! Creating and inspecting AWS resources in the emulator for tests: buckets, queues with DLQs,
//! topics and their wiring, the tenant and progress tables, IAM roles and users, objects and
//! messages. Every helper acts with the account of the `SdkConfig` it is given, and builds its
//! clients through `logrelay_common::aws` like the production code.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, anyhow};
use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, Event, FilterRule, FilterRuleName,
    NotificationConfiguration, NotificationConfigurationFilter, S3KeyFilter, TopicConfiguration,
};
use aws_sdk_sqs::types::QueueAttributeName;
use aws_smithy_types::error::display::DisplayErrorContext;
use logrelay_common::aws::{AwsOptions, base_config, s3_client};

/// Region every test config uses.
pub const TEST_REGION: &str = "us-east-1";

/// Longest S3 bucket name (S3 bucket naming rules); also fine for queues, topics and tables.
const MAX_NAME_LEN: usize = 63;

/// Upper bound on receive rounds in [`receive_all`], so a queue that keeps filling cannot hang a test.
const MAX_RECEIVE_ROUNDS: usize = 100;

/// Messages per receive call (SQS maximum).
const SQS_MAX_BATCH: i32 = 10;

/// Distinguishes names made by one test binary.
static NAME_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Credentials moto accepts without IAM enforcement; they act in the default account.
pub fn test_credentials() -> Credentials {
    Credentials::from_keys("testing", "testing", None)
}

/// A config for an emulator endpoint with fixed credentials, built by
/// `logrelay_common::aws::base_config` (path-style S3, checksums only when required).
pub async fn static_config(endpoint_url: &str, credentials: Credentials) -> SdkConfig {
    base_config(&AwsOptions {
        region: Some(TEST_REGION.to_owned()),
        endpoint_url: Some(endpoint_url.to_owned()),
        credentials: Some(credentials),
    })
    .await
}

/// A name unique across parallel tests and runs: lowercase `prefix-<pid>-<counter>-<random>`,
/// valid as a bucket, queue, topic, table or role name.
pub fn unique_name(prefix: &str) -> String {
    let prefix: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let n = NAME_COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix = format!("-{}-{n}-{:08x}", std::process::id(), rand::random::<u32>());
    let keep = MAX_NAME_LEN.saturating_sub(suffix.len());
    let prefix = prefix.get(..keep).unwrap_or(&prefix);
    format!("{prefix}{suffix}")
}

/// Maps an SDK error to an `anyhow` error naming what was attempted and the full cause chain.
fn sdk_err<E: std::error::Error>(what: String) -> impl FnOnce(E) -> anyhow::Error {
    move |err| anyhow!("{what}: {}", DisplayErrorContext(&err))
}

/// Creates a bucket in the config's region.
pub async fn create_bucket(config: &SdkConfig, name: &str) -> anyhow::Result<()> {
    let mut request = s3_client(config).create_bucket().bucket(name);
    // S3 wants a location constraint everywhere but us-east-1.
    if let Some(region) = config.region().filter(|r| r.as_ref() != "us-east-1") {
        request = request.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region.as_ref()))
                .build(),
        );
    }
    request
        .send()
        .await
        .map_err(sdk_err(format!("create bucket {name}")))?;
    Ok(())
}

/// Writes an object.
pub async fn put_object(
    config: &SdkConfig,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> anyhow::Result<()> {
    s3_client(config)
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(sdk_err(format!("put s3://{bucket}/{key}")))?;
    Ok(())
}

/// Reads a whole object.
pub async fn get_object_bytes(
    config: &SdkConfig,
    bucket: &str,
    key: &str,
) -> anyhow::Result<Vec<u8>> {
    let output = s3_client(config)
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(sdk_err(format!("get s3://{bucket}/{key}")))?;
    let bytes = output
        .body
        .collect()
        .await
        .with_context(|| format!("read body of s3://{bucket}/{key}"))?;
    Ok(bytes.into_bytes().to_vec())
}

/// A queue with its dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestQueue {
    /// Queue URL.
    pub url: String,
    /// Queue ARN.
    pub arn: String,
    /// Dead-letter queue URL.
    pub dlq_url: String,
    /// Dead-letter queue ARN.
    pub dlq_arn: String,
}

/// Creates `name` and `name-dlq`, redriving to the DLQ after `max_receive_count` receives.
pub async fn create_queue(
    config: &SdkConfig,
    name: &str,
    max_receive_count: u32,
) -> anyhow::Result<TestQueue> {
    let sqs = aws_sdk_sqs::Client::new(config);
    let dlq_name = format!("{name}-dlq");
    let dlq_url = sqs
        .create_queue()
        .queue_name(&dlq_name)
        .send()
        .await
        .map_err(sdk_err(format!("create queue {dlq_name}")))?
        .queue_url
        .context("CreateQueue returned no URL")?;
    let dlq_arn = queue_arn(&sqs, &dlq_url).await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": max_receive_count.to_string(),
    });
    let url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .map_err(sdk_err(format!("create queue {name}")))?
        .queue_url
        .context("CreateQueue returned no URL")?;
    let arn = queue_arn(&sqs, &url).await?;
    Ok(TestQueue {
        url,
        arn,
        dlq_url,
        dlq_arn,
    })
}

/// A queue's ARN.
async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<String> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(sdk_err(format!("get attributes of {url}")))?
        .attributes
        .and_then(|mut attrs| attrs.remove(&QueueAttributeName::QueueArn))
        .with_context(|| format!("no QueueArn for {url}"))
}

/// Receives and deletes every message currently in the queue; returns their bodies in order.
pub async fn receive_all(config: &SdkConfig, queue_url: &str) -> anyhow::Result<Vec<String>> {
    let sqs = aws_sdk_sqs::Client::new(config);
    let mut bodies = Vec::new();
    for _ in 0..MAX_RECEIVE_ROUNDS {
        let messages = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(SQS_MAX_BATCH)
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(sdk_err(format!("receive from {queue_url}")))?
            .messages
            .unwrap_or_default();
        if messages.is_empty() {
            return Ok(bodies);
        }
        for message in messages {
            if let Some(handle) = &message.receipt_handle {
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(sdk_err(format!("delete from {queue_url}")))?;
            }
            bodies.extend(message.body);
        }
    }
    Err(anyhow!(
        "{queue_url} still had messages after {MAX_RECEIVE_ROUNDS} receives"
    ))
}

/// Creates an SNS topic; returns its ARN.
pub async fn create_topic(config: &SdkConfig, name: &str) -> anyhow::Result<String> {
    aws_sdk_sns::Client::new(config)
        .create_topic()
        .name(name)
        .send()
        .await
        .map_err(sdk_err(format!("create topic {name}")))?
        .topic_arn
        .context("CreateTopic returned no ARN")
}

/// Subscribes a queue to a topic; with `raw_message_delivery` the queue gets the bare message
/// instead of the SNS envelope. Returns the subscription ARN.
pub async fn subscribe_queue_to_topic(
    config: &SdkConfig,
    topic_arn: &str,
    queue: &TestQueue,
    raw_message_delivery: bool,
) -> anyhow::Result<String> {
    let mut request = aws_sdk_sns::Client::new(config)
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(&queue.arn)
        .return_subscription_arn(true);
    if raw_message_delivery {
        request = request.attributes("RawMessageDelivery", "true");
    }
    request
        .send()
        .await
        .map_err(sdk_err(format!("subscribe {} to {topic_arn}", queue.arn)))?
        .subscription_arn
        .context("Subscribe returned no ARN")
}

/// Makes the bucket publish `s3:ObjectCreated:*` for keys ending in `.gz` to the topic.
pub async fn notify_bucket_to_topic(
    config: &SdkConfig,
    bucket: &str,
    topic_arn: &str,
) -> anyhow::Result<()> {
    let filter = NotificationConfigurationFilter::builder()
        .key(
            S3KeyFilter::builder()
                .filter_rules(
                    FilterRule::builder()
                        .name(FilterRuleName::Suffix)
                        .value(".gz")
                        .build(),
                )
                .build(),
        )
        .build();
    let topic = TopicConfiguration::builder()
        .topic_arn(topic_arn)
        .events(Event::S3ObjectCreated)
        .filter(filter)
        .build()
        .context("topic configuration")?;
    s3_client(config)
        .put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .topic_configurations(topic)
                .build(),
        )
        .send()
        .await
        .map_err(sdk_err(format!("notify {bucket} to {topic_arn}")))?;
    Ok(())
}

/// Creates an on-demand table with the given string key attributes.
async fn create_table(
    config: &SdkConfig,
    name: &str,
    hash_key: &str,
    range_key: Option<&str>,
) -> anyhow::Result<()> {
    let mut request = aws_sdk_dynamodb::Client::new(config)
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for (attribute, key_type) in
        std::iter::once((hash_key, KeyType::Hash)).chain(range_key.map(|r| (r, KeyType::Range)))
    {
        request = request
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(attribute)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .context("attribute definition")?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(attribute)
                    .key_type(key_type)
                    .build()
                    .context("key schema")?,
            );
    }
    request
        .send()
        .await
        .map_err(sdk_err(format!("create table {name}")))?;
    Ok(())
}

/// Creates the tenant config table: HASH `tenant_id` (S), RANGE `type` (S).
pub async fn create_tenant_table(config: &SdkConfig, name: &str) -> anyhow::Result<()> {
    create_table(config, name, "tenant_id", Some("type")).await
}

/// Creates a tenant table shaped as the proof of concept's CloudFormation defined it
/// (`TenantConfigTable`): PAY_PER_REQUEST, HASH `tenant_id` (S) only, and the global secondary
/// indexes `AccountIdIndex` (HASH `account_id`) and `StatusIndex` (HASH `status`), projection ALL.
pub async fn create_single_key_tenant_table(config: &SdkConfig, name: &str) -> anyhow::Result<()> {
    let definition = |attribute: &str| {
        AttributeDefinition::builder()
            .attribute_name(attribute)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .context("attribute definition")
    };
    let hash = |attribute: &str| {
        KeySchemaElement::builder()
            .attribute_name(attribute)
            .key_type(KeyType::Hash)
            .build()
            .context("key schema")
    };
    let index = |index: &str, attribute: &str| -> anyhow::Result<GlobalSecondaryIndex> {
        GlobalSecondaryIndex::builder()
            .index_name(index)
            .key_schema(hash(attribute)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .context("global secondary index")
    };
    aws_sdk_dynamodb::Client::new(config)
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(definition("tenant_id")?)
        .attribute_definitions(definition("account_id")?)
        .attribute_definitions(definition("status")?)
        .key_schema(hash("tenant_id")?)
        .global_secondary_indexes(index("AccountIdIndex", "account_id")?)
        .global_secondary_indexes(index("StatusIndex", "status")?)
        .send()
        .await
        .map_err(sdk_err(format!("create table {name}")))?;
    Ok(())
}

/// Creates a progress table: HASH `pk` (S).
pub async fn create_progress_table(config: &SdkConfig, name: &str) -> anyhow::Result<()> {
    create_table(config, name, "pk", None).await
}

/// A trust policy letting `principal` (an ARN, or `*`) assume the role and tag the session,
/// optionally only with the given `sts:ExternalId`.
pub fn trust_policy(principal: &str, external_id: Option<&str>) -> String {
    let mut statement = serde_json::json!({
        "Effect": "Allow",
        "Principal": { "AWS": principal },
        "Action": ["sts:AssumeRole", "sts:TagSession"],
    });
    if let Some(id) = external_id {
        statement["Condition"] = serde_json::json!({ "StringEquals": { "sts:ExternalId": id } });
    }
    serde_json::json!({ "Version": "2012-10-17", "Statement": [statement] }).to_string()
}

/// An identity policy allowing `actions` on every resource.
pub fn allow_policy(actions: &[&str]) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Allow", "Action": actions, "Resource": "*" }],
    })
    .to_string()
}

/// Creates a role with a trust policy and optionally an inline policy; returns its ARN.
pub async fn create_role(
    config: &SdkConfig,
    name: &str,
    trust_policy_json: &str,
    inline_policy_json: Option<&str>,
) -> anyhow::Result<String> {
    let iam = aws_sdk_iam::Client::new(config);
    let role = iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(trust_policy_json)
        .send()
        .await
        .map_err(sdk_err(format!("create role {name}")))?
        .role
        .context("CreateRole returned no role")?;
    if let Some(policy) = inline_policy_json {
        iam.put_role_policy()
            .role_name(name)
            .policy_name(format!("{name}-inline"))
            .policy_document(policy)
            .send()
            .await
            .map_err(sdk_err(format!("put policy on role {name}")))?;
    }
    Ok(role.arn)
}

/// Creates an IAM user with an inline policy and an access key (needed once IAM is enforced);
/// returns the user's ARN and its credentials.
pub async fn create_user_with_access_key(
    config: &SdkConfig,
    name: &str,
    inline_policy_json: &str,
) -> anyhow::Result<(String, Credentials)> {
    let iam = aws_sdk_iam::Client::new(config);
    let user = iam
        .create_user()
        .user_name(name)
        .send()
        .await
        .map_err(sdk_err(format!("create user {name}")))?
        .user
        .context("CreateUser returned no user")?;
    iam.put_user_policy()
        .user_name(name)
        .policy_name(format!("{name}-inline"))
        .policy_document(inline_policy_json)
        .send()
        .await
        .map_err(sdk_err(format!("put policy on user {name}")))?;
    let key = iam
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .map_err(sdk_err(format!("create access key for {name}")))?
        .access_key
        .context("CreateAccessKey returned no key")?;
    let credentials = Credentials::from_keys(key.access_key_id, key.secret_access_key, None);
    Ok((user.arn, credentials))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_are_valid_bucket_names() {
        let a = unique_name("Logs_Bucket");
        let b = unique_name("Logs_Bucket");
        assert_ne!(a, b);
        assert!(a.starts_with("logs-bucket-"));
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
        let long = unique_name(&"x".repeat(100));
        assert!(long.len() <= MAX_NAME_LEN);
    }

    #[test]
    fn trust_policy_carries_the_external_id_condition() {
        let policy: serde_json::Value =
            serde_json::from_str(&trust_policy("*", Some("ext-1"))).expect("valid JSON");
        assert_eq!(
            policy["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
            "ext-1"
        );
        let open: serde_json::Value =
            serde_json::from_str(&trust_policy("*", None)).expect("valid JSON");
        assert!(open["Statement"][0].get("Condition").is_none());
    }
}
