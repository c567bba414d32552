//! The running pipeline: the fake node (`logrelay-testgen pods`), the fake Kubernetes API serving
//! the generator's objects, the agent, and the processor (SQS poller, or Lambda fed from the
//! queue), each AWS client behind a counting proxy (and, in chaos runs, behind that the
//! component's fault proxies). Starting, restarting and stopping them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use logrelay_testkit::fake_kube::FakeKube;
use logrelay_testkit::lambda_runtime_api::LambdaRuntimeApi;
use logrelay_testkit::rbac::RbacPolicy;
use tokio::process::Command;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::aws_proxy::CountingProxy;
use crate::chaos::faults::ComponentFaults;
use crate::child::ChildProcess;
use crate::emulator::free_port;
use crate::lambda_feeder::{self, FeederStats};
use crate::options::{DemoOptions, ProcessorMode};
use crate::paths::{Binaries, WorkDir};
use crate::provision::Provisioned;

/// The agent's `--batch-timeout` in the demo: objects leave within 2 s of their first line.
pub const AGENT_BATCH_TIMEOUT: Duration = Duration::from_secs(2);

/// `CLUSTER_ID` of the demo's agent.
pub const CLUSTER_ID: &str = "demo-cluster";

/// Node name of the fake node (generator `--node-name`, agent `--node-name`).
pub const NODE_NAME: &str = "node-1";

/// Pods (Deployments) per tenant namespace; the generator names their apps `api`, `web`, `worker`.
pub const PODS_PER_NAMESPACE: u32 = 3;

/// Containers per pod when the agent enriches lines from the Kubernetes API: the app's container
/// and a sidecar (`proxy`), so that a line's application must come from the pod's labels.
pub const CONTAINERS_PER_POD: u32 = 2;

/// Containers per pod when the agent does not watch the Kubernetes API: one, named after the
/// application, so the path-derived application (the container name) is the pod's application.
pub const CONTAINERS_PER_POD_WITHOUT_METADATA: u32 = 1;

/// How long the agent gets to open its watches on the fake Kubernetes API after it started.
pub const METADATA_WATCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The generator's rotation size (kubelet `containerLogMaxSize`): small, so every container
/// rotates several times a minute at the demo's rate.
pub const ROTATE_AT_BYTES: u64 = 64 * 1024;

/// Files per container (kubelet `containerLogMaxFiles`).
pub const MAX_FILES: u32 = 5;

/// Seconds between churn steps (a pod replaced, a container restarted).
pub const CHURN_INTERVAL_SECONDS: u32 = 10;

/// Seconds before a deleted pod's directory disappears (the agent must have read it by then).
pub const REMOVAL_DELAY_SECONDS: u32 = 30;

/// SIGTERM grace of the agent and the processor (both default to 25 s inside).
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// Bytes per generated line used to size the node's on-disk buffer in chaos runs, rounded up
/// from the demo's measured average (5.4 MiB for 12,000 lines ≈ 470 B, multi-KiB lines included).
pub const AVERAGE_LINE_BYTES: u64 = 500;

/// How much longer than the S3 outage the files of a container must last in chaos runs: the
/// agent's checkpoints cannot move during the outage, and a restarted agent re-reads from them.
pub const DISK_BUFFER_MARGIN: Duration = Duration::from_secs(60);

/// The node's log file settings of a run: rotation size (kubelet `containerLogMaxSize`) and how
/// long a deleted pod's directory stays.
///
/// The files on disk are the agent's buffer (docs/agent.md, "Backpressure"): while S3 fails the
/// checkpoints stay put, and an agent killed then re-reads from them. So in chaos runs the
/// retained files of a container (`MAX_FILES - 1` rotated ones) must cover the outage plus a
/// margin at the worst-case per-container rate (one container per pod), and deleted pods must
/// stay as long. Otherwise lines rotated away while the agent was down are lost — counted by the
/// agent as `lost_bytes_total`, and reported missing here.
pub fn node_file_settings(options: &DemoOptions) -> (u64, Duration) {
    let Some(plan) = &options.chaos else {
        return (
            ROTATE_AT_BYTES,
            Duration::from_secs(u64::from(REMOVAL_DELAY_SECONDS)),
        );
    };
    let containers = (options.tenants.len() as u64 * u64::from(PODS_PER_NAMESPACE)).max(1);
    let per_container_bytes_per_second =
        (u64::from(options.rate) * AVERAGE_LINE_BYTES).div_ceil(containers);
    let covered = (plan.s3_outage + DISK_BUFFER_MARGIN).as_secs();
    let rotate_at = (per_container_bytes_per_second * covered).div_ceil(u64::from(MAX_FILES - 1));
    let removal_delay = Duration::from_secs(u64::from(REMOVAL_DELAY_SECONDS))
        .max(plan.s3_outage + DISK_BUFFER_MARGIN);
    (rotate_at.max(ROTATE_AT_BYTES), removal_delay)
}

/// The processor as it runs.
pub enum ProcessorProcess {
    /// `logrelay-processor sqs`, with `/metrics` on `listen`.
    Sqs {
        /// The process.
        child: ChildProcess,
        /// `host:port` of `/metrics`.
        listen: String,
        /// How to start it again.
        command: ChildCommand,
    },
    /// `logrelay-processor lambda` fed by the demo.
    Lambda {
        /// The process.
        child: ChildProcess,
        /// The Runtime API emulator it polls.
        api: Arc<LambdaRuntimeApi>,
        /// The feeder task and its stop switch.
        feeder: JoinHandle<()>,
        /// Turns the feeder off.
        stop: watch::Sender<bool>,
        /// What the feeder did.
        stats: Arc<FeederStats>,
    },
}

/// Every component of a run.
pub struct Pipeline {
    /// The generator (exits by itself after the duration).
    pub generator: ChildProcess,
    /// The agent.
    pub agent: ChildProcess,
    /// `host:port` of the agent's `/metrics`.
    pub agent_listen: String,
    /// The processor.
    pub processor: ProcessorProcess,
    /// The fake Kubernetes API (serving the generator's objects).
    pub kube: FakeKube,
    /// Whether the agent watches the fake Kubernetes API (its metadata stage runs).
    pub metadata_active: bool,
    /// Counts the agent's AWS requests.
    pub agent_proxy: CountingProxy,
    /// Counts the processor's AWS requests.
    pub processor_proxy: CountingProxy,
    /// The agent's fault proxies (chaos runs).
    pub agent_faults: Option<ComponentFaults>,
    /// The processor's fault proxies (chaos runs).
    pub processor_faults: Option<ComponentFaults>,
    agent_command: ChildCommand,
}

/// What is needed to (re)start a component: binary, arguments, the whole environment.
#[derive(Debug, Clone)]
pub struct ChildCommand {
    binary: PathBuf,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
}

impl ChildCommand {
    fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command.args(&self.args).env_clear().envs(self.env.clone());
        command
    }
}

impl Pipeline {
    /// Starts the fake Kubernetes API, the processor and the agent, waits for the agent's watches
    /// on the API, then starts the generator (with one container per pod if the agent does not
    /// watch: then it cannot know a sidecar's application).
    pub async fn start(
        options: &DemoOptions,
        emulator_url: &str,
        provisioned: &Provisioned,
        binaries: &Binaries,
        work: &WorkDir,
    ) -> anyhow::Result<Self> {
        let kube = FakeKube::start()
            .await
            .context("start the fake Kubernetes API")?;
        // The agent talks to the fake API as its ServiceAccount, with the RBAC the shipped manifests grant it.
        let (rbac, _) =
            RbacPolicy::agent().context("render the agent's RBAC from k8s/agent/base")?;
        kube.enforce_rbac(rbac);
        kube.load_dir_hiding(&work.kube_objects, options.unlisted_deployment.clone())
            .context("serve the generator's Kubernetes objects")?;
        let kubeconfig = kube
            .kubeconfig_path()
            .context("write the fake API's kubeconfig")?;
        let (agent_faults, processor_faults) = match &options.chaos {
            Some(plan) => {
                let start =
                    || ComponentFaults::start(emulator_url, plan.fault_rate, &plan.fault_classes);
                (
                    Some(start().await.context("start the agent's fault proxies")?),
                    Some(
                        start()
                            .await
                            .context("start the processor's fault proxies")?,
                    ),
                )
            }
            None => (None, None),
        };
        let upstreams = |faults: &Option<ComponentFaults>| match faults {
            Some(faults) => (faults.url(), faults.routes()),
            None => (emulator_url.to_owned(), Default::default()),
        };
        let (upstream, routes) = upstreams(&agent_faults);
        let agent_proxy = CountingProxy::start_routed(&upstream, routes).await?;
        let (upstream, routes) = upstreams(&processor_faults);
        let processor_proxy = CountingProxy::start_routed(&upstream, routes).await?;

        let processor =
            start_processor(options, provisioned, binaries, work, &processor_proxy.url()).await?;
        let agent_listen = format!("127.0.0.1:{}", free_port()?);
        let agent_command = agent_command(
            provisioned,
            binaries,
            work,
            &agent_proxy.url(),
            &agent_listen,
            &kubeconfig,
        );
        let agent = ChildProcess::spawn("agent", agent_command.command(), &work.logs)?;
        let metadata_active = kube.wait_for_watches(1, METADATA_WATCH_TIMEOUT).await;
        let containers = if metadata_active {
            CONTAINERS_PER_POD
        } else {
            CONTAINERS_PER_POD_WITHOUT_METADATA
        };
        let generator = ChildProcess::spawn(
            "generator",
            generator_command(options, binaries, work, containers),
            &work.logs,
        )?;
        Ok(Self {
            generator,
            agent,
            agent_listen,
            processor,
            kube,
            metadata_active,
            agent_proxy,
            processor_proxy,
            agent_faults,
            processor_faults,
            agent_command,
        })
    }

    /// SIGKILLs the agent (its whole group) and starts it again with the same flags; it resumes
    /// from its checkpoints.
    pub async fn kill_and_restart_agent(&mut self, logs: &std::path::Path) -> anyhow::Result<()> {
        self.agent.kill().await;
        tracing::info!("agent killed with SIGKILL; restarting it");
        self.agent = ChildProcess::spawn("agent", self.agent_command.command(), logs)?;
        Ok(())
    }

    /// SIGKILLs the processor (SQS mode) and starts it again with the same environment; the
    /// messages it held come back after their visibility timeout.
    pub async fn kill_and_restart_processor(
        &mut self,
        logs: &std::path::Path,
    ) -> anyhow::Result<()> {
        match &mut self.processor {
            ProcessorProcess::Sqs { child, command, .. } => {
                child.kill().await;
                tracing::info!("processor killed with SIGKILL; restarting it");
                *child = ChildProcess::spawn("processor", command.command(), logs)?;
                Ok(())
            }
            ProcessorProcess::Lambda { .. } => {
                anyhow::bail!("the processor is killed and restarted only in sqs mode")
            }
        }
    }

    /// The processor process (either mode).
    pub fn processor_child(&mut self) -> &mut ChildProcess {
        match &mut self.processor {
            ProcessorProcess::Sqs { child, .. } | ProcessorProcess::Lambda { child, .. } => child,
        }
    }

    /// The processor's `/metrics` address (SQS mode only).
    pub fn processor_listen(&self) -> Option<&str> {
        match &self.processor {
            ProcessorProcess::Sqs { listen, .. } => Some(listen),
            ProcessorProcess::Lambda { .. } => None,
        }
    }

    /// Stops the processor: SIGTERM (SQS mode drains in-flight messages), or the feeder and then
    /// the function (Lambda mode).
    pub async fn stop_processor(&mut self) {
        match &mut self.processor {
            ProcessorProcess::Sqs { child, .. } => {
                child.terminate(STOP_GRACE).await;
            }
            ProcessorProcess::Lambda {
                child,
                feeder,
                stop,
                ..
            } => {
                let _ = stop.send(true);
                let _ = tokio::time::timeout(STOP_GRACE, feeder).await;
                child.terminate(STOP_GRACE).await;
            }
        }
    }
}

/// `logrelay-testgen pods` for the tenants' namespaces, with rotation, churn, objects and ledger.
fn generator_command(
    options: &DemoOptions,
    binaries: &Binaries,
    work: &WorkDir,
    containers_per_pod: u32,
) -> Command {
    let tenants: Vec<&str> = options.tenants.iter().map(|t| t.id.as_str()).collect();
    let (rotate_at, removal_delay) = node_file_settings(options);
    let mut command = Command::new(&binaries.testgen);
    command
        .arg("pods")
        .arg("--root")
        .arg(&work.pods)
        .args(["--tenants", &tenants.join(",")])
        .args(["--pods-per-namespace", &PODS_PER_NAMESPACE.to_string()])
        .args(["--containers-per-pod", &containers_per_pod.to_string()])
        .args(["--rate", &options.rate.to_string()])
        .args(["--duration", &options.duration.as_secs().max(1).to_string()])
        .args(["--max-size", &rotate_at.to_string()])
        .args(["--max-files", &MAX_FILES.to_string()])
        .args(["--churn-interval", &CHURN_INTERVAL_SECONDS.to_string()])
        .args(["--removal-delay", &removal_delay.as_secs().to_string()])
        .arg("--kube-objects")
        .arg(&work.kube_objects)
        .args(["--node-name", NODE_NAME])
        .arg("--ledger")
        .arg(&work.ledger)
        .args(["--stats-interval", "5"]);
    if let Some(seed) = options.seed {
        command.args(["--seed", &seed.to_string()]);
    }
    command
}

/// The agent: files source, S3 sink into the central bucket, short batch timeout, metadata from
/// the fake Kubernetes API, AWS through its counting proxy.
fn agent_command(
    provisioned: &Provisioned,
    binaries: &Binaries,
    work: &WorkDir,
    aws_endpoint: &str,
    listen: &str,
    kubeconfig: &std::path::Path,
) -> ChildCommand {
    let mut args: Vec<String> = vec![
        "--source".into(),
        "files".into(),
        "--pods-root".into(),
        work.pods.display().to_string(),
        "--s3-bucket-name".into(),
        provisioned.central.bucket.clone(),
        "--cluster-id".into(),
        CLUSTER_ID.into(),
        "--node-name".into(),
        NODE_NAME.into(),
        "--data-dir".into(),
        work.agent_data.display().to_string(),
        "--batch-timeout".into(),
        format!("{}ms", AGENT_BATCH_TIMEOUT.as_millis()),
        "--listen".into(),
        listen.into(),
        "--metadata".into(),
        "on".into(),
        "--kubeconfig".into(),
        kubeconfig.display().to_string(),
    ];
    // With IAM enforced the operator user writes directly: moto cannot evaluate the writer
    // role's web-identity trust for it.
    if let (false, Some(role)) = (
        provisioned.iam_enforced,
        &provisioned.central.s3_writer_role_arn,
    ) {
        args.push("--s3-writer-role-arn".into());
        args.push(role.clone());
    }
    let mut env = provisioned.operator.env(aws_endpoint);
    env.push(("RUST_LOG", "info".into()));
    if let Some(path) = std::env::var_os("PATH") {
        env.push(("PATH", path.to_string_lossy().into_owned()));
    }
    ChildCommand {
        binary: binaries.agent.clone(),
        args,
        env,
    }
}

/// The processor's environment (the variable names docs/processor.md lists).
fn processor_env(
    options: &DemoOptions,
    provisioned: &Provisioned,
    aws_endpoint: &str,
) -> Vec<(&'static str, String)> {
    let central = &provisioned.central;
    let mut env = provisioned.operator.env(aws_endpoint);
    if options
        .chaos
        .as_ref()
        .is_none_or(|plan| plan.progress_table)
    {
        env.push(("DELIVERY_PROGRESS_TABLE", central.progress_table.clone()));
    }
    if let Some(lease) = options.chaos.as_ref().and_then(|plan| plan.progress_lease) {
        env.push((
            "LOGRELAY_PROGRESS_LEASE_SECONDS",
            lease.as_secs().to_string(),
        ));
    }
    env.extend([
        ("TENANT_CONFIG_TABLE", central.tenant_table.clone()),
        ("DLQ_URL", central.queue.dlq_url.clone()),
        ("LOGRELAY_LOG_FORMAT", "json".into()),
        ("RUST_LOG", "info".into()),
    ]);
    // With IAM enforced the operator user assumes tenant roles itself: moto cannot evaluate the
    // central role's trust (aws:PrincipalArn of processor roles) for a user.
    if !provisioned.iam_enforced {
        env.push((
            "CENTRAL_LOG_DISTRIBUTION_ROLE_ARN",
            central.central_role_arn.clone(),
        ));
    }
    if let Some(path) = std::env::var_os("PATH") {
        env.push(("PATH", path.to_string_lossy().into_owned()));
    }
    env
}

async fn start_processor(
    options: &DemoOptions,
    provisioned: &Provisioned,
    binaries: &Binaries,
    work: &WorkDir,
    aws_endpoint: &str,
) -> anyhow::Result<ProcessorProcess> {
    let mut env = processor_env(options, provisioned, aws_endpoint);
    let mut command = Command::new(&binaries.processor);
    command.env_clear();
    match options.processor {
        ProcessorMode::Sqs => {
            let listen = format!("127.0.0.1:{}", free_port()?);
            env.push(("SQS_QUEUE_URL", provisioned.central.queue.url.clone()));
            env.push(("LOGRELAY_LISTEN", listen.clone()));
            let command = ChildCommand {
                binary: binaries.processor.clone(),
                args: vec!["sqs".into()],
                env,
            };
            let child = ChildProcess::spawn("processor", command.command(), &work.logs)?;
            Ok(ProcessorProcess::Sqs {
                child,
                listen,
                command,
            })
        }
        ProcessorMode::Lambda => {
            let api = Arc::new(
                LambdaRuntimeApi::start()
                    .await
                    .context("start the Lambda Runtime API emulator")?,
            );
            env.extend(api.runtime_env());
            command.arg("lambda").envs(env);
            let child = ChildProcess::spawn("processor", command, &work.logs)?;
            anyhow::ensure!(
                api.wait_for_runtime(Duration::from_secs(30)).await,
                "the processor in lambda mode never asked for an invocation (see {})",
                child.log_path().display()
            );
            let sqs = aws_sdk_sqs::Client::new(&provisioned.operator.config().await);
            let stats = Arc::new(FeederStats::default());
            let (stop, stop_rx) = watch::channel(false);
            let feeder = tokio::spawn(lambda_feeder::run(
                api.clone(),
                sqs,
                provisioned.central.queue.url.clone(),
                provisioned.central.queue.arn.clone(),
                stats.clone(),
                stop_rx,
            ));
            Ok(ProcessorProcess::Lambda {
                child,
                api,
                feeder,
                stop,
                stats,
            })
        }
    }
}
