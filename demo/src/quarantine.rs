//! The operator's quarantine step of a run. Lines whose pod's metadata never reached the agent
//! (a pod created and deleted while the agent was down, say) are in the central bucket's
//! quarantine prefix, never at a tenant. After the agent stopped, the run does what an operator
//! does: `logrelay-processor quarantine list`, then `quarantine release` for each pod, naming the
//! tenant (on the fake node a namespace is its tenant) and the application (the pod's Deployment).
//! The released objects are then delivered by the running processor like any other.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tokio::process::Command;

use crate::accounts::Identity;

/// Longest one quarantine command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// One pod with quarantined objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedPod {
    /// Cluster.
    pub cluster: String,
    /// Namespace (the tenant on the fake node).
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Objects.
    pub objects: u64,
}

/// Releases every quarantined pod's objects; returns the pods released (none in most runs).
pub async fn release_all(
    processor: &Path,
    operator: &Identity,
    bucket: &str,
    log_dir: &Path,
) -> anyhow::Result<Vec<QuarantinedPod>> {
    let listing = run(processor, operator, bucket, &["list"], log_dir).await?;
    let pods = parse_listing(&listing);
    for pod in &pods {
        let application = deployment_of(&pod.pod);
        run(
            processor,
            operator,
            bucket,
            &[
                "release",
                "--cluster",
                &pod.cluster,
                "--namespace",
                &pod.namespace,
                "--pod",
                &pod.pod,
                "--tenant",
                &pod.namespace,
                "--application",
                application,
            ],
            log_dir,
        )
        .await?;
    }
    Ok(pods)
}

/// Runs `logrelay-processor quarantine --bucket B ARGS…` as the operator; its stdout, logged.
async fn run(
    processor: &Path,
    operator: &Identity,
    bucket: &str,
    args: &[&str],
    log_dir: &Path,
) -> anyhow::Result<String> {
    let output = tokio::time::timeout(
        COMMAND_TIMEOUT,
        Command::new(processor)
            .args(["quarantine", "--bucket", bucket])
            .args(args)
            .env_clear()
            .envs(operator.env(&operator.endpoint))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("quarantine command timed out")?
    .context("start logrelay-processor quarantine")?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let log = log_dir.join("quarantine.log");
    let mut text = std::fs::read_to_string(&log).unwrap_or_default();
    text.push_str(&format!(
        "$ quarantine {}\n{stdout}{}\n",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    ));
    std::fs::write(&log, text).with_context(|| format!("write {}", log.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "logrelay-processor quarantine {} failed ({}); see {}",
        args.join(" "),
        output.status,
        log.display()
    );
    Ok(stdout)
}

/// The rows of `quarantine list` (tab-separated, after the header; `#` lines are notes).
fn parse_listing(text: &str) -> Vec<QuarantinedPod> {
    text.lines()
        .skip(1)
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let [cluster, namespace, pod, objects, _bytes] = fields.as_slice() else {
                return None;
            };
            Some(QuarantinedPod {
                cluster: (*cluster).to_owned(),
                namespace: (*namespace).to_owned(),
                pod: (*pod).to_owned(),
                objects: objects.parse().ok()?,
            })
        })
        .collect()
}

/// The Deployment of a pod named as its ReplicaSet names it (`<deployment>-<hash>-<suffix>`).
fn deployment_of(pod: &str) -> &str {
    let mut parts = pod.rsplitn(3, '-');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(_), Some(deployment)) if !deployment.is_empty() => deployment,
        _ => pod,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_rows_are_read_and_notes_skipped() {
        let text = "CLUSTER\tNAMESPACE\tPOD\tOBJECTS\tBYTES\n\
                    demo-cluster\tglobex\tapi-8kxnvrnbrt-n6qq8\t2\t900\n\
                    # 2 objects in s3://…/.quarantine/\n";
        assert_eq!(
            parse_listing(text),
            [QuarantinedPod {
                cluster: "demo-cluster".into(),
                namespace: "globex".into(),
                pod: "api-8kxnvrnbrt-n6qq8".into(),
                objects: 2,
            }]
        );
    }

    #[test]
    fn a_pods_deployment_is_its_name_without_the_replica_set_parts() {
        assert_eq!(deployment_of("api-8kxnvrnbrt-n6qq8"), "api");
        assert_eq!(deployment_of("my-app-7d9f-abcde"), "my-app");
        assert_eq!(deployment_of("standalone"), "standalone");
    }
}
