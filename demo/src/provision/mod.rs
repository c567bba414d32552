//! Provisioning the emulated accounts: the central account from `cloudformation/` (core and SQS
//! stacks), the wiring moto's CloudFormation skips (bucket → SNS notification, SNS → SQS
//! subscription) made through the SDK from the stacks' own outputs, and each tenant's onboarding.
//! With IAM enforcement (the denied-tenant scenario) it also creates the operator user whose keys
//! every central-side process uses, then switches enforcement on.

pub mod stacks;
pub mod tenants;

use std::collections::BTreeMap;

use anyhow::Context;
use logrelay_testkit::TestQueue;

use crate::accounts::Identity;
use crate::emulator::Emulator;
use crate::options::DemoOptions;
use crate::paths::{Binaries, WorkDir};
pub use stacks::{CentralStacks, PROJECT};
pub use tenants::{OnboardedTenant, TenantsCli};

/// Name of the operator user created when IAM is enforced.
pub const OPERATOR_USER: &str = "logrelay-demo-operator";

/// The central account's resources.
#[derive(Debug, Clone)]
pub struct Central {
    /// Central bucket.
    pub bucket: String,
    /// Notification topic.
    pub topic_arn: String,
    /// Queue and DLQ.
    pub queue: TestQueue,
    /// Tenant config table.
    pub tenant_table: String,
    /// Delivery progress table.
    pub progress_table: String,
    /// Central role.
    pub central_role_arn: String,
    /// Agent's writer role.
    pub s3_writer_role_arn: Option<String>,
    /// Resources moto's CloudFormation skipped (logical id → type).
    pub moto_skipped: BTreeMap<String, String>,
}

/// Everything provisioned.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// The central account.
    pub central: Central,
    /// The tenants, in plan order.
    pub tenants: Vec<OnboardedTenant>,
    /// Who acts in the central account from now on (moto's default identity, or the operator
    /// user when IAM is enforced).
    pub operator: Identity,
    /// Whether IAM is enforced.
    pub iam_enforced: bool,
}

/// Provisions everything for `options` in `emulator`.
pub async fn provision(
    options: &DemoOptions,
    binaries: &Binaries,
    work: &WorkDir,
    emulator: &Emulator,
) -> anyhow::Result<Provisioned> {
    let endpoint = emulator.url();
    let setup = Identity::default_central(endpoint);
    let suffix = format!("{:08x}", rand::random::<u32>());
    let queue = stacks::QueueSettings::for_run(options);
    let stacks = stacks::deploy_central(endpoint, &suffix, queue, &work.logs)
        .await
        .context("deploying the core and SQS stacks")?;
    let central = wire_central(&setup, stacks).await?;

    let enforce_iam = options.enforce_iam();
    let cli = TenantsCli {
        processor: &binaries.processor,
        operator: &setup,
        table: &central.tenant_table,
        central_role_arn: &central.central_role_arn,
        work,
    };
    let mut tenants = Vec::with_capacity(options.tenants.len());
    for plan in &options.tenants {
        let tenant = cli
            .onboard(plan, enforce_iam)
            .await
            .with_context(|| format!("onboarding tenant {}", plan.id))?;
        tenants.push(tenant);
    }

    let operator = if enforce_iam {
        let (_arn, keys) = logrelay_testkit::create_user_with_access_key(
            &setup.config().await,
            OPERATOR_USER,
            &logrelay_testkit::allow_policy(&["*"]),
        )
        .await?;
        emulator
            .enforce_iam_from_now()
            .await
            .context("switching IAM enforcement on")?;
        Identity {
            endpoint: endpoint.to_owned(),
            credentials: keys,
        }
    } else {
        setup
    };
    Ok(Provisioned {
        central,
        tenants,
        operator,
        iam_enforced: enforce_iam,
    })
}

/// The S3 → SNS → SQS wiring moto's CloudFormation skips (`NotificationConfiguration` of the
/// bucket, `AWS::SNS::Subscription`), made through the SDK from the stacks' outputs.
async fn wire_central(setup: &Identity, stacks: CentralStacks) -> anyhow::Result<Central> {
    let config = setup.config().await;
    let queue = TestQueue {
        url: stacks.sqs.log_delivery_queue_url.clone(),
        arn: stacks.sqs.log_delivery_queue_arn.clone(),
        dlq_url: stacks.sqs.log_delivery_dlq_url.clone(),
        dlq_arn: stacks.sqs.log_delivery_dlq_arn.clone(),
    };
    let bucket = stacks.core.central_logging_bucket_name.clone();
    let topic_arn = stacks.core.log_delivery_topic_arn.clone();
    logrelay_testkit::subscribe_queue_to_topic(&config, &topic_arn, &queue, false)
        .await
        .context("subscribing the queue to the topic")?;
    logrelay_testkit::notify_bucket_to_topic(&config, &bucket, &topic_arn)
        .await
        .context("bucket notification to the topic")?;
    // The first notification is moto's s3:TestEvent; the processor acknowledges it.
    Ok(Central {
        bucket,
        topic_arn,
        queue,
        tenant_table: stacks.core.tenant_config_table_name,
        progress_table: stacks.core.delivery_progress_table_name,
        central_role_arn: stacks.core.central_log_distribution_role_arn,
        s3_writer_role_arn: stacks.core.s3_writer_role_arn,
        moto_skipped: stacks.skipped,
    })
}
