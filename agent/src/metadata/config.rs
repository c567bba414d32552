//! Flags of the metadata stage ([`MetadataArgs`], flattened into the agent's config) and their
//! validated form ([`MetadataConfig`]).

use super::annotator::AnnotatorConfig;
use super::derive::{
    CUSTOMER_ID_KEY, DEFAULT_APPLICATION_LABELS, DEFAULT_LABEL_ALLOWLIST, DeriveRules, KeyAllowList,
};
use super::index::DEFAULT_GONE_RETENTION;
use super::persist::CACHE_FILE_NAME;
use super::select::{DEFAULT_NAMESPACE_SELECTOR, LabelSelector, SelectionRules};
use super::watch::WatchSettings;
use crate::config::error::{ConfigError, invalid};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest `--metadata-wait`: 5 minutes (held lines cost memory and delay delivery).
pub const MAX_METADATA_WAIT: Duration = Duration::from_secs(300);

/// Environment variable Kubernetes sets in every pod; its presence means "running in a cluster".
pub const IN_CLUSTER_ENV: &str = "KUBERNETES_SERVICE_HOST";

/// Whether lines are enriched from the Kubernetes API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetadataMode {
    /// On when running in a cluster (`KUBERNETES_SERVICE_HOST`) or a kubeconfig is given.
    Auto,
    /// Always on (fails at start without a usable kube config).
    On,
    /// Off: records carry path-derived fields only (`customer_id` = namespace).
    Off,
}

/// Flags of the metadata stage.
#[derive(Debug, Clone, Args)]
pub struct MetadataArgs {
    /// Enrich lines from the Kubernetes API: auto (in a cluster or with a kubeconfig), on, off.
    #[arg(
        long = "metadata",
        env = "LOGRELAY_METADATA",
        value_enum,
        default_value = "auto"
    )]
    pub metadata: MetadataMode,
    /// Kubeconfig to reach the API with; default: in-cluster service account, then `KUBECONFIG`.
    #[arg(long, env = "LOGRELAY_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// How long a line of a pod not known yet waits for its metadata before it is shipped with
    /// path-derived fields and the `logrelay_metadata_missing` marker (e.g. `5s`, `500ms`).
    #[arg(long, env = "LOGRELAY_METADATA_WAIT", default_value = "5s", value_parser = logrelay_common::units::parse_duration)]
    pub metadata_wait: Duration,
    /// Label selector of the namespaces whose pods are shipped (default: all but kube-system,
    /// kube-public, kube-node-lease); empty = all namespaces.
    #[arg(long, env = "LOGRELAY_NAMESPACE_SELECTOR", default_value = DEFAULT_NAMESPACE_SELECTOR)]
    pub namespace_selector: String,
    /// Pod labels copied into records, comma-separated (`prefix/*` matches a prefix).
    #[arg(long, env = "LOGRELAY_LABEL_ALLOWLIST", default_value_t = DEFAULT_LABEL_ALLOWLIST.join(","))]
    pub label_allowlist: String,
    /// Pod annotations copied into records, comma-separated (`prefix/*` matches a prefix).
    #[arg(long, env = "LOGRELAY_ANNOTATION_ALLOWLIST", default_value = "")]
    pub annotation_allowlist: String,
    /// Let a pod's annotation (`--customer-id-annotation`) name its tenant. Off by default:
    /// whoever can create a pod could otherwise choose any tenant for its logs.
    #[arg(long, env = "LOGRELAY_CUSTOMER_ID_FROM_ANNOTATION", default_value_t = false, action = clap::ArgAction::Set)]
    pub customer_id_from_annotation: bool,
    /// Pod annotation naming the tenant, consulted first when `--customer-id-from-annotation=true`
    /// (empty = not consulted).
    #[arg(long, env = "LOGRELAY_CUSTOMER_ID_ANNOTATION", default_value = CUSTOMER_ID_KEY)]
    pub customer_id_annotation: String,
    /// Namespace label naming the tenant (consulted second; empty = not consulted; then the
    /// namespace name is used).
    #[arg(long, env = "LOGRELAY_CUSTOMER_ID_NAMESPACE_LABEL", default_value = CUSTOMER_ID_KEY)]
    pub customer_id_namespace_label: String,
    /// Pod labels naming the application, in order, comma-separated (then the owning workload,
    /// then the container name).
    #[arg(long, env = "LOGRELAY_APPLICATION_LABELS", default_value_t = DEFAULT_APPLICATION_LABELS.join(","))]
    pub application_labels: String,
    /// List pods and namespaces from the apiserver's watch cache (`resourceVersion=0`): cheaper
    /// for the apiserver, possibly a little stale (the watch that follows catches up).
    #[arg(long, env = "LOGRELAY_METADATA_LIST_FROM_CACHE", default_value_t = true, action = clap::ArgAction::Set)]
    pub metadata_list_from_cache: bool,
}

/// Where the Kubernetes client configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeSource {
    /// `kube::Config::infer()`: `KUBECONFIG` / `~/.kube/config`, then the in-cluster service account.
    Infer,
    /// This kubeconfig file.
    Kubeconfig(PathBuf),
}

/// The validated settings of the metadata stage.
#[derive(Debug, Clone)]
pub struct MetadataConfig {
    /// How to reach the API.
    pub kube: KubeSource,
    /// What to watch and how to derive.
    pub watch: WatchSettings,
    /// Waiting and holding limits.
    pub annotator: AnnotatorConfig,
    /// The cache file (`None`: not persisted).
    pub cache_path: Option<PathBuf>,
    /// The pod log tree, whose pod directories keep gone pods' metadata alive.
    pub pods_root: Option<PathBuf>,
    /// How long gone pods are kept at least.
    pub gone_retention: Duration,
}

impl MetadataConfig {
    /// Settings with every default, for `node_name`, persisting into `data_dir`.
    pub fn new(
        kube: KubeSource,
        node_name: &str,
        data_dir: &Path,
        pods_root: Option<PathBuf>,
    ) -> Self {
        Self {
            kube,
            watch: WatchSettings {
                node_name: node_name.to_owned(),
                list_from_cache: true,
                rules: DeriveRules::default(),
            },
            annotator: AnnotatorConfig::default(),
            cache_path: Some(data_dir.join(CACHE_FILE_NAME)),
            pods_root,
            gone_retention: DEFAULT_GONE_RETENTION,
        }
    }
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

fn optional_key(value: &str) -> Option<String> {
    Some(value.trim().to_owned()).filter(|v| !v.is_empty())
}

impl MetadataArgs {
    /// Validates the flags; `Ok(None)` when metadata is off. `in_cluster` tells whether the agent
    /// runs in a pod (pass `std::env::var_os(IN_CLUSTER_ENV).is_some()`).
    pub fn validate(
        &self,
        node_name: &str,
        data_dir: &Path,
        pods_root: Option<&Path>,
        in_cluster: bool,
    ) -> Result<Option<MetadataConfig>, ConfigError> {
        let kubeconfig = self
            .kubeconfig
            .clone()
            .filter(|p| !p.as_os_str().is_empty());
        let enabled = match self.metadata {
            MetadataMode::Off => false,
            MetadataMode::On => true,
            MetadataMode::Auto => in_cluster || kubeconfig.is_some(),
        };
        if !enabled {
            return Ok(None);
        }
        if self.metadata_wait > MAX_METADATA_WAIT {
            return Err(invalid(
                "--metadata-wait (LOGRELAY_METADATA_WAIT)",
                format!(
                    "{:?} is more than {MAX_METADATA_WAIT:?}",
                    self.metadata_wait
                ),
            ));
        }
        let namespace_selector = LabelSelector::parse(&self.namespace_selector).map_err(|err| {
            invalid(
                "--namespace-selector (LOGRELAY_NAMESPACE_SELECTOR)",
                err.to_string(),
            )
        })?;
        let application_labels = list(&self.application_labels);
        let rules = DeriveRules {
            customer_annotation: self
                .customer_id_from_annotation
                .then(|| optional_key(&self.customer_id_annotation))
                .flatten(),
            customer_namespace_label: optional_key(&self.customer_id_namespace_label),
            application_labels,
            label_allowlist: KeyAllowList::new(list(&self.label_allowlist)),
            annotation_allowlist: KeyAllowList::new(list(&self.annotation_allowlist)),
            selection: SelectionRules { namespace_selector },
        };
        let kube = kubeconfig.map_or(KubeSource::Infer, KubeSource::Kubeconfig);
        let mut config =
            MetadataConfig::new(kube, node_name, data_dir, pods_root.map(Path::to_path_buf));
        config.watch.rules = rules;
        config.watch.list_from_cache = self.metadata_list_from_cache;
        config.annotator.wait = self.metadata_wait;
        Ok(Some(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::annotator::DEFAULT_METADATA_WAIT;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        metadata: MetadataArgs,
    }

    fn args(extra: &[&str]) -> MetadataArgs {
        let mut all = vec!["test"];
        all.extend_from_slice(extra);
        Flags::try_parse_from(all).expect("parses").metadata
    }

    fn validate(a: &MetadataArgs, in_cluster: bool) -> Result<Option<MetadataConfig>, ConfigError> {
        a.validate(
            "node-1",
            Path::new("/data"),
            Some(Path::new("/var/log/pods")),
            in_cluster,
        )
    }

    #[test]
    fn auto_mode_follows_the_environment() {
        assert!(validate(&args(&[]), false).expect("valid").is_none());
        let config = validate(&args(&[]), true)
            .expect("valid")
            .expect("on in a cluster");
        assert_eq!(config.kube, KubeSource::Infer);
        assert_eq!(config.annotator.wait, DEFAULT_METADATA_WAIT);
        assert_eq!(
            config.cache_path.as_deref(),
            Some(Path::new("/data/metadata-cache.json"))
        );
        assert_eq!(config.watch.node_name, "node-1");
        assert!(config.watch.list_from_cache);
        let with_file = validate(&args(&["--kubeconfig", "/k"]), false)
            .expect("valid")
            .expect("on");
        assert_eq!(with_file.kube, KubeSource::Kubeconfig("/k".into()));
        assert!(
            validate(&args(&["--metadata", "off"]), true)
                .expect("valid")
                .is_none()
        );
        assert!(
            validate(&args(&["--metadata", "on"]), false)
                .expect("valid")
                .is_some()
        );
    }

    #[test]
    fn flags_set_the_derivation_rules() {
        let a = args(&[
            "--metadata=on",
            "--namespace-selector=",
            "--customer-id-annotation=",
            "--application-labels=a, b",
            "--label-allowlist=team",
            "--annotation-allowlist=x/*",
            "--metadata-wait=250ms",
            "--metadata-list-from-cache=false",
        ]);
        let config = validate(&a, false).expect("valid").expect("on");
        let rules = &config.watch.rules;
        assert!(rules.selection.namespace_selector.is_empty());
        assert_eq!(rules.customer_annotation, None);
        assert_eq!(
            rules.customer_namespace_label.as_deref(),
            Some(CUSTOMER_ID_KEY)
        );
        assert_eq!(rules.application_labels, ["a", "b"]);
        assert!(rules.label_allowlist.allows("team") && !rules.label_allowlist.allows("app"));
        assert!(rules.annotation_allowlist.allows("x/y"));
        assert_eq!(config.annotator.wait, Duration::from_millis(250));
        assert!(!config.watch.list_from_cache);
    }

    #[test]
    fn the_customer_id_annotation_is_consulted_only_when_opted_in() {
        let default = validate(&args(&["--metadata=on"]), false)
            .expect("valid")
            .expect("on");
        assert_eq!(default.watch.rules.customer_annotation, None);
        let opted_in = validate(
            &args(&["--metadata=on", "--customer-id-from-annotation=true"]),
            false,
        )
        .expect("valid")
        .expect("on");
        assert_eq!(
            opted_in.watch.rules.customer_annotation.as_deref(),
            Some(CUSTOMER_ID_KEY)
        );
        let renamed = validate(
            &args(&[
                "--metadata=on",
                "--customer-id-from-annotation=true",
                "--customer-id-annotation=example.com/tenant",
            ]),
            false,
        )
        .expect("valid")
        .expect("on");
        assert_eq!(
            renamed.watch.rules.customer_annotation.as_deref(),
            Some("example.com/tenant")
        );
    }

    #[test]
    fn bad_values_name_their_flag() {
        let err = validate(
            &args(&["--metadata=on", "--namespace-selector=a in (b"]),
            false,
        )
        .expect_err("bad");
        assert_eq!(
            err.field,
            "--namespace-selector (LOGRELAY_NAMESPACE_SELECTOR)"
        );
        let err =
            validate(&args(&["--metadata=on", "--metadata-wait=10m"]), false).expect_err("bad");
        assert_eq!(err.field, "--metadata-wait (LOGRELAY_METADATA_WAIT)");
    }
}
