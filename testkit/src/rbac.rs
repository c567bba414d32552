//! Kubernetes RBAC for the fake API ([`crate::fake_kube::FakeKube::enforce_rbac`]): the rules bound to one
//! ServiceAccount, read from rendered manifests, and the authorization decision the apiserver's RBAC
//! authorizer makes for a request (verb, API group, resource, namespace, name).
//!
//! [`RbacPolicy::agent`] renders `k8s/agent/base` as `scripts/lint-manifests.sh` does (`kubectl kustomize`);
//! without kubectl it reads the files the base's `kustomization.yaml` lists. Both give the same RBAC objects: the
//! base sets no patches, and no overlay changes the agent's ClusterRole or its binding (the OpenShift overlay only
//! adds `use` of its SecurityContextConstraints, which the agent never requests from the API).
//!
//! Semantics follow <https://kubernetes.io/docs/reference/access-authn-authz/rbac/>: a ClusterRoleBinding grants
//! its role's rules in every namespace and at the cluster scope, a RoleBinding only in its own namespace; `*`
//! matches any verb, group or resource; `resourceNames` limit a rule to requests naming one of those objects.

use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The agent's ServiceAccount as the base manifests name it: (namespace, name).
pub const AGENT_SERVICE_ACCOUNT: (&str, &str) = ("logrelay", "logrelay-agent");

/// The agent's kustomize base, relative to the workspace root.
pub const AGENT_BASE: &str = "k8s/agent/base";

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RbacError {
    /// A manifest file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `kubectl kustomize` failed.
    #[error("kubectl kustomize {dir}: {message}")]
    Render {
        /// The kustomization directory.
        dir: PathBuf,
        /// kubectl's error output.
        message: String,
    },
    /// A YAML document did not parse.
    #[error("parsing manifests: {0}")]
    Yaml(#[from] serde_yaml::Error),
    /// No binding names the ServiceAccount.
    #[error("no RoleBinding or ClusterRoleBinding names ServiceAccount {namespace}/{name}")]
    Unbound {
        /// The ServiceAccount's namespace.
        namespace: String,
        /// The ServiceAccount's name.
        name: String,
    },
}

/// How the manifests were rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderedBy {
    /// `kubectl kustomize DIR`.
    Kubectl,
    /// The files `kustomization.yaml` lists, concatenated (kubectl not on PATH).
    RawFiles,
}

/// One RBAC rule (`PolicyRule`), resource rules only.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// API groups (`""` is the core group).
    #[serde(default)]
    pub api_groups: Vec<String>,
    /// Resources (plural, lowercase).
    #[serde(default)]
    pub resources: Vec<String>,
    /// Verbs.
    #[serde(default)]
    pub verbs: Vec<String>,
    /// When non-empty, only requests naming one of these objects.
    #[serde(default)]
    pub resource_names: Vec<String>,
}

impl Rule {
    fn allows(&self, request: &Request<'_>) -> bool {
        let any = |list: &[String], value: &str| list.iter().any(|v| v == "*" || v == value);
        any(&self.verbs, request.verb)
            && any(&self.api_groups, request.api_group)
            && any(&self.resources, request.resource)
            && (self.resource_names.is_empty()
                || request
                    .name
                    .is_some_and(|name| self.resource_names.iter().any(|n| n == name)))
    }
}

/// A request as the authorizer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// `get`, `list`, `watch`, `create`, …
    pub verb: &'a str,
    /// API group (`""` for `/api/v1`).
    pub api_group: &'a str,
    /// Resource (plural).
    pub resource: &'a str,
    /// Namespace, for namespaced requests.
    pub namespace: Option<&'a str>,
    /// Object name, for requests of one object.
    pub name: Option<&'a str>,
}

impl Request<'_> {
    /// The message the apiserver sends in a `403 Forbidden` Status for this request and `user`.
    pub fn forbidden_message(&self, user: &str) -> String {
        let object = match self.name {
            Some(name) => format!("{} {name:?}", self.resource),
            None => self.resource.to_owned(),
        };
        let scope = match self.namespace {
            Some(namespace) => format!("in the namespace {namespace:?}"),
            None => "at the cluster scope".to_owned(),
        };
        format!(
            "{object} is forbidden: User {user:?} cannot {verb} resource {resource:?} in API group {group:?} {scope}",
            verb = self.verb,
            resource = self.resource,
            group = self.api_group,
        )
    }
}

/// The rules bound to one ServiceAccount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RbacPolicy {
    user: String,
    /// Rules granted everywhere (ClusterRoleBindings).
    cluster_rules: Vec<Rule>,
    /// Rules granted in one namespace (RoleBindings).
    namespaced_rules: Vec<(String, Rule)>,
}

/// The fields of a manifest this module reads; other kinds and fields are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Manifest {
    kind: String,
    metadata: Metadata,
    rules: Vec<Rule>,
    role_ref: RoleRef,
    subjects: Vec<Subject>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Metadata {
    name: String,
    namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RoleRef {
    kind: String,
    name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Subject {
    kind: String,
    name: String,
    namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Kustomization {
    namespace: Option<String>,
    resources: Vec<String>,
}

impl RbacPolicy {
    /// The agent's policy from the shipped manifests ([`AGENT_BASE`], rendered as the module comment says).
    pub fn agent() -> Result<(Self, RenderedBy), RbacError> {
        let dir = workspace_root().join(AGENT_BASE);
        let (text, how) = render(&dir)?;
        let (namespace, name) = AGENT_SERVICE_ACCOUNT;
        Ok((Self::from_manifests(&text, namespace, name)?, how))
    }

    /// The rules that multi-document YAML `text` binds to ServiceAccount `namespace/name`.
    pub fn from_manifests(text: &str, namespace: &str, name: &str) -> Result<Self, RbacError> {
        let mut manifests = Vec::new();
        for document in serde_yaml::Deserializer::from_str(text) {
            let value = serde_yaml::Value::deserialize(document)?;
            if value.is_null() {
                continue;
            }
            manifests.push(serde_yaml::from_value::<Manifest>(value)?);
        }
        let role = |kind: &str, role_name: &str, role_namespace: Option<&str>| {
            manifests
                .iter()
                .filter(|m| m.kind == kind && m.metadata.name == role_name)
                .filter(|m| {
                    kind == "ClusterRole" || m.metadata.namespace.as_deref() == role_namespace
                })
                .flat_map(|m| m.rules.iter().cloned())
                .collect::<Vec<_>>()
        };
        let mut cluster_rules = Vec::new();
        let mut namespaced_rules = Vec::new();
        let mut bound = false;
        for binding in &manifests {
            let names_account = binding.subjects.iter().any(|s| {
                s.kind == "ServiceAccount"
                    && s.name == name
                    && s.namespace
                        .as_deref()
                        .or(binding.metadata.namespace.as_deref())
                        == Some(namespace)
            });
            if !names_account {
                continue;
            }
            let binding_namespace = binding.metadata.namespace.as_deref();
            let rules = role(
                &binding.role_ref.kind,
                &binding.role_ref.name,
                binding_namespace,
            );
            match (binding.kind.as_str(), binding_namespace) {
                ("ClusterRoleBinding", _) => cluster_rules.extend(rules),
                ("RoleBinding", Some(ns)) => {
                    namespaced_rules.extend(rules.into_iter().map(|r| (ns.to_owned(), r)));
                }
                _ => continue,
            }
            bound = true;
        }
        if !bound {
            return Err(RbacError::Unbound {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            });
        }
        Ok(Self {
            user: format!("system:serviceaccount:{namespace}:{name}"),
            cluster_rules,
            namespaced_rules,
        })
    }

    /// The user name requests are made as: `system:serviceaccount:NAMESPACE:NAME`.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Whether the rules allow `request`.
    pub fn allows(&self, request: &Request<'_>) -> bool {
        self.cluster_rules.iter().any(|rule| rule.allows(request))
            || self
                .namespaced_rules
                .iter()
                .any(|(ns, rule)| request.namespace == Some(ns.as_str()) && rule.allows(request))
    }

    /// Every (verb, resource) the cluster-wide rules grant on any object, as `verb resource` strings; rules
    /// limited by `resourceNames` or to one namespace are left out.
    pub fn cluster_grants(&self) -> BTreeSet<String> {
        self.cluster_rules
            .iter()
            .filter(|rule| rule.resource_names.is_empty())
            .flat_map(|rule| {
                rule.verbs.iter().flat_map(move |verb| {
                    rule.resources
                        .iter()
                        .map(move |resource| format!("{verb} {resource}"))
                })
            })
            .collect()
    }
}

/// The workspace root (the test kit lives one level below it).
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Renders the kustomization in `dir`: `kubectl kustomize` when kubectl is on PATH, otherwise its listed files.
fn render(dir: &Path) -> Result<(String, RenderedBy), RbacError> {
    match Command::new("kubectl").arg("kustomize").arg(dir).output() {
        Ok(output) if output.status.success() => {
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            Ok((text, RenderedBy::Kubectl))
        }
        Ok(output) => Err(RbacError::Render {
            dir: dir.to_path_buf(),
            message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            Ok((raw_files(dir)?, RenderedBy::RawFiles))
        }
        Err(err) => Err(RbacError::Render {
            dir: dir.to_path_buf(),
            message: err.to_string(),
        }),
    }
}

/// The files a kustomization lists, concatenated as YAML documents, with its `namespace` given to objects that
/// name none (what kustomize does for namespaced kinds; harmless for the cluster-scoped ones this module reads).
fn raw_files(dir: &Path) -> Result<String, RbacError> {
    let read = |path: PathBuf| {
        std::fs::read_to_string(&path).map_err(|source| RbacError::Read { path, source })
    };
    let kustomization: Kustomization =
        serde_yaml::from_str(&read(dir.join("kustomization.yaml"))?)?;
    let mut out = String::new();
    for resource in &kustomization.resources {
        let text = read(dir.join(resource))?;
        for document in serde_yaml::Deserializer::from_str(&text) {
            let mut value = serde_yaml::Value::deserialize(document)?;
            if let (Some(namespace), Some(metadata)) = (
                &kustomization.namespace,
                value.get_mut("metadata").and_then(|m| m.as_mapping_mut()),
            ) && !metadata.contains_key("namespace")
            {
                metadata.insert("namespace".into(), namespace.as_str().into());
            }
            out.push_str("---\n");
            out.push_str(&serde_yaml::to_string(&value)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
rules:
  - {apiGroups: [''], resources: [pods], verbs: [list, watch]}
  - {apiGroups: [apps], resources: [deployments], verbs: [get], resourceNames: [one]}
---
kind: ClusterRoleBinding
metadata: {name: reader}
roleRef: {kind: ClusterRole, name: reader}
subjects: [{kind: ServiceAccount, name: sa, namespace: ns}]
---
kind: Role
metadata: {name: local, namespace: ns}
rules: [{apiGroups: [''], resources: [configmaps], verbs: ['*']}]
---
kind: RoleBinding
metadata: {name: local, namespace: ns}
roleRef: {kind: Role, name: local}
subjects: [{kind: ServiceAccount, name: sa}]
";

    fn request<'a>(verb: &'a str, group: &'a str, resource: &'a str) -> Request<'a> {
        Request {
            verb,
            api_group: group,
            resource,
            namespace: None,
            name: None,
        }
    }

    #[test]
    fn bindings_grant_their_roles_rules_in_their_scope() {
        let policy = RbacPolicy::from_manifests(ROLE, "ns", "sa").expect("parses");
        assert_eq!(policy.user(), "system:serviceaccount:ns:sa");
        assert!(policy.allows(&request("list", "", "pods")));
        assert!(
            !policy.allows(&request("get", "", "pods")),
            "verb not granted"
        );
        assert!(
            !policy.allows(&request("list", "", "nodes")),
            "resource not granted"
        );
        assert!(
            !policy.allows(&request("list", "apps", "pods")),
            "other group"
        );
        let named = |name| Request {
            name: Some(name),
            ..request("get", "apps", "deployments")
        };
        assert!(policy.allows(&named("one")));
        assert!(
            !policy.allows(&named("two")),
            "resourceNames limit the rule"
        );
        let configmaps = |namespace| Request {
            namespace,
            ..request("delete", "", "configmaps")
        };
        assert!(
            policy.allows(&configmaps(Some("ns"))),
            "RoleBinding in its namespace"
        );
        assert!(!policy.allows(&configmaps(Some("other"))));
        assert!(
            !policy.allows(&configmaps(None)),
            "not at the cluster scope"
        );
        assert_eq!(
            policy.cluster_grants(),
            BTreeSet::from(["list pods".to_owned(), "watch pods".to_owned()])
        );
    }

    #[test]
    fn an_unbound_service_account_is_an_error() {
        assert!(matches!(
            RbacPolicy::from_manifests(ROLE, "ns", "other"),
            Err(RbacError::Unbound { .. })
        ));
    }

    #[test]
    fn forbidden_messages_read_like_the_apiservers() {
        let user = "system:serviceaccount:logrelay:logrelay-agent";
        assert_eq!(
            request("list", "", "nodes").forbidden_message(user),
            "nodes is forbidden: User \"system:serviceaccount:logrelay:logrelay-agent\" cannot list resource \
             \"nodes\" in API group \"\" at the cluster scope"
        );
        let one = Request {
            namespace: Some("a"),
            name: Some("p"),
            ..request("delete", "", "pods")
        };
        assert_eq!(
            one.forbidden_message("u"),
            "pods \"p\" is forbidden: User \"u\" cannot delete resource \"pods\" in API group \"\" in the \
             namespace \"a\""
        );
    }

    #[test]
    fn rendered_and_raw_agent_manifests_give_the_same_policy() {
        let dir = workspace_root().join(AGENT_BASE);
        let (namespace, name) = AGENT_SERVICE_ACCOUNT;
        let raw = RbacPolicy::from_manifests(&raw_files(&dir).expect("reads"), namespace, name)
            .expect("raw files bind the agent");
        let (rendered, how) = RbacPolicy::agent().expect("renders");
        assert_eq!(rendered, raw, "rendered by {how:?}");
    }
}
