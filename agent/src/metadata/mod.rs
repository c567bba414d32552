//! Kubernetes metadata: which tenant and application own each line, and which lines are shipped.
//!
//! - [`watch`]: kube-rs watchers → reflector stores for this node's Pods and all Namespaces.
//! - [`derive`]: from Pod + Namespace to [`derive::PodMeta`] (tenant, application, labels, owner).
//! - [`select`]: the namespace selector and pod/container opt-outs.
//! - [`index`]: derived metadata by path UID, kept after deletion while still needed.
//! - [`persist`]: the cache file in the data directory (enriches pods gone before a restart).
//! - [`annotator`]: the pipeline stage between the sources and the batcher.
//! - [`config`]: flags. Metrics and logs: `internal_events::metadata`.
//!
//! [`Metadata::start`] ties them together. See `docs/agent-metadata.md`.

pub mod annotator;
pub mod config;
pub mod derive;
pub mod index;
pub mod persist;
pub mod select;
pub mod watch;

use crate::internal_events::metadata::{CacheLoaded, CacheWritten};
use annotator::Annotator;
use config::{KubeSource, MetadataConfig};
use index::PodIndex;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use watch::Watchers;

/// How often gone pods are collected and the gauges are updated: 10 s.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(10);

/// How soon the cache file is written after a pod is added or changes: 1 s (a crash loses at most
/// this much of new pods' metadata; a pod deleted while the agent is down is still known after a
/// restart only through the cache file). Changes within the delay share one write.
pub const CACHE_SAVE_DELAY: Duration = Duration::from_secs(1);

/// Why the metadata stage could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// No usable Kubernetes client configuration.
    #[error("no Kubernetes client configuration: {0}")]
    Config(String),
    /// The client could not be built from the configuration.
    #[error("could not build the Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

/// The running metadata stage: watchers, index and maintenance. Make an [`Annotator`] per
/// pipeline with [`Metadata::annotator`]; call [`Metadata::shutdown`] at the end (writes the cache).
#[derive(Debug)]
pub struct Metadata {
    index: Arc<PodIndex>,
    watchers: Arc<Watchers>,
    maintenance: JoinHandle<()>,
    config: MetadataConfig,
}

/// Builds the client configuration from `source`.
pub async fn kube_client(source: &KubeSource) -> Result<kube::Client, MetadataError> {
    let config = match source {
        KubeSource::Infer => kube::Config::infer()
            .await
            .map_err(|err| MetadataError::Config(err.to_string()))?,
        KubeSource::Kubeconfig(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|err| MetadataError::Config(format!("{}: {err}", path.display())))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|err| MetadataError::Config(format!("{}: {err}", path.display())))?
        }
    };
    Ok(kube::Client::try_from(config)?)
}

impl Metadata {
    /// Connects as `config.kube` says and starts (see [`Metadata::start_with_client`]).
    pub async fn start(config: MetadataConfig) -> Result<Self, MetadataError> {
        let client = kube_client(&config.kube).await?;
        Ok(Self::start_with_client(client, config))
    }

    /// Loads the cache file, starts the watchers and the maintenance task (call inside a Tokio
    /// runtime). Never waits for the API: lines of pods not known yet are held by the annotator.
    pub fn start_with_client(client: kube::Client, config: MetadataConfig) -> Self {
        let index = Arc::new(PodIndex::new(
            config.gone_retention,
            config.pods_root.clone(),
        ));
        if let Some(path) = &config.cache_path {
            match persist::load(path) {
                Ok(pods) => {
                    let loaded = index.load_gone(pods);
                    CacheLoaded {
                        pods: loaded,
                        error: None,
                    }
                    .emit();
                }
                Err(error) => CacheLoaded {
                    pods: 0,
                    error: Some(&error),
                }
                .emit(),
            }
        }
        let watchers = Arc::new(Watchers::spawn(client, config.watch.clone(), index.clone()));
        let maintenance = tokio::spawn(maintain(
            index.clone(),
            watchers.clone(),
            config.cache_path.clone(),
        ));
        Self {
            index,
            watchers,
            maintenance,
            config,
        }
    }

    /// A new annotator stage over this metadata.
    pub fn annotator(&self) -> Annotator {
        Annotator::new(self.index.clone(), self.config.annotator)
    }

    /// The index (for tests and diagnostics).
    pub fn index(&self) -> &Arc<PodIndex> {
        &self.index
    }

    /// Waits until the first lists of pods and namespaces completed (never needed for
    /// correctness; for readiness reporting and tests).
    pub async fn wait_until_ready(&self) {
        self.watchers.wait_until_ready().await;
    }

    /// Stops watching and writes the cache file.
    pub async fn shutdown(self) {
        self.watchers.stop();
        self.maintenance.abort();
        if let Some(path) = self.config.cache_path.clone() {
            save_cache(&self.index, path).await;
        }
    }
}

async fn maintain(index: Arc<PodIndex>, watchers: Arc<Watchers>, cache_path: Option<PathBuf>) {
    let mut ticker = tokio::time::interval(MAINTENANCE_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut generation = index.subscribe();
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                index.collect_garbage();
                index.size().emit(watchers.namespaces());
            }
            changed = generation.changed(), if cache_path.is_some() => {
                if changed.is_err() {
                    return;
                }
                // Changes of the next moment are written together.
                tokio::time::sleep(CACHE_SAVE_DELAY).await;
                generation.borrow_and_update();
            }
        }
        if let Some(path) = &cache_path
            && index.is_dirty()
        {
            save_cache(&index, path.clone()).await;
        }
    }
}

async fn save_cache(index: &Arc<PodIndex>, path: PathBuf) {
    let pods = index.take_snapshot();
    let count = pods.len();
    let result = tokio::task::spawn_blocking(move || persist::save(&path, pods)).await;
    match result {
        Ok(Ok(())) => CacheWritten {
            pods: count,
            error: None,
        }
        .emit(),
        Ok(Err(error)) => {
            index.mark_dirty();
            CacheWritten {
                pods: count,
                error: Some(&error),
            }
            .emit();
        }
        Err(error) => {
            index.mark_dirty();
            CacheWritten {
                pods: count,
                error: Some(&error),
            }
            .emit();
        }
    }
}
