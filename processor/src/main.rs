//! `logrelay-processor`: parses flags, builds the core [`Processor`] and runs the chosen intake.
//! Exit codes are in `exit.rs` and `docs/processor.md`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use logrelay_common::aws::{AwsOptions, base_config, s3_client};
use logrelay_common::check_config;
use logrelay_common::http_endpoint;
use logrelay_processor::config::{Command, Mode, ProcessorConfig, RunArgs};
use logrelay_processor::exit::{EXIT_CONFIG, EXIT_FAILURES, EXIT_OK, EXIT_RUNTIME};
use logrelay_processor::intake::dead_letter::DeadLetterQueue;
use logrelay_processor::intake::lambda::LambdaIntake;
use logrelay_processor::intake::replay::{ReplayError, ReplayRequest};
use logrelay_processor::intake::sqs::{SqsIntake, SqsSettings};
use logrelay_processor::intake::{lambda, manual, replay, signal, sqs};
use logrelay_processor::process::{Processor, ProcessorSettings};
use logrelay_processor::telemetry::{emf, prometheus};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if check_config::requested(&args) {
        let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
        let report = logrelay_processor::config::check_config_report(&args, in_lambda);
        report.print();
        return ExitCode::from(if report.is_ok() { EXIT_OK } else { EXIT_CONFIG });
    }
    let config = ProcessorConfig::try_parse_args(&args).unwrap_or_else(|error| error.exit());
    if let Some(Command::Quarantine(args)) = &config.command {
        return ExitCode::from(logrelay_processor::quarantine::main(args));
    }
    if let Some(Command::Tenants(args)) = &config.command {
        return ExitCode::from(logrelay_processor::admin::main(config.log_format, args));
    }
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    let (mode, run_args) = match config.validate(in_lambda) {
        Ok(mode) => (
            mode,
            config.run_args().unwrap_or_else(|| config.run.clone()),
        ),
        Err(error) => {
            eprintln!("logrelay-processor: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Mode::Replay(args) = &mode
        && args.force
        && !args.dry_run
    {
        let stdin = std::io::stdin();
        let terminal = stdin.is_terminal();
        let answer = replay::confirm_force(
            args.yes,
            terminal,
            &mut stdin.lock(),
            &mut std::io::stderr(),
        );
        if let Some(refusal) = answer.refusal() {
            eprintln!("logrelay-processor: {refusal}");
            return ExitCode::from(EXIT_CONFIG);
        }
    }
    logrelay_common::logging::init(config.effective_log_format(&mode));
    for warning in run_args.deprecation_warnings() {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("logrelay-processor: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    match runtime.block_on(run(run_args, mode)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            // Once, in the chosen log format (a second plain line would break JSON logs).
            tracing::error!(error = format!("{error:#}"), "fatal error");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// Runs the intake of `mode`; returns the exit code.
async fn run(config: RunArgs, mode: Mode) -> anyhow::Result<u8> {
    let aws = base_config(&AwsOptions {
        region: config.delivery.table.aws.region.clone(),
        ..AwsOptions::default()
    })
    .await;
    let dead_letter = config
        .queue
        .dlq_url
        .as_ref()
        .map(|url| DeadLetterQueue::new(aws_sdk_sqs::Client::new(&aws), url));
    match &mode {
        Mode::Sqs { queue_url } => {
            tracing::info!(mode = mode.name(), queue_url, "logrelay-processor starting");
        }
        _ => tracing::info!(mode = mode.name(), "logrelay-processor starting"),
    }
    match mode {
        Mode::Lambda => {
            let (recorder, metrics) = emf::emf_recorder(&config.lambda.metrics_namespace);
            metrics::set_global_recorder(recorder)
                .map_err(|e| anyhow::anyhow!("cannot install metrics: {e}"))?;
            let processor = Arc::new(build_processor(&config, aws, false)?);
            processor.check_tenant_table().await?;
            LambdaIntake::new(processor)
                .with_dead_letter_queue(dead_letter)
                .with_max_concurrency(
                    config
                        .delivery
                        .max_concurrency
                        .unwrap_or(lambda::DEFAULT_MAX_CONCURRENCY),
                )
                .with_metrics(metrics)
                .run()
                .await
                .map_err(|e| anyhow::anyhow!("Lambda runtime failed: {e}"))?;
            Ok(EXIT_OK)
        }
        Mode::Sqs { queue_url } => {
            let handle = prometheus::install()?;
            let health = prometheus::Health::new();
            let listen = config.listen();
            let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
            let (_, serve) = http_endpoint::bind(listen, handle, health.clone(), async {
                let _ = server_stopped.await;
            })
            .await
            .with_context(|| format!("cannot listen on {listen} for /metrics"))?;
            let server = tokio::spawn(serve);
            let processor = Arc::new(build_processor(&config, aws.clone(), false)?);
            processor.check_tenant_table().await?;
            let mut settings = SqsSettings::new(queue_url);
            settings.max_concurrency = config
                .delivery
                .max_concurrency
                .unwrap_or(sqs::DEFAULT_MAX_CONCURRENCY);
            settings.shutdown_grace = config.shutdown_grace();
            let shutdown = {
                let health = health.clone();
                async move {
                    signal::termination().await;
                    health.set_draining();
                }
            };
            let ready = health.clone();
            let result = SqsIntake::new(aws_sdk_sqs::Client::new(&aws), processor, settings)
                .with_dead_letter_queue(dead_letter)
                .on_polling(move || ready.set_ready())
                .run(shutdown)
                .await;
            let _ = stop_server.send(());
            let _ = server.await;
            result?;
            Ok(EXIT_OK)
        }
        Mode::Manual => {
            let processor = build_processor(&config, aws, false)?;
            let concurrency = config
                .delivery
                .max_concurrency
                .unwrap_or(lambda::DEFAULT_MAX_CONCURRENCY);
            let tally = manual::run(
                &processor,
                tokio::io::stdin(),
                concurrency,
                &mut std::io::stderr(),
            )
            .await?;
            Ok(if tally.failures() > 0 {
                EXIT_FAILURES
            } else {
                EXIT_OK
            })
        }
        Mode::Replay(args) => {
            let processor = build_processor(&config, aws.clone(), args.force)?;
            let request = ReplayRequest {
                bucket: args.bucket,
                key_prefix: config.delivery.key_prefix.clone(),
                tenant: args.tenant,
                cluster: args.cluster,
                application: args.application,
                since: args.since,
                until: args.until,
                time_basis: args.time_basis,
                max_concurrency: config
                    .delivery
                    .max_concurrency
                    .unwrap_or(replay::DEFAULT_MAX_CONCURRENCY),
                dry_run: args.dry_run,
                force: args.force,
            };
            match replay::run(
                &s3_client(&aws),
                &processor,
                &request,
                &mut std::io::stderr(),
            )
            .await
            {
                Ok(summary) => Ok(if summary.failures() > 0 {
                    EXIT_FAILURES
                } else {
                    EXIT_OK
                }),
                Err(error @ ReplayError::InvalidRequest(_)) => {
                    eprintln!("logrelay-processor: {error}");
                    Ok(EXIT_CONFIG)
                }
                Err(error) => Err(error.into()),
            }
        }
    }
}

/// The core, from the validated configuration; `force_redelivery` for `replay --force` only.
fn build_processor(
    config: &RunArgs,
    aws: aws_config::SdkConfig,
    force_redelivery: bool,
) -> anyhow::Result<Processor> {
    let delivery = &config.delivery;
    let mut settings = ProcessorSettings::new(aws, &delivery.table.tenant_config_table);
    settings.force_redelivery = force_redelivery;
    settings.delivery_progress_table = delivery.delivery_progress_table.clone();
    settings.central_role_arn = delivery.chain.central.central_role_arn.clone();
    settings.default_external_id = delivery.chain.default_external_id.clone();
    settings.key_prefix = delivery.key_prefix.clone();
    settings.central_bucket = delivery
        .central_bucket
        .clone()
        .filter(|bucket| !bucket.is_empty());
    settings.logs_endpoint_url = delivery.chain.logs_endpoint_url.clone();
    settings.cluster_writers = delivery.cluster_writers.clone().unwrap_or_default();
    if let Some(size) = config.put_log_events_max_events() {
        settings.limits.max_batch_events = size;
    }
    if let Some(attempts) = delivery.retry_attempts {
        settings.limits.retry.attempts = attempts;
    }
    if let Some(lease) = config.progress_lease() {
        settings.limits.progress_lease = lease;
    }
    Processor::new(settings).context("invalid processor settings")
}
