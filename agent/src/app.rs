//! Runs the agent: loads checkpoints, builds the sink, starts the source (file tailer or stdin),
//! the delivery loop, the checkpoint saver and the HTTP server, and shuts them down in order.
//!
//! Shutdown (the `shutdown` token, cancelled on SIGTERM/SIGINT): the source stops reading; delivery
//! takes what the source already sent, seals every open batch and finishes uploads within the
//! grace period; the saver writes the final checkpoints; the server stops. With `--source stdin`
//! the end of input ends the run the same way (without a deadline).

use crate::batch::buffer::{BUFFER_DIR, DiskBuffer};
use crate::checkpoint::saver::{Saver, SharedAcks};
use crate::checkpoint::store::{CheckpointError, Loaded};
use crate::checkpoint::{CheckpointStore, FileRegistry};
use crate::config::{SourceKind, ValidConfig};
use crate::delivery::{Delivery, DeliveryConfig, DeliveryError, DeliveryOutcome};
use crate::internal_events::InternalEvent;
use crate::internal_events::batch::BufferOpened;
use crate::internal_events::checkpoint::{
    AgentWasDown, CheckpointFreshStart, CheckpointSaveFailed,
};
use crate::server::{self, ServerState};
use crate::sink::directory::DirectoryService;
use crate::sink::retry::RetryPolicy;
use crate::sink::s3::{S3Service, WriterRole};
use crate::sink::{ObjectService, SinkTarget, Uploader};
use crate::source_event::{SOURCE_CHANNEL_CAPACITY, SourceEvent};
use crate::stdin;
use crate::tail::{
    PodLogPath, PodMultiline, RecordContext, StartAt, TailError, Tailer, TailerConfig, TailerHandle,
};
use logrelay_common::aws::{self, AwsError};
use std::net::SocketAddr;
use tokio::io::AsyncBufRead;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Attempts to assume the S3 writer role at start when STS fails transiently (then the agent
/// exits and Kubernetes restarts it; nothing is read before credentials work).
const STARTUP_CREDENTIAL_ATTEMPTS: u32 = 5;

/// Backoff step between those attempts (1 s, 2 s, 3 s, 4 s: ~10 s in all).
const STARTUP_CREDENTIAL_BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);

/// The agent could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The checkpoint file could not be read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The directory sink could not be created.
    #[error("cannot create the sink directory {path}: {source}")]
    SinkDirectory {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The S3 writer role could not be assumed.
    #[error("cannot set up S3 credentials: {0}")]
    S3Credentials(#[from] AwsError),
    /// The HTTP server could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file tailer could not start or failed.
    #[error(transparent)]
    Tail(#[from] TailError),
    /// Delivery failed.
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    /// The disk buffer could not be prepared.
    #[error(transparent)]
    Buffer(#[from] crate::batch::buffer::BufferError),
    /// The Kubernetes metadata stage could not start.
    #[error(transparent)]
    Metadata(#[from] crate::metadata::MetadataError),
    /// A task of the agent panicked.
    #[error("agent task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOutcome {
    /// What delivery managed.
    pub delivery: DeliveryOutcome,
    /// Whether the final checkpoints were written.
    pub checkpoints_saved: bool,
}

impl RunOutcome {
    /// Whether everything read was stored and checkpointed.
    pub fn is_clean(&self) -> bool {
        self.delivery == DeliveryOutcome::Complete && self.checkpoints_saved
    }
}

/// Optional hooks for embedding and tests.
#[derive(Debug, Default)]
pub struct RunHooks {
    /// Receives the server's bound address once it listens.
    pub listening: Option<oneshot::Sender<SocketAddr>>,
}

/// The running source.
enum Source {
    Files(TailerHandle),
    Stdin(JoinHandle<Result<stdin::StdinSummary, stdin::StdinError>>),
}

/// Runs the agent until the input ends (stdin) or `shutdown` is cancelled and delivery is done.
/// `stdin_input` is read with `--source stdin` (the process's stdin in `main`).
pub async fn run<R>(
    config: ValidConfig,
    metrics: server::AgentMetrics,
    shutdown: CancellationToken,
    stdin_input: R,
    hooks: RunHooks,
) -> Result<RunOutcome, AppError>
where
    R: AsyncBufRead + Unpin + Send + 'static,
{
    let (store, loaded) = load_checkpoints(&config)?;
    let uploader = build_uploader(&config).await?;
    tracing::info!(
        sink = %config.sink,
        source = ?config.source,
        node = %config.node_name,
        pods_root = %config.pods_root.display(),
        "starting"
    );
    log_selection(&config);

    let mut state = ServerState::new(metrics, uploader.health());
    if config.source == SourceKind::Files {
        if !config.pods_root.is_dir() {
            tracing::warn!(
                pods_root = %config.pods_root.display(),
                "--pods-root (LOGRELAY_PODS_ROOT) is not a directory: nothing to read, and /readyz answers 503 until it exists"
            );
        }
        state = state.with_pods_root(config.pods_root.clone());
    }
    let server_stop = CancellationToken::new();
    let server = start_server(&config, &state, &server_stop, hooks).await?;

    let registry = FileRegistry::new();
    let acks = SharedAcks::default();
    let (sender, receiver) = mpsc::channel::<SourceEvent>(SOURCE_CHANNEL_CAPACITY);
    // Tailed lines pass through the metadata annotator (when on) on their way to delivery.
    let (receiver, metadata) = match (&config.metadata, config.source) {
        (Some(metadata_config), SourceKind::Files) => {
            let metadata = crate::metadata::Metadata::start(metadata_config.clone()).await?;
            let (annotated, receiver_out) = mpsc::channel::<SourceEvent>(SOURCE_CHANNEL_CAPACITY);
            let stage = tokio::spawn(metadata.annotator().run(receiver, annotated));
            (receiver_out, Some((metadata, stage)))
        }
        _ => (receiver, None),
    };
    let pod_multiline = metadata
        .as_ref()
        .map(|(m, _)| pod_multiline(m.index().clone()));
    let source = start_source(
        &config,
        &loaded,
        &registry,
        sender,
        stdin_input,
        pod_multiline,
    )?;

    let mut saver = Saver::new(store, loaded.checkpoints, acks.clone(), registry.clone());
    let saver_stop = CancellationToken::new();
    let saver_task = {
        let stop = saver_stop.clone();
        tokio::spawn(async move {
            saver.run(stop).await;
            saver
        })
    };

    let delivery_config = DeliveryConfig {
        limits: config.limits,
        node_name: config.node_name.clone(),
        compression: config.compression,
        upload_concurrency: config.upload_concurrency,
        shutdown_grace: config.shutdown_grace,
    };
    let buffer = open_buffer(&config)?;
    let delivery = tokio::spawn(
        Delivery::new(delivery_config, registry, acks, uploader, buffer)
            .run(receiver, shutdown.clone()),
    );
    state.set_started();
    tracing::info!("running");

    stop_in_order(
        Running {
            source,
            delivery,
            metadata,
            saver_task,
            saver_stop,
            server,
            server_stop,
        },
        shutdown,
    )
    .await
}

/// Opens the checkpoint store and loads it, reporting a fresh start and the previous run's end.
fn load_checkpoints(config: &ValidConfig) -> Result<(CheckpointStore, Loaded), AppError> {
    let store = CheckpointStore::open(&config.data_dir)?;
    let loaded = store.load()?;
    if let Some(error) = &loaded.fresh_start {
        CheckpointFreshStart {
            error,
            set_aside: loaded.set_aside.as_deref(),
        }
        .emit();
    }
    tracing::info!(
        checkpoints = loaded.checkpoints.len(),
        path = %store.path().display(),
        "checkpoints loaded"
    );
    if let Some(since) = loaded.saved_at {
        let seconds = (chrono::Utc::now() - since).num_milliseconds().max(0) as f64 / 1000.0;
        AgentWasDown { since, seconds }.emit();
    }
    Ok((store, loaded))
}

/// Prepares the disk buffer under the data directory, removing an earlier run's batches (their
/// lines were never confirmed, so they are read again).
fn open_buffer(config: &ValidConfig) -> Result<DiskBuffer, AppError> {
    let (buffer, leftovers) =
        DiskBuffer::open(config.data_dir.join(BUFFER_DIR), config.buffer_max_bytes)?;
    BufferOpened {
        dir: buffer.dir(),
        limit: buffer.limit(),
        leftover_files: leftovers.files,
        leftover_bytes: leftovers.bytes,
    }
    .emit();
    Ok(buffer)
}

/// Binds the HTTP server when `--listen` is set and starts serving.
async fn start_server(
    config: &ValidConfig,
    state: &ServerState,
    stop: &CancellationToken,
    hooks: RunHooks,
) -> Result<Option<JoinHandle<std::io::Result<()>>>, AppError> {
    let Some(addr) = config.listen else {
        return Ok(None);
    };
    let (bound, serve) = server::bind(addr, state.clone(), stop.clone())
        .await
        .map_err(|source| AppError::Listen { addr, source })?;
    tracing::info!(%bound, "serving /metrics, /healthz, /readyz");
    if let Some(listening) = hooks.listening {
        let _ = listening.send(bound);
    }
    Ok(Some(tokio::spawn(serve)))
}

/// Starts the file tailer (resuming from `loaded`) or the stdin reader, sending into `sender`.
fn start_source<R>(
    config: &ValidConfig,
    loaded: &Loaded,
    registry: &FileRegistry,
    sender: mpsc::Sender<SourceEvent>,
    stdin_input: R,
    pod_multiline: Option<PodMultiline>,
) -> Result<Source, AppError>
where
    R: AsyncBufRead + Unpin + Send + 'static,
{
    Ok(match config.source {
        SourceKind::Files => {
            let mut tailer_config = TailerConfig::new(
                config.pods_root.clone(),
                RecordContext {
                    cluster_id: config.cluster_id.clone(),
                    node_name: config.node_name.clone(),
                },
            );
            tailer_config.max_line_bytes = config.max_line_bytes;
            tailer_config.max_open_rotated_per_pod = config.max_open_rotated_per_pod;
            tailer_config.partial_flush_timeout = config.partial_flush_timeout;
            tailer_config.multiline = config.multiline.clone();
            tailer_config.multiline_timeout = config.multiline_timeout;
            tailer_config.pod_multiline = pod_multiline;
            tailer_config.previous_run_until = loaded.saved_at;
            // `--start-at end` is for a node's first start only: after an unusable checkpoint
            // file, files are read from their start (duplicates, not loss).
            tailer_config.start_at = if loaded.fresh_start.is_some() {
                StartAt::Beginning
            } else {
                config.start_at
            };
            let tailer = Tailer::new(
                tailer_config,
                loaded.checkpoints.clone(),
                registry.clone(),
                sender,
            );
            Source::Files(tailer.spawn()?)
        }
        SourceKind::Stdin => Source::Stdin(tokio::spawn(stdin::run(
            stdin_input,
            config.max_line_bytes,
            sender,
        ))),
    })
}

/// A pod's `logrelay.io/multiline` annotation, as the metadata index knows it.
fn pod_multiline(index: std::sync::Arc<crate::metadata::index::PodIndex>) -> PodMultiline {
    PodMultiline(std::sync::Arc::new(move |pod: &PodLogPath| {
        let uid = pod.pod_uid.as_deref()?;
        index
            .lookup(uid, &pod.namespace, &pod.pod_name)?
            .multiline
            .clone()
    }))
}

/// The metadata annotator's task.
type MetadataStage = JoinHandle<Result<(), crate::metadata::annotator::AnnotatorError>>;

/// The tasks of a running agent, in the order they stop.
struct Running {
    source: Source,
    delivery: JoinHandle<Result<DeliveryOutcome, DeliveryError>>,
    metadata: Option<(crate::metadata::Metadata, MetadataStage)>,
    saver_task: JoinHandle<Saver>,
    saver_stop: CancellationToken,
    server: Option<JoinHandle<std::io::Result<()>>>,
    server_stop: CancellationToken,
}

/// Stops the agent in order once `shutdown` is cancelled or the input ended: the source, then
/// delivery drains what it sent, the metadata stage, the final checkpoint save, the server.
async fn stop_in_order(
    running: Running,
    shutdown: CancellationToken,
) -> Result<RunOutcome, AppError> {
    let Running {
        source,
        delivery,
        metadata,
        saver_task,
        saver_stop,
        server,
        server_stop,
    } = running;
    // Stop the source when asked; delivery then drains what it sent.
    let source_done = tokio::spawn(stop_source_on(source, shutdown.clone()));
    let delivered = delivery.await;
    // Delivery is over (its receiver is dropped): a source still running ends now too.
    shutdown.cancel();
    match source_done.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(%error, "source failed"),
        Err(error) => tracing::error!(%error, "source task failed"),
    }
    if let Some((metadata, stage)) = metadata {
        match stage.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "metadata stage failed"),
            Err(error) => tracing::error!(%error, "metadata stage task failed"),
        }
        metadata.shutdown().await;
    }

    saver_stop.cancel();
    let mut saver = saver_task.await?;
    let checkpoints_saved = match saver.save_now().await {
        Ok(()) => true,
        Err(error) => {
            CheckpointSaveFailed { error: &error }.emit();
            false
        }
    };
    server_stop.cancel();
    if let Some(server) = server {
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "server ended with an error"),
            Err(error) => tracing::warn!(%error, "server task failed"),
        }
    }
    let delivery = delivered??;
    let outcome = RunOutcome {
        delivery,
        checkpoints_saved,
    };
    tracing::info!(?outcome, "stopped");
    Ok(outcome)
}

/// Waits for `shutdown`, stops the source and waits for it to end; returns when the source ended
/// on its own too (stdin at end of input).
async fn stop_source_on(source: Source, shutdown: CancellationToken) -> Result<(), AppError> {
    match source {
        Source::Files(handle) => {
            shutdown.cancelled().await;
            tracing::info!("stopping the file tailer");
            handle.stop().await?;
            Ok(())
        }
        Source::Stdin(mut task) => {
            tokio::select! {
                ended = &mut task => {
                    match ended? {
                        Ok(summary) => tracing::info!(lines = summary.lines, bytes = summary.bytes, "end of stdin"),
                        Err(error) => tracing::error!(%error, "stdin source stopped"),
                    }
                }
                () = shutdown.cancelled() => {
                    // Reading stdin cannot be interrupted otherwise; lines already sent are delivered.
                    task.abort();
                    tracing::info!("stopped reading stdin");
                }
            }
            Ok(())
        }
    }
}

/// Builds the uploader for the configured sink.
async fn build_uploader(config: &ValidConfig) -> Result<Uploader, AppError> {
    match &config.sink {
        SinkTarget::Directory { root } => {
            let service =
                DirectoryService::new(root).map_err(|source| AppError::SinkDirectory {
                    path: root.clone(),
                    source,
                })?;
            Ok(Uploader::new(
                ObjectService::Directory(service),
                RetryPolicy::default(),
                "",
            ))
        }
        SinkTarget::S3 { bucket, prefix } => {
            let base = aws::base_config(&config.aws).await;
            let role = config.writer_role_arn.as_ref().map(|arn| WriterRole {
                role_arn: arn.clone(),
                session_name: aws::session_name(&["logrelay-agent", &config.node_name]),
            });
            let mut attempt = 0;
            let service = loop {
                attempt += 1;
                match S3Service::connect(&base, role.as_ref(), bucket.clone(), config.s3.clone())
                    .await
                {
                    Ok(service) => break service,
                    Err(error) if error.is_retryable() && attempt < STARTUP_CREDENTIAL_ATTEMPTS => {
                        let wait = STARTUP_CREDENTIAL_BACKOFF * attempt;
                        tracing::warn!(%error, attempt, wait_s = wait.as_secs(), "cannot assume the S3 writer role yet; retrying");
                        tokio::time::sleep(wait).await;
                    }
                    Err(error) => return Err(error.into()),
                }
            };
            Ok(Uploader::new(
                ObjectService::S3(service),
                RetryPolicy::default(),
                prefix.clone(),
            ))
        }
    }
}

/// Says at start which pods' logs are shipped: the namespace selector in effect, or that without
/// Kubernetes metadata no selector applies.
fn log_selection(config: &ValidConfig) {
    match &config.metadata {
        Some(metadata) => tracing::info!(
            namespace_selector = %metadata.watch.rules.selection.namespace_selector,
            "shipping pods of the namespaces the selector matches (empty: every namespace), except pods labelled logrelay.io/exclude=true"
        ),
        None if config.source == SourceKind::Files => tracing::info!(
            pods_root = %config.pods_root.display(),
            "Kubernetes metadata off: every pod under the pods root is shipped, no namespace selector applies"
        ),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::testing::{decode, record};
    use crate::checkpoint::store::CHECKPOINT_FILE_NAME;
    use crate::config::AgentConfig;
    use clap::Parser;
    use logrelay_common::record::LogRecord;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    fn config(args: &[&str]) -> ValidConfig {
        let mut all = vec!["logrelay-agent", "--listen", "off"];
        all.extend_from_slice(args);
        AgentConfig::try_parse_from(all)
            .expect("flags parse")
            .validate()
            .expect("valid")
    }

    fn handle() -> server::AgentMetrics {
        server::SplitRecorder::default().handle()
    }

    fn objects(root: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten() {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    found.push(path);
                }
            }
        }
        found.sort();
        found
    }

    async fn stored(root: &Path) -> Vec<LogRecord> {
        let mut records = Vec::new();
        for object in objects(root) {
            records.extend(decode(&std::fs::read(object).expect("reads")).await);
        }
        records
    }

    #[tokio::test]
    async fn stdin_records_are_stored_and_the_run_ends_clean_at_end_of_input() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let sink = format!("file://{}", out.display());
        let data = dir.path().join("data");
        let config = config(&[
            "--source",
            "stdin",
            "--sink",
            &sink,
            "--data-dir",
            data.to_str().expect("utf-8"),
        ]);
        let mut input = Vec::new();
        for i in 0..500 {
            let pod = if i % 2 == 0 { "pod-a" } else { "pod-b" };
            serde_json::to_writer(&mut input, &record(pod, &format!("line {i}")))
                .expect("serializes");
            input.push(b'\n');
        }
        input.extend_from_slice(b"\n{\"message\":\"no partition\"}\n");
        let outcome = run(
            config,
            handle(),
            CancellationToken::new(),
            std::io::Cursor::new(input),
            RunHooks::default(),
        )
        .await
        .expect("runs");
        assert!(outcome.is_clean(), "{outcome:?}");
        let records = stored(&out).await;
        assert_eq!(records.len(), 501);
        let pod_a: Vec<_> = records
            .iter()
            .filter(|r| r.pod_name == "pod-a")
            .map(|r| r.message.clone())
            .collect();
        assert_eq!(
            pod_a,
            (0..500)
                .step_by(2)
                .map(|i| format!("line {i}"))
                .collect::<Vec<_>>()
        );
        let unknown = records
            .iter()
            .find(|r| r.message == "no partition")
            .expect("shipped, not dropped");
        assert_eq!(unknown.customer_id, crate::tail::path::UNKNOWN);
        assert!(
            objects(&out)
                .iter()
                .any(|p| p.starts_with(out.join("acme/c1/api/pod-a")))
        );
    }

    #[tokio::test]
    async fn tailed_file_is_stored_and_checkpointed_at_its_end_then_shutdown_is_clean() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pods = dir.path().join("pods");
        let container = pods.join("shop_web-1_0000-uid").join("app");
        std::fs::create_dir_all(&container).expect("creates");
        let log = container.join("0.log");
        let mut content = String::new();
        for i in 0..200 {
            content.push_str(&format!(
                "2024-01-01T00:00:{:02}.000000001Z stdout F hello {i}\n",
                i % 60
            ));
        }
        std::fs::write(&log, &content).expect("writes");
        let out = dir.path().join("out");
        let data = dir.path().join("data");
        let config = config(&[
            "--pods-root",
            pods.to_str().expect("utf-8"),
            "--sink",
            &format!("file://{}", out.display()),
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--batch-timeout",
            "1s",
        ]);
        let shutdown = CancellationToken::new();
        let agent = tokio::spawn(run(
            config,
            handle(),
            shutdown.clone(),
            tokio::io::empty(),
            RunHooks::default(),
        ));
        let checkpoint = data.join(CHECKPOINT_FILE_NAME);
        let expected_offset = content.len() as u64;
        let mut saved = false;
        for _ in 0..300 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let Ok(text) = std::fs::read_to_string(&checkpoint) else {
                continue;
            };
            let doc: serde_json::Value =
                serde_json::from_str(&text).expect("valid checkpoint file");
            if doc["files"]
                .as_array()
                .is_some_and(|f| f.iter().any(|e| e["offset"] == expected_offset))
            {
                saved = true;
                break;
            }
        }
        assert!(saved, "checkpoint reached the end of the file");
        shutdown.cancel();
        let outcome = agent.await.expect("joins").expect("runs");
        assert!(outcome.is_clean(), "{outcome:?}");
        let records = stored(&out).await;
        let messages: Vec<_> = records.iter().map(|r| r.message.clone()).collect();
        assert_eq!(
            messages,
            (0..200).map(|i| format!("hello {i}")).collect::<Vec<_>>()
        );
        assert_eq!(records[0].pod_name, "web-1");
        assert_eq!(records[0].cluster_id, "local");
    }
}
