//! What the processor asks STS for: the central hop and each tenant's hop (role, ExternalId, session
//! name ≤ 64 characters, session tags `tenant_id` and `cluster_id`, region), built from a config
//! without calling anything, so the request contents are testable.

use logrelay_common::aws::{RoleStep, session_name};
use logrelay_common::tenant::DeliveryConfig;
use std::time::Duration;

/// Session length requested for every hop: role chaining caps sessions at 1 hour (STS AssumeRole
/// reference, `DurationSeconds`), so asking for more would fail.
pub const SESSION_DURATION: Duration = Duration::from_secs(60 * 60);
/// Session name prefix, so CloudTrail entries in tenant accounts show who acted.
pub const SESSION_NAME_PREFIX: &str = "logrelay";
/// Session name of the central hop.
pub const CENTRAL_SESSION_NAME: &str = "logrelay-processor";
/// Session tag carrying the tenant id.
pub const TAG_TENANT_ID: &str = "tenant_id";
/// Session tag carrying the cluster id.
pub const TAG_CLUSTER_ID: &str = "cluster_id";
/// Longest session tag value (STS `Tag.Value`: 0–256 characters).
pub const MAX_TAG_VALUE_CHARS: usize = 256;

/// The hop from the processor's own identity to the central distribution role.
pub fn central_step(role_arn: &str) -> RoleStep {
    RoleStep {
        duration: SESSION_DURATION,
        ..RoleStep::new(role_arn, CENTRAL_SESSION_NAME)
    }
}

/// The hop into a tenant's role for `config`, for objects of `cluster_id`. The external id is the
/// config's, or `default_external_id` when the config has none (deployments with one ExternalId for every tenant). `None` when the
/// config names no role.
pub fn tenant_step(
    config: &DeliveryConfig,
    cluster_id: &str,
    default_external_id: Option<&str>,
) -> Option<RoleStep> {
    let role_arn = config.log_distribution_role_arn.as_deref()?;
    Some(RoleStep {
        role_arn: role_arn.to_owned(),
        external_id: config
            .external_id
            .clone()
            .or_else(|| default_external_id.map(str::to_owned)),
        session_name: session_name(&[SESSION_NAME_PREFIX, &config.tenant_id, cluster_id]),
        session_tags: vec![
            (TAG_TENANT_ID.to_owned(), tag_value(&config.tenant_id)),
            (TAG_CLUSTER_ID.to_owned(), tag_value(cluster_id)),
        ],
        region: config.target_region.clone(),
        duration: SESSION_DURATION,
    })
}

/// A session tag value STS accepts: characters outside `[\p{L}\p{Z}\p{N}_.:/=+\-@]` become `_`,
/// cut to 256 characters.
pub fn tag_value(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(MAX_TAG_VALUE_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(external_id: Option<&str>) -> DeliveryConfig {
        serde_json::from_value(serde_json::json!({
            "tenant_id": "acme",
            "type": "cloudwatch",
            "log_distribution_role_arn": "arn:aws:iam::111111111111:role/logs",
            "log_group_name": "/acme/logs",
            "target_region": "eu-west-1",
            "external_id": external_id,
        }))
        .expect("config")
    }

    #[test]
    fn the_tenant_step_carries_the_tenants_external_id_tags_and_region() {
        let step =
            tenant_step(&config(Some("acme-ext")), "cluster-1", Some("default-ext")).expect("step");
        assert_eq!(step.role_arn, "arn:aws:iam::111111111111:role/logs");
        assert_eq!(step.external_id.as_deref(), Some("acme-ext"));
        assert_eq!(step.region.as_deref(), Some("eu-west-1"));
        assert_eq!(step.session_name, "logrelay-acme-cluster-1");
        assert_eq!(
            step.session_tags,
            [
                ("tenant_id".to_owned(), "acme".to_owned()),
                ("cluster_id".to_owned(), "cluster-1".to_owned())
            ]
        );
        assert_eq!(step.duration, SESSION_DURATION);
        assert_eq!(step.validate(), Ok(()));
    }

    #[test]
    fn the_default_external_id_is_used_only_when_the_config_has_none() {
        let step = tenant_step(&config(None), "c", Some("default-ext")).expect("step");
        assert_eq!(step.external_id.as_deref(), Some("default-ext"));
        let step = tenant_step(&config(None), "c", None).expect("step");
        assert_eq!(step.external_id, None);
    }

    #[test]
    fn session_names_stay_within_64_characters() {
        let cluster = "c".repeat(300);
        let step = tenant_step(&config(None), &cluster, None).expect("step");
        assert!(step.session_name.len() <= 64, "{}", step.session_name);
        assert!(step.session_name.starts_with("logrelay-acme-ccc"));
        assert_eq!(step.session_tags[1].1.chars().count(), MAX_TAG_VALUE_CHARS);
    }

    #[test]
    fn tag_values_drop_characters_sts_refuses() {
        assert_eq!(
            tag_value("prod/eu:1 a+b=c@d_e.f-g"),
            "prod/eu:1 a+b=c@d_e.f-g"
        );
        assert_eq!(tag_value("a*b?c\"d"), "a_b_c_d");
    }

    #[test]
    fn a_config_without_a_role_has_no_tenant_step() {
        let mut config = config(None);
        config.log_distribution_role_arn = None;
        assert!(tenant_step(&config, "c", None).is_none());
    }
}
