//! Rules the `tenants` tools apply before a config is written, enabled or reported valid, beyond
//! [`DeliveryConfig::validate`]: an enabled cloudwatch config needs its own ExternalId, unless the
//! operator passes `--allow-no-external-id` (for a migration), which is logged at WARN.

use super::files::Entry;
use logrelay_common::tenant::{ConfigProblem, DeliveryConfig};

/// What the ExternalId rule says about one config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The rule holds.
    Accepted,
    /// The rule is broken, but the operator allowed it: a warning.
    Allowed(ConfigProblem),
    /// The rule is broken: a problem.
    Refused(ConfigProblem),
}

/// Applies the ExternalId rule to `config`; `allow` is `--allow-no-external-id`.
pub fn external_id_verdict(config: &DeliveryConfig, allow: bool) -> Verdict {
    match config.require_external_id() {
        Ok(()) => Verdict::Accepted,
        Err(error) if allow => {
            tracing::warn!(
                tenant = %error.tenant_id,
                delivery_type = %config.delivery_type,
                "accepting an enabled cloudwatch config without its own ExternalId (--allow-no-external-id)"
            );
            Verdict::Allowed(error.into())
        }
        Err(error) => Verdict::Refused(error.into()),
    }
}

/// Applies the ExternalId rule to every decoded entry: a refusal becomes one of its problems, an
/// allowed exception one of its warnings.
pub fn check_entries(entries: &mut [Entry], allow: bool) {
    for entry in entries {
        let Some(config) = &entry.config else {
            continue;
        };
        match external_id_verdict(config, allow) {
            Verdict::Accepted => {}
            Verdict::Allowed(problem) => entry.warnings.push(problem),
            Verdict::Refused(problem) => entry.problems.push(problem),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::blank_config;
    use logrelay_common::tenant::DeliveryType;

    fn cloudwatch(external_id: Option<&str>) -> DeliveryConfig {
        let mut config = blank_config("acme", DeliveryType::Cloudwatch).expect("config");
        config.log_distribution_role_arn = Some("arn:aws:iam::111111111111:role/logs".into());
        config.log_group_name = Some("/acme".into());
        config.external_id = external_id.map(str::to_owned);
        config
    }

    #[test]
    fn a_missing_external_id_is_refused_unless_allowed() {
        let Verdict::Refused(problem) = external_id_verdict(&cloudwatch(None), false) else {
            panic!("refused without the flag");
        };
        assert_eq!(problem.field, "external_id");
        assert!(problem.message.contains("tenant acme"), "{problem}");
        assert!(matches!(
            external_id_verdict(&cloudwatch(None), true),
            Verdict::Allowed(_)
        ));
        assert_eq!(
            external_id_verdict(&cloudwatch(Some("acme-ext")), false),
            Verdict::Accepted
        );
    }
}
