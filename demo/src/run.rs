//! One demo run from start to summary: emulator → provisioning → pipeline → generation (with the
//! optional agent kill, or a chaos schedule) → drain → verification → summary. Every process it
//! starts is stopped when it returns or is dropped (Ctrl-C drops it).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use logrelay_testgen::ledger::Ledger;
use tokio::time::Instant;

use crate::accounts::{CENTRAL_ACCOUNT_ID, CUSTOMER_ADMIN_ROLE, INSPECTOR_ROLE, Identity};
use crate::chaos::log_group::{self, Deletion};
use crate::chaos::report::ChaosReport;
use crate::chaos::runner::{ChaosRunner, DeletionTarget};
use crate::chaos::schedule::Schedule;
use crate::child::log_tail;
use crate::drain;
use crate::emulator::Emulator;
use crate::http::HttpClient;
use crate::inspect;
use crate::metrics::Metrics;
use crate::options::{DemoOptions, ProcessorMode, S3_COPY_PREFIX};
use crate::paths::{Binaries, WorkDir, prepare_work_dir};
use crate::pipeline::{AGENT_BATCH_TIMEOUT, Pipeline, ProcessorProcess, STOP_GRACE};
use crate::progress::Progress;
use crate::provision::stacks::QueueSettings;
use crate::provision::{self, Provisioned};
use crate::summary::{BucketRow, DeniedRow, DestinationRow, Inspection, RequestRow, Summary};
use crate::verify::{self, Check, CheckResult, Destination};

/// How long past `--duration` the generator may take to write its final ledger and exit.
const GENERATOR_EXIT_SLACK: Duration = Duration::from_secs(30);

/// Lines of a component's log quoted in a note when it died.
const LOG_TAIL_LINES: usize = 5;

/// In chaos runs, how often waits during the drain stop to restart a component that exited.
const SUPERVISE_EVERY: Duration = Duration::from_secs(15);

/// How often the generation loop looks at the components (and shows progress).
const GENERATION_TICK: Duration = Duration::from_secs(1);

/// The same in chaos runs: chaos events happen within this of their planned time.
const CHAOS_TICK: Duration = Duration::from_millis(250);

/// Runs the demo; returns the summary (check [`Summary::passed`]).
pub async fn run(options: &DemoOptions) -> anyhow::Result<Summary> {
    let progress = Progress::new(options.progress);
    let result = run_with(options, &progress).await;
    progress.finish();
    if let Ok(summary) = &result
        && let Err(error) = summary.write_files(&options.work_dir)
    {
        tracing::warn!(%error, "could not write the summary files into the run directory");
    }
    result
}

async fn run_with(options: &DemoOptions, progress: &Progress) -> anyhow::Result<Summary> {
    let binaries = Binaries::in_dir(&options.bin_dir)?;
    let work = prepare_work_dir(&options.work_dir)?;
    let mut notes = Vec::new();

    progress.step("starting the AWS emulator (moto server)");
    let emulator = Emulator::start(&work.logs, options.keep).await?;
    progress.done(format!("AWS emulator at {}", emulator.url()));

    progress.step("provisioning: CloudFormation stacks, S3 → SNS → SQS wiring, tenant onboarding");
    let provisioned = provision::provision(options, &binaries, &work, &emulator)
        .await
        .context("provisioning")?;
    progress.done(format!(
        "central account {CENTRAL_ACCOUNT_ID}: bucket {}, queue + DLQ, tables; {} tenants onboarded",
        provisioned.central.bucket,
        provisioned.tenants.len()
    ));
    provisioning_notes(&provisioned, &mut notes);

    progress.step("starting the fake node, Kubernetes API, agent and processor");
    let mut pipeline = Pipeline::start(options, emulator.url(), &provisioned, &binaries, &work)
        .await
        .context("starting the pipeline")?;
    if pipeline.metadata_active {
        progress.done("agent watches pods and namespaces on the fake Kubernetes API");
    } else {
        notes.push(format!(
            "the agent opened no watch on the fake Kubernetes API within {:?} (its metadata stage is \
             not running): records carry path-derived fields (customer_id = namespace, application = \
             container name), so the node ran one container per pod",
            crate::pipeline::METADATA_WATCH_TIMEOUT
        ));
    }
    let mut chaos = match &options.chaos {
        Some(plan) => {
            let runner = chaos_runner(options, &provisioned, &work).await?;
            progress.done(format!(
                "chaos: seed {} (repeat with --seed {}); {:.0} % faults on all AWS traffic, {} + {} kills, S3 outage {:?}, log group deletion: {}",
                plan.seed,
                plan.seed,
                plan.fault_rate * 100.0,
                plan.agent_kills,
                plan.processor_kills,
                plan.s3_outage,
                plan.delete_log_group_of.as_deref().unwrap_or("none"),
            ));
            Some(runner)
        }
        None => None,
    };
    generate(
        options,
        &mut pipeline,
        &work,
        progress,
        &mut notes,
        chaos.as_mut(),
    )
    .await;

    let http = HttpClient::default();
    let operator_sqs = aws_sdk_sqs::Client::new(&provisioned.operator.config().await);
    progress.step("draining: agent → S3 → SNS → SQS → processor");
    let drain_started = Instant::now();
    let deadline = drain_started + options.drain_timeout;
    if !wait_for_agent_idle(&http, &mut pipeline, chaos.as_mut(), deadline).await {
        notes.push(format!(
            "the agent was not idle within the drain timeout ({:?}); stopped it anyway",
            options.drain_timeout
        ));
    }
    let agent_metrics = Metrics::scrape(&http, &pipeline.agent_listen).await;
    if let Some(runner) = chaos.as_mut() {
        runner.agent_stopped();
    }
    match pipeline.agent.terminate(STOP_GRACE).await {
        Some(status) if status.success() => {}
        other => notes.push(format!(
            "the agent did not stop cleanly ({other:?}): {}",
            log_tail(pipeline.agent.log_path(), LOG_TAIL_LINES)
        )),
    }
    quarantine_step(&binaries, &provisioned, &work, &mut notes).await;
    if !wait_for_empty_queue(
        &operator_sqs,
        &provisioned.central.queue.url,
        &mut pipeline,
        chaos.as_mut(),
        deadline,
    )
    .await
    {
        let depth = drain::queue_depth(&operator_sqs, &provisioned.central.queue.url).await;
        notes.push(format!(
            "the queue was not empty within the drain timeout (visible, in flight: {depth:?})"
        ));
    }
    let processor_metrics = match pipeline.processor_listen() {
        Some(listen) => Metrics::scrape(&http, listen).await,
        None => None,
    };
    if let ProcessorProcess::Lambda { stats, .. } = &pipeline.processor {
        use std::sync::atomic::Ordering::Relaxed;
        notes.push(format!(
            "lambda mode: {} invocations, {} batch item failures, {} failed invocations, {} messages deleted by the event source mapping",
            stats.invocations.load(Relaxed),
            stats.item_failures.load(Relaxed),
            stats.failed_invocations.load(Relaxed),
            stats.deleted.load(Relaxed)
        ));
    }
    pipeline.stop_processor().await;
    let drain_seconds = drain_started.elapsed().as_secs_f64();
    notes.push(format!("drained in {drain_seconds:.1} s"));
    metrics_notes(
        agent_metrics.as_ref(),
        processor_metrics.as_ref(),
        chaos.is_some(),
        &mut notes,
    );

    progress.step("verifying every destination against the generator's ledger");
    let deletion = chaos.as_ref().and_then(ChaosRunner::deletion);
    let mut summary =
        summarize(options, &provisioned, &pipeline, &binaries, &work, deletion).await?;
    summary.notes.extend(notes);
    if let Some(runner) = &chaos {
        let mut report = chaos_report(runner, options, &provisioned, &pipeline, &summary).await;
        report.drain_seconds = drain_seconds;
        summary.chaos = Some(report);
    }
    summary.inspection = inspection(options, &emulator, &provisioned, &work).await;
    summary.judge();
    drop(pipeline);
    Ok(summary)
}

/// The operator's quarantine step (`quarantine.rs`): releases lines of pods whose metadata never
/// reached the agent to their tenant while the processor still runs; a note says what it did.
async fn quarantine_step(
    binaries: &Binaries,
    provisioned: &Provisioned,
    work: &WorkDir,
    notes: &mut Vec<String>,
) {
    let released = crate::quarantine::release_all(
        &binaries.processor,
        &provisioned.operator,
        &provisioned.central.bucket,
        &work.logs,
    )
    .await;
    match released {
        Ok(pods) if pods.is_empty() => {}
        Ok(pods) => notes.push(format!(
            "quarantine: {} objects of {} pods whose metadata never reached the agent, released by \
             the operator step (`logrelay-processor quarantine release`): {}",
            pods.iter().map(|p| p.objects).sum::<u64>(),
            pods.len(),
            pods.iter()
                .map(|p| format!("{}/{}", p.namespace, p.pod))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Err(error) => notes.push(format!("quarantine step failed: {error:#}")),
    }
}

/// What the emulator made the provisioning do differently from AWS, as notes of the summary.
fn provisioning_notes(provisioned: &Provisioned, notes: &mut Vec<String>) {
    if !provisioned.central.moto_skipped.is_empty() {
        let skipped: Vec<&str> = provisioned
            .central
            .moto_skipped
            .values()
            .map(String::as_str)
            .collect();
        notes.push(format!(
            "moto's CloudFormation skipped {} and ignores the bucket's NotificationConfiguration: \
             the demo made the S3 → SNS notification and the SNS → SQS subscription through the SDK",
            skipped.join(", ")
        ));
    }
    if provisioned.iam_enforced {
        notes.push(
            "IAM enforced in the emulator (denied-tenant scenario): agent and processor act as an \
             operator user without the writer/central role hops (moto cannot evaluate their trust \
             for a user); the tenants' role policies were restated with Resource \"*\" (moto \
             cannot read or match the template's resource-scoped log group ARNs); the denied \
             tenant's role has an explicit Deny on logs:*"
                .into(),
        );
    }
}

/// The components' own counts from their last `/metrics` scrape, as notes of the summary
/// (`restarted`: chaos restarted the processor, so its counts start at its last restart).
fn metrics_notes(
    agent_metrics: Option<&Metrics>,
    processor_metrics: Option<&Metrics>,
    restarted: bool,
    notes: &mut Vec<String>,
) {
    if let Some(metrics) = agent_metrics {
        notes.push(format!(
            "agent (last run): {} lines read, {} objects stored, {} rotations followed",
            metrics.sum("logrelay_agent_lines_read_total"),
            metrics.sum("logrelay_agent_objects_stored_total"),
            metrics.sum("logrelay_agent_rotations_total"),
        ));
    }
    if let Some(metrics) = processor_metrics {
        let objects = |outcome: &str| {
            metrics.sum_where("logrelay_processor_objects_total", "outcome", outcome)
        };
        notes.push(format!(
            "processor{}: objects {} delivered, {} skipped as unwanted (desired_logs), {} duplicates skipped, \
             {} failed transiently (retried), {} failed permanently; {} events delivered; {} messages dead-lettered",
            if restarted {
                " (since its last restart)"
            } else {
                ""
            },
            objects("delivered"),
            objects("skipped_unwanted"),
            objects("skipped_duplicate"),
            objects("failed_transient"),
            objects("failed_permanent"),
            metrics.sum("logrelay_processor_events_delivered_total"),
            metrics.sum("logrelay_processor_messages_dead_lettered_total"),
        ));
    }
}

/// The chaos section: what the runner injected, the queue's settings as the run planned them,
/// and the duplicates the verification found.
async fn chaos_report(
    runner: &ChaosRunner,
    options: &DemoOptions,
    provisioned: &Provisioned,
    pipeline: &Pipeline,
    summary: &Summary,
) -> ChaosReport {
    let mut report = runner.report(pipeline);
    let planned = QueueSettings::for_run(options);
    let central_config = provisioned.operator.config().await;
    match inspect::queue_settings(&central_config, &provisioned.central.queue.url).await {
        Ok((visibility, max_receive_count)) => {
            report.visibility_timeout_seconds = visibility;
            report.max_receive_count = max_receive_count;
            if (visibility, max_receive_count)
                != (
                    planned.visibility_timeout_seconds,
                    planned.max_receive_count,
                )
            {
                report.errors.push(format!(
                    "the queue has visibility {visibility} s and maxReceiveCount {max_receive_count}, \
                     not the planned {} s and {}",
                    planned.visibility_timeout_seconds, planned.max_receive_count
                ));
            }
        }
        Err(error) => report
            .errors
            .push(format!("reading the queue's settings: {error:#}")),
    }
    report.duplicates = summary.destinations.iter().map(|d| d.duplicated).sum();
    report
}

/// The generation phase: waits for the generator to finish, kills and restarts the agent when
/// asked, and shows live counts.
async fn generate(
    options: &DemoOptions,
    pipeline: &mut Pipeline,
    work: &WorkDir,
    progress: &Progress,
    notes: &mut Vec<String>,
    mut chaos: Option<&mut ChaosRunner>,
) {
    let http = HttpClient::default();
    let seconds = options.duration.as_secs().max(1);
    progress.timed(seconds, "generating");
    let started = Instant::now();
    let mut kill_pending = options.kill_agent_after;
    let mut agent_dead_noted = false;
    let tick = if chaos.is_some() {
        CHAOS_TICK
    } else {
        GENERATION_TICK
    };
    loop {
        tokio::time::sleep(tick).await;
        let elapsed = started.elapsed();
        if let Some(after) = kill_pending.filter(|after| elapsed >= *after) {
            kill_pending = None;
            match pipeline.kill_and_restart_agent(&work.logs).await {
                Ok(()) => notes.push(format!(
                    "the agent was killed with SIGKILL after {} s of generation and restarted (it resumes from its checkpoints)",
                    after.as_secs()
                )),
                Err(error) => notes.push(format!("restarting the agent failed: {error:#}")),
            }
        }
        if let Some(runner) = chaos.as_deref_mut() {
            runner.tick(pipeline).await;
        } else if !agent_dead_noted && let Some(status) = pipeline.agent.try_status() {
            agent_dead_noted = true;
            notes.push(format!(
                "the agent exited during generation ({status}): {}",
                log_tail(pipeline.agent.log_path(), LOG_TAIL_LINES)
            ));
        }
        progress.update(
            elapsed.as_secs().min(seconds),
            live_counts(&http, pipeline).await,
        );
        if let Some(status) = pipeline.generator.try_status() {
            if !status.success() {
                notes.push(format!(
                    "the generator failed ({status}): {}",
                    log_tail(pipeline.generator.log_path(), LOG_TAIL_LINES)
                ));
            }
            break;
        }
        if elapsed > options.duration + GENERATOR_EXIT_SLACK {
            notes.push("the generator did not stop in time; terminated it".into());
            pipeline.generator.terminate(STOP_GRACE).await;
            break;
        }
    }
    if let Some(runner) = chaos {
        runner.finish(pipeline).await;
    }
}

/// The chaos schedule of the run, with the customer of the tenant whose log group is deleted.
async fn chaos_runner(
    options: &DemoOptions,
    provisioned: &Provisioned,
    work: &WorkDir,
) -> anyhow::Result<ChaosRunner> {
    let plan = options
        .chaos
        .clone()
        .context("a chaos runner needs a chaos plan")?;
    let schedule = Schedule::draw(&plan, options.duration)?;
    let target = match &plan.delete_log_group_of {
        Some(tenant) => {
            let onboarded = provisioned
                .tenants
                .iter()
                .find(|t| t.plan.id == *tenant)
                .with_context(|| format!("--delete-log-group {tenant}: no such tenant"))?;
            let customer = provisioned
                .operator
                .in_account(&onboarded.plan.account_id, CUSTOMER_ADMIN_ROLE)
                .await?;
            Some(DeletionTarget {
                tenant: tenant.clone(),
                group: onboarded.plan.log_group.clone(),
                customer: customer.config().await,
                archive: work
                    .root
                    .join("archive")
                    .join(format!("{tenant}-log-group.ndjson")),
            })
        }
        None => None,
    };
    Ok(ChaosRunner::new(plan, schedule, work.logs.clone(), target))
}

/// Waits for the agent to be idle; in chaos runs restarting it (and the processor) if it exits.
async fn wait_for_agent_idle(
    http: &HttpClient,
    pipeline: &mut Pipeline,
    mut chaos: Option<&mut ChaosRunner>,
    deadline: Instant,
) -> bool {
    loop {
        let slice = match chaos {
            Some(_) => (Instant::now() + SUPERVISE_EVERY).min(deadline),
            None => deadline,
        };
        let listen = pipeline.agent_listen.clone();
        if drain::wait_for_agent_idle(http, &listen, AGENT_BATCH_TIMEOUT * 2, slice).await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        if let Some(runner) = chaos.as_deref_mut() {
            runner.supervise(pipeline).await;
        }
    }
}

/// Waits for the queue to be empty; in chaos runs restarting the processor if it exits.
async fn wait_for_empty_queue(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    pipeline: &mut Pipeline,
    mut chaos: Option<&mut ChaosRunner>,
    deadline: Instant,
) -> bool {
    loop {
        let slice = match chaos {
            Some(_) => (Instant::now() + SUPERVISE_EVERY).min(deadline),
            None => deadline,
        };
        if drain::wait_for_empty_queue(sqs, queue_url, slice).await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        if let Some(runner) = chaos.as_deref_mut() {
            runner.supervise(pipeline).await;
        }
    }
}

/// `lines read … · objects … · delivered …` from the components' metrics.
async fn live_counts(http: &HttpClient, pipeline: &Pipeline) -> String {
    let mut parts = Vec::new();
    if let Some(agent) = Metrics::scrape(http, &pipeline.agent_listen).await {
        parts.push(format!(
            "agent: {} lines read, {} objects",
            agent.sum("logrelay_agent_lines_read_total"),
            agent.sum("logrelay_agent_objects_stored_total")
        ));
    }
    if let Some(listen) = pipeline.processor_listen()
        && let Some(processor) = Metrics::scrape(http, listen).await
    {
        parts.push(format!(
            "processor: {} events delivered",
            processor.sum("logrelay_processor_events_delivered_total")
        ));
    }
    parts.join(" · ")
}

/// Verifies every destination and gathers the rest of the summary.
async fn summarize(
    options: &DemoOptions,
    provisioned: &Provisioned,
    pipeline: &Pipeline,
    binaries: &Binaries,
    work: &WorkDir,
    deletion: Option<&Deletion>,
) -> anyhow::Result<Summary> {
    let ledger = Ledger::read(&work.ledger).context("reading the generator's ledger")?;
    let mut generated: BTreeMap<&str, u64> = BTreeMap::new();
    for source in &ledger.sources {
        *generated
            .entry(source.meta.customer_id.as_str())
            .or_default() += source.lines();
    }
    let generated_lines: u64 = generated.values().sum();
    let node = generator_stats(&log_tail(pipeline.generator.log_path(), 50));
    let generated_bytes = node.get("bytes").copied().unwrap_or(0);

    let (checks, latency_readers) = planned_checks(provisioned).await?;
    let mut latencies = BTreeMap::new();
    for (tenant, group, reader) in &latency_readers {
        if let Some(latency) = inspect::log_group_latency(&reader.config().await, group).await {
            latencies.insert(tenant.clone(), latency);
        }
    }
    let mut destinations = Vec::new();
    for (account, expect_nothing, check) in checks {
        let deleted = match (&check.tenant, &check.destination, deletion) {
            (Some(tenant), Destination::CloudWatch { group }, Some(d))
                if *tenant == d.tenant && *group == d.group =>
            {
                Some(d)
            }
            _ => None,
        };
        let result = match deleted {
            Some(deletion) => verify_deleted_group(&check, deletion, work).await,
            None => verify::run_check(&binaries.testgen, &work.ledger, check, &work.logs).await,
        };
        let tenant_generated = match &result.check.tenant {
            Some(tenant) => generated.get(tenant.as_str()).copied().unwrap_or(0),
            None => generated_lines,
        };
        let latency = match (&result.check.tenant, &result.check.destination) {
            (Some(tenant), Destination::CloudWatch { .. }) => latencies.get(tenant).copied(),
            _ => None,
        };
        let mut row = destination_row(result, account, tenant_generated, latency, expect_nothing);
        if deleted.is_some() {
            row.destination.push_str(" (archive + recreated)");
        }
        destinations.push(row);
    }

    let central_config = provisioned.operator.config().await;
    let buckets = bucket_rows(provisioned, &central_config).await?;
    let requests = request_rows(pipeline, generated_bytes);
    let dead_letters =
        inspect::dead_letters(&central_config, &provisioned.central.queue.dlq_url).await?;
    let per_tenant_objects =
        inspect::objects_per_tenant(&central_config, &provisioned.central.bucket).await?;
    let denied = denied_rows(provisioned, &per_tenant_objects, &dead_letters);
    Ok(Summary {
        duration_seconds: options.duration.as_secs(),
        rate: options.rate,
        processor_mode: match options.processor {
            ProcessorMode::Sqs => "sqs".into(),
            ProcessorMode::Lambda => "lambda".into(),
        },
        generated_lines,
        generated_bytes,
        destinations,
        buckets,
        requests,
        dead_letters,
        denied,
        notes: node_notes(&node),
        inspection: Inspection {
            endpoint: None,
            emulator_pid: None,
            work_dir: work.root.display().to_string(),
            commands: Vec::new(),
        },
        chaos: None,
        failures: Vec::new(),
    })
}

/// A destination to verify: its account, whether nothing may arrive there, and the check.
type PlannedCheck = (String, bool, Check);
/// Who reads a tenant's log group for the latency measurement: tenant, group, reader.
type LatencyReader = (String, String, Identity);

/// Every destination to verify (each tenant's log group and copy bucket, then the central
/// bucket), and the readers of the latency measurement.
async fn planned_checks(
    provisioned: &Provisioned,
) -> anyhow::Result<(Vec<PlannedCheck>, Vec<LatencyReader>)> {
    let operator = &provisioned.operator;
    let mut checks = Vec::new();
    let mut latency_readers = Vec::new();
    for tenant in &provisioned.tenants {
        let plan = &tenant.plan;
        let reader = operator.assume(&tenant.inspector_role_arn).await?;
        checks.push((
            plan.account_id.clone(),
            plan.denies_access,
            Check {
                tenant: Some(plan.id.clone()),
                destination: Destination::CloudWatch {
                    group: plan.log_group.clone(),
                },
                applications: plan.desired_logs.clone(),
                reader: reader.clone(),
            },
        ));
        if let Some(bucket) = &plan.s3_bucket {
            checks.push((
                plan.account_id.clone(),
                false,
                Check {
                    tenant: Some(plan.id.clone()),
                    destination: Destination::S3 {
                        bucket: bucket.clone(),
                        prefix: S3_COPY_PREFIX.to_owned(),
                    },
                    applications: plan.desired_logs.clone(),
                    reader: reader.clone(),
                },
            ));
        }
        latency_readers.push((plan.id.clone(), plan.log_group.clone(), reader));
    }
    checks.push((
        CENTRAL_ACCOUNT_ID.to_owned(),
        false,
        Check {
            tenant: None,
            destination: Destination::S3 {
                bucket: provisioned.central.bucket.clone(),
                prefix: String::new(),
            },
            applications: Vec::new(),
            reader: operator.clone(),
        },
    ));
    Ok((checks, latency_readers))
}

/// What the central bucket and each tenant's copy bucket hold.
async fn bucket_rows(
    provisioned: &Provisioned,
    central_config: &aws_config::SdkConfig,
) -> anyhow::Result<Vec<BucketRow>> {
    let mut buckets = vec![BucketRow {
        label: "central bucket".into(),
        bucket: provisioned.central.bucket.clone(),
        usage: inspect::bucket_usage(central_config, &provisioned.central.bucket).await?,
    }];
    for tenant in &provisioned.tenants {
        if let Some(bucket) = &tenant.plan.s3_bucket {
            let reader = provisioned
                .operator
                .assume(&tenant.inspector_role_arn)
                .await?;
            buckets.push(BucketRow {
                label: format!("{} copy bucket", tenant.plan.id),
                bucket: bucket.clone(),
                usage: inspect::bucket_usage(&reader.config().await, bucket).await?,
            });
        }
    }
    Ok(buckets)
}

/// The AWS requests each component made, per service and operation, also per generated GB.
fn request_rows(pipeline: &Pipeline, generated_bytes: u64) -> Vec<RequestRow> {
    let mut requests = Vec::new();
    for (component, counts) in [
        ("agent", pipeline.agent_proxy.counts()),
        ("processor", pipeline.processor_proxy.counts()),
    ] {
        for ((service, operation), n) in counts {
            requests.push(RequestRow {
                component: component.into(),
                service,
                operation,
                requests: n,
                per_gb: Summary::per_gb(n, generated_bytes),
            });
        }
    }
    requests
}

/// For each tenant whose role refuses the processor: its objects in the central bucket and how
/// many of them were dead-lettered.
fn denied_rows(
    provisioned: &Provisioned,
    per_tenant_objects: &BTreeMap<String, u64>,
    dead_letters: &inspect::DeadLetters,
) -> Vec<DeniedRow> {
    provisioned
        .tenants
        .iter()
        .filter(|t| t.plan.denies_access)
        .map(|t| DeniedRow {
            tenant: t.plan.id.clone(),
            objects_in_central: per_tenant_objects.get(&t.plan.id).copied().unwrap_or(0),
            objects_dead_lettered: dead_letters
                .objects_per_tenant
                .get(&t.plan.id)
                .copied()
                .unwrap_or(0),
        })
        .collect()
}

/// The fake node's counts (rotations, pods) as a note, when the generator reported them.
fn node_notes(node: &BTreeMap<String, u64>) -> Vec<String> {
    let mut notes = Vec::new();
    if !node.is_empty() {
        notes.push(format!(
            "fake node: {} rotations, {} rotated files gzipped, {} deleted; {} pods created, {} deleted, {} container restarts",
            node.get("rotations").copied().unwrap_or(0),
            node.get("compressed").copied().unwrap_or(0),
            node.get("deleted_files").copied().unwrap_or(0),
            node.get("pods_created").copied().unwrap_or(0),
            node.get("pods_deleted").copied().unwrap_or(0),
            node.get("restarts").copied().unwrap_or(0),
        ));
    }
    notes
}

/// Verifies the CloudWatch delivery of a tenant whose group was deleted: the archive taken before
/// the deletion plus the recreated group.
async fn verify_deleted_group(check: &Check, deletion: &Deletion, work: &WorkDir) -> CheckResult {
    let report = log_group::verify_with_archive(
        &work.ledger,
        &deletion.archive,
        &deletion.group,
        &check.reader.config().await,
        logrelay_testgen::verify::tally::Expectations {
            tenant: check.tenant.clone(),
            applications: check.applications.clone(),
        },
        &work.logs.join("verify.log"),
    )
    .await
    .map_err(|e| format!("{e:#}"));
    CheckResult {
        check: check.clone(),
        report,
    }
}

fn destination_row(
    result: CheckResult,
    account: String,
    generated: u64,
    latency: Option<inspect::Latency>,
    expect_nothing: bool,
) -> DestinationRow {
    let check = &result.check;
    let (totals, error) = match result.report {
        Ok(report) => (report.totals, None),
        Err(error) => (verify::Totals::default(), Some(error)),
    };
    DestinationRow {
        tenant: check.tenant.clone().unwrap_or_else(|| "*".into()),
        account,
        destination: check.destination.describe(),
        wants: if check.applications.is_empty() {
            "all".into()
        } else {
            check.applications.join(",")
        },
        generated,
        filtered: generated.saturating_sub(totals.expected),
        expected: totals.expected,
        delivered: totals.delivered,
        missing: totals.missing,
        duplicated: totals.duplicated,
        misrouted: totals.misrouted,
        unwanted: totals.unexpected,
        latency,
        expect_nothing,
        error,
    }
}

/// The `key=value` numbers of the generator's last progress line (`lines`, `bytes`,
/// `rotations`, `compressed`, `deleted_files`, `pods_created`, `pods_deleted`, `restarts`).
pub fn generator_stats(log: &str) -> BTreeMap<String, u64> {
    log.lines()
        .rev()
        .find(|line| line.contains("bytes="))
        .map(|line| {
            line.split_whitespace()
                .filter_map(|token| {
                    let (key, value) = token.split_once('=')?;
                    Some((key.to_owned(), value.parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Where to look afterwards; example commands when the emulator stays up.
async fn inspection(
    options: &DemoOptions,
    emulator: &Emulator,
    provisioned: &Provisioned,
    work: &WorkDir,
) -> Inspection {
    let mut inspection = Inspection {
        endpoint: None,
        emulator_pid: None,
        work_dir: work.root.display().to_string(),
        commands: Vec::new(),
    };
    if !options.keep {
        return inspection;
    }
    let url = emulator.url().to_owned();
    inspection.endpoint = Some(url.clone());
    inspection.emulator_pid = emulator.kept_pid();
    let central = &provisioned.central;
    let env = |identity: &Identity| -> String {
        identity
            .env(&url)
            .into_iter()
            .filter(|(k, _)| *k != "AWS_ENDPOINT_URL")
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let operator = env(&provisioned.operator);
    let commands = &mut inspection.commands;
    commands.push(format!("# central account {CENTRAL_ACCOUNT_ID}:"));
    commands.push(format!(
        "{operator} aws --endpoint-url {url} s3 ls s3://{}/ --recursive | head",
        central.bucket
    ));
    commands.push(format!(
        "{operator} aws --endpoint-url {url} dynamodb scan --table-name {}",
        central.tenant_table
    ));
    commands.push(format!(
        "{operator} aws --endpoint-url {url} sqs receive-message --queue-url {} --message-attribute-names All",
        central.queue.dlq_url
    ));
    for tenant in &provisioned.tenants {
        let Ok(reader) = provisioned
            .operator
            .assume(&tenant.inspector_role_arn)
            .await
        else {
            continue;
        };
        let reader = env(&reader);
        commands.push(format!(
            "# tenant {} (account {}), as its {INSPECTOR_ROLE} role:",
            tenant.plan.id, tenant.plan.account_id
        ));
        commands.push(format!(
            "{reader} aws --endpoint-url {url} logs filter-log-events --log-group-name {} --limit 5",
            tenant.plan.log_group
        ));
        if let Some(bucket) = &tenant.plan.s3_bucket {
            commands.push(format!(
                "{reader} aws --endpoint-url {url} s3 ls s3://{bucket}/{S3_COPY_PREFIX} --recursive | head"
            ));
        }
    }
    inspection
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_stats_come_from_the_last_progress_line() {
        let log = "logrelay-testgen pods: lines=10 bytes=900 elapsed=1.0s rate=10.0 lines/s 0.9 KiB/s rotations=1\n\
                   logrelay-testgen pods: lines=20 bytes=1800 elapsed=2.0s rate=10.0 lines/s 0.9 KiB/s rotations=3 restarts=1\n\
                   ledger written\n";
        let stats = generator_stats(log);
        assert_eq!(stats.get("lines"), Some(&20));
        assert_eq!(stats.get("bytes"), Some(&1800));
        assert_eq!(stats.get("restarts"), Some(&1));
        assert!(generator_stats("nothing").is_empty());
    }
}
