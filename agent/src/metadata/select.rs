//! Which pods and containers the agent ships: a namespace label selector (default: every
//! namespace but Kubernetes' own; empty = every namespace), a pod opt-out label and a
//! per-container exclude annotation. The decision is made from metadata; the tailer can ask
//! [`PodSelector::excludes`] before reading a file, and the annotator drops excluded lines as
//! counted `Consumed` events so their checkpoints still advance.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Default namespace selector: every namespace except the three Kubernetes creates for itself
/// (by the `kubernetes.io/metadata.name` label the API server sets on every namespace since
/// Kubernetes 1.21). Platforms narrow it in their overlay (ROSA hosted control planes:
/// [`ROSA_HCP_NAMESPACE_SELECTOR`]); docs/deploy.md lists the choice per platform.
pub const DEFAULT_NAMESPACE_SELECTOR: &str =
    "kubernetes.io/metadata.name notin (kube-system,kube-public,kube-node-lease)";

/// Namespace selector of ROSA management clusters: HyperShift hosted control planes only, as the
/// Vector DaemonSet logrelay replaces selected them (k8s/agent/overlays/openshift).
pub const ROSA_HCP_NAMESPACE_SELECTOR: &str = "hypershift.openshift.io/hosted-control-plane=true";

/// Pod label that opts a pod out of shipping when its value is `true`.
pub const EXCLUDE_POD_LABEL: &str = "logrelay.io/exclude";

/// Pod annotation listing containers not to ship, comma-separated (`logrelay.io/exclude-containers: a,b`).
pub const EXCLUDE_CONTAINERS_ANNOTATION: &str = "logrelay.io/exclude-containers";

/// Why a pod's lines are not shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExcludeReason {
    /// The pod's namespace does not match the namespace selector.
    NamespaceNotSelected,
    /// The pod carries `logrelay.io/exclude=true`.
    PodOptedOut,
    /// The container is listed in `logrelay.io/exclude-containers`.
    ContainerExcluded,
}

impl ExcludeReason {
    /// The metric label of the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            ExcludeReason::NamespaceNotSelected => "namespace_not_selected",
            ExcludeReason::PodOptedOut => "pod_opted_out",
            ExcludeReason::ContainerExcluded => "container_excluded",
        }
    }
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    /// `key=value` / `key==value`.
    Equals(String, String),
    /// `key!=value` (also true when the label is absent, as in Kubernetes).
    NotEquals(String, String),
    /// `key in (a,b)`.
    In(String, BTreeSet<String>),
    /// `key notin (a,b)` (also true when the label is absent).
    NotIn(String, BTreeSet<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Equals(key, value) => labels.get(key) == Some(value),
            Requirement::NotEquals(key, value) => labels.get(key) != Some(value),
            Requirement::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
            Requirement::NotIn(key, values) => labels.get(key).is_none_or(|v| !values.contains(v)),
            Requirement::Exists(key) => labels.contains_key(key),
            Requirement::DoesNotExist(key) => !labels.contains_key(key),
        }
    }
}

/// A Kubernetes label selector in its string form (equality- and set-based:
/// `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, joined by `,` = AND).
/// The empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    text: String,
}

/// A selector string that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad label selector {text:?}: {reason}")]
pub struct SelectorError {
    /// The selector.
    pub text: String,
    /// What is wrong.
    pub reason: String,
}

impl LabelSelector {
    /// Parses `text`; blank means "everything".
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let error = |reason: String| SelectorError {
            text: text.to_owned(),
            reason,
        };
        let mut requirements = Vec::new();
        for part in split_top_level(text).map_err(error)? {
            let part = part.trim();
            if part.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err(error("empty requirement".into()));
            }
            requirements.push(parse_requirement(part).map_err(error)?);
        }
        Ok(Self {
            requirements,
            text: text.trim().to_owned(),
        })
    }

    /// True when every requirement holds for `labels`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True for the empty selector.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Splits on commas outside parentheses.
fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or("unbalanced ')'")?,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".into());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(check_key(key.trim())?));
    }
    for (op, build) in [
        (
            "!=",
            Requirement::NotEquals as fn(String, String) -> Requirement,
        ),
        ("==", Requirement::Equals),
        ("=", Requirement::Equals),
    ] {
        if let Some((key, value)) = part.split_once(op) {
            return Ok(build(check_key(key.trim())?, check_value(value.trim())?));
        }
    }
    for (op, build) in [
        (
            " notin ",
            Requirement::NotIn as fn(String, BTreeSet<String>) -> Requirement,
        ),
        (" in ", Requirement::In),
    ] {
        if let Some((key, values)) = part.split_once(op) {
            let values = values.trim();
            let inner = values
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| format!("{values:?} is not a (value, ...) list"))?;
            let set = inner
                .split(',')
                .map(|v| check_value(v.trim()))
                .collect::<Result<_, _>>()?;
            return Ok(build(check_key(key.trim())?, set));
        }
    }
    Ok(Requirement::Exists(check_key(part)?))
}

fn check_key(key: &str) -> Result<String, String> {
    let valid = !key.is_empty()
        && key.len() <= 317
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if valid {
        Ok(key.to_owned())
    } else {
        Err(format!("{key:?} is not a label key"))
    }
}

fn check_value(value: &str) -> Result<String, String> {
    let valid = value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(value.to_owned())
    } else {
        Err(format!("{value:?} is not a label value"))
    }
}

/// What decides selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectionRules {
    /// Namespaces whose pods are shipped (empty = all).
    pub namespace_selector: LabelSelector,
}

impl Default for SelectionRules {
    fn default() -> Self {
        Self {
            namespace_selector: LabelSelector::parse(DEFAULT_NAMESPACE_SELECTOR)
                .unwrap_or_default(),
        }
    }
}

/// The selection decision for one pod.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PodSelection {
    /// Why the whole pod is not shipped, if it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded: Option<ExcludeReason>,
    /// Containers of the pod that are not shipped.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub excluded_containers: BTreeSet<String>,
}

impl PodSelection {
    /// Why lines of `container` are not shipped, if they are not.
    pub fn excludes(&self, container: &str) -> Option<ExcludeReason> {
        self.excluded.or_else(|| {
            self.excluded_containers
                .contains(container)
                .then_some(ExcludeReason::ContainerExcluded)
        })
    }
}

impl SelectionRules {
    /// Decides for a pod with these labels and annotations in a namespace with these labels.
    pub fn evaluate(
        &self,
        pod_labels: &BTreeMap<String, String>,
        pod_annotations: &BTreeMap<String, String>,
        namespace_labels: &BTreeMap<String, String>,
    ) -> PodSelection {
        let excluded = if !self.namespace_selector.matches(namespace_labels) {
            Some(ExcludeReason::NamespaceNotSelected)
        } else if pod_labels
            .get(EXCLUDE_POD_LABEL)
            .is_some_and(|v| v.trim() == "true")
        {
            Some(ExcludeReason::PodOptedOut)
        } else {
            None
        };
        let excluded_containers = pod_annotations
            .get(EXCLUDE_CONTAINERS_ANNOTATION)
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|name| !name.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        PodSelection {
            excluded,
            excluded_containers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selector_forms_match_like_kubernetes() {
        let l = labels(&[("env", "prod"), ("tier", "db"), ("hcp", "true")]);
        let yes = [
            "",
            "env=prod",
            "env==prod",
            "env!=dev",
            "missing!=x",
            "env in (prod,stage)",
            "env notin (dev)",
            "missing notin (dev)",
            "tier",
            "!missing",
            "env=prod, tier in (db, cache),hcp",
        ];
        for text in yes {
            assert!(
                LabelSelector::parse(text).expect(text).matches(&l),
                "{text}"
            );
        }
        let no = [
            "env=dev",
            "env!=prod",
            "env in (dev)",
            "env notin (prod)",
            "missing",
            "!tier",
        ];
        for text in no {
            assert!(
                !LabelSelector::parse(text).expect(text).matches(&l),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_selectors_are_refused() {
        for text in ["env in (a", "env)", "=x", "a b=c", ",", "k in x", "k=v v"] {
            assert!(LabelSelector::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn default_rules_ship_every_namespace_but_kubernetes_own() {
        let rules = SelectionRules::default();
        let none = BTreeMap::new();
        let name = |n: &str| labels(&[("kubernetes.io/metadata.name", n)]);
        for shipped in ["default", "tenant-a", "openshift-ingress"] {
            assert_eq!(rules.evaluate(&none, &none, &name(shipped)).excluded, None);
        }
        for system in ["kube-system", "kube-public", "kube-node-lease"] {
            assert_eq!(
                rules.evaluate(&none, &none, &name(system)).excluded,
                Some(ExcludeReason::NamespaceNotSelected),
                "{system}"
            );
        }
        let rosa = SelectionRules {
            namespace_selector: LabelSelector::parse(ROSA_HCP_NAMESPACE_SELECTOR)
                .expect("valid selector"),
        };
        let hcp = labels(&[("hypershift.openshift.io/hosted-control-plane", "true")]);
        assert_eq!(rosa.evaluate(&none, &none, &hcp).excluded, None);
        assert_eq!(
            rosa.evaluate(&none, &none, &name("tenant-a")).excluded,
            Some(ExcludeReason::NamespaceNotSelected)
        );
        let all = SelectionRules {
            namespace_selector: LabelSelector::default(),
        };
        assert_eq!(all.evaluate(&none, &none, &none).excluded, None);
    }

    #[test]
    fn pod_opt_out_and_container_list_exclude() {
        let rules = SelectionRules {
            namespace_selector: LabelSelector::default(),
        };
        let out = labels(&[(EXCLUDE_POD_LABEL, "true")]);
        let none = BTreeMap::new();
        let selection = rules.evaluate(&out, &none, &none);
        assert_eq!(selection.excludes("any"), Some(ExcludeReason::PodOptedOut));
        let not_out = labels(&[(EXCLUDE_POD_LABEL, "false")]);
        assert_eq!(rules.evaluate(&not_out, &none, &none).excluded, None);
        let annotations = labels(&[(EXCLUDE_CONTAINERS_ANNOTATION, " sidecar, ,proxy ")]);
        let selection = rules.evaluate(&none, &annotations, &none);
        assert_eq!(
            selection.excludes("sidecar"),
            Some(ExcludeReason::ContainerExcluded)
        );
        assert_eq!(
            selection.excludes("proxy"),
            Some(ExcludeReason::ContainerExcluded)
        );
        assert_eq!(selection.excludes("main"), None);
    }
}
