//! `tenants onboard`: the tenant's cloudwatch config with its ExternalId, and exactly what the
//! customer must deploy — the parameters of `cloudformation/customer-log-distribution-role.yaml`
//! and the `aws cloudformation deploy` command.
//!
//! The plan is computed without side effects ([`plan`]) so it is tested directly; the command in
//! `super::commands` reads the current config, writes the new one and prints.

use super::blank_config;
use super::external_id::RandomError;
use logrelay_common::tenant::{ConfigProblem, DeliveryConfig, DeliveryType, validate_tenant_id};
use serde::Serialize;

/// File name of the customer template (in `cloudformation/` of this repository).
pub const CUSTOMER_TEMPLATE_FILE: &str = "customer-log-distribution-role.yaml";
/// The template's default `RoleName`; its names must start with this.
pub const DEFAULT_ROLE_NAME: &str = "CustomerLogDistribution";
/// The template's default `LogGroupPrefix`, used when the log group lies below it.
pub const TEMPLATE_LOG_GROUP_PREFIX: &str = "/ROSA/cluster-logs/";
/// The template's `ExternalId` `MinLength`: a stored id shorter than this is replaced.
pub const TEMPLATE_MIN_EXTERNAL_ID_CHARS: usize = 16;
/// The template's `LogRetentionDays` default, used when the config sets no retention.
pub const TEMPLATE_DEFAULT_RETENTION_DAYS: i32 = 30;
/// The template's `LogGroupSuffix` pattern allows at most 200 characters.
const MAX_LOG_GROUP_SUFFIX_CHARS: usize = 200;
/// The template's `RoleName` pattern allows at most 40 characters after the prefix.
const MAX_ROLE_NAME_SUFFIX_CHARS: usize = 40;
/// Longest CloudFormation stack name.
const MAX_STACK_NAME_CHARS: usize = 128;

/// What the operator asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnboardRequest {
    /// Tenant id.
    pub tenant_id: String,
    /// The customer's AWS account (12 digits).
    pub account_id: String,
    /// Region to deliver to (default: the config's, else the processor's).
    pub target_region: Option<String>,
    /// Log group (default: the config's, else `/ROSA/cluster-logs/<tenant>`).
    pub log_group_name: Option<String>,
    /// Role name in the customer's account.
    pub role_name: String,
    /// The central role the customer's role trusts.
    pub central_role_arn: String,
    /// Replace a stored ExternalId.
    pub rotate_external_id: bool,
    /// Enable the config now (new configs are otherwise created disabled).
    pub enable: bool,
    /// Let the customer's stack create the log group (`CreateLogGroup=true`).
    pub create_log_group: bool,
}

/// One `ParameterKey`/`ParameterValue` pair, in the JSON form that both `aws cloudformation
/// deploy --parameter-overrides file://…` and `create-stack --parameters file://…` read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TemplateParameter {
    /// Parameter name.
    pub parameter_key: String,
    /// Its value.
    pub parameter_value: String,
}

/// The result of onboarding: the config to store and what to send the customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Onboarding {
    /// The cloudwatch config to write.
    pub config: DeliveryConfig,
    /// `updated_at` of the config read (for the conditional write); `None` when it is new.
    pub previous_updated_at: Option<String>,
    /// Whether the config is new.
    pub created: bool,
    /// Whether a new ExternalId was generated (else the stored one is kept).
    pub external_id_generated: bool,
    /// The template's parameters.
    pub parameters: Vec<TemplateParameter>,
    /// Suggested stack name.
    pub stack_name: String,
    /// Region to deploy the stack in (the delivery region).
    pub region: String,
}

/// Onboarding cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum OnboardError {
    /// A flag is invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// The flag.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The resulting config is invalid.
    #[error("the resulting config is invalid: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Config {
        /// Every problem.
        problems: Vec<ConfigProblem>,
    },
    /// No random ExternalId could be made.
    #[error(transparent)]
    Random(#[from] RandomError),
}

fn invalid(field: &'static str, message: impl Into<String>) -> OnboardError {
    OnboardError::Invalid {
        field,
        message: message.into(),
    }
}

/// Plans onboarding from the request and the stored cloudwatch config (if any). Fields onboarding
/// does not own are kept; a stored ExternalId is kept unless rotation is asked for or it is too
/// short for the template. `default_region` is the processor's region; `now` is RFC 3339.
pub fn plan(
    request: &OnboardRequest,
    existing: Option<DeliveryConfig>,
    default_region: &str,
    now: &str,
    new_external_id: impl FnOnce() -> Result<String, RandomError>,
) -> Result<Onboarding, OnboardError> {
    validate_tenant_id(&request.tenant_id).map_err(|problem| invalid("TENANT", problem.message))?;
    if request.account_id.len() != 12 || !request.account_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            "--account",
            format!("{:?} is not a 12-digit AWS account id", request.account_id),
        ));
    }
    check_role_name(&request.role_name)?;
    let partition = partition_of(&request.central_role_arn).ok_or_else(|| {
        invalid(
            "--central-role-arn (CENTRAL_LOG_DISTRIBUTION_ROLE_ARN)",
            format!("{:?} is not an IAM role ARN", request.central_role_arn),
        )
    })?;
    let created = existing.is_none();
    let previous_updated_at = existing
        .as_ref()
        .and_then(|config| config.updated_at.clone());
    let mut config = match existing {
        Some(config) => config,
        None => blank_config(&request.tenant_id, DeliveryType::Cloudwatch)
            .map_err(|error| invalid("TENANT", error.to_string()))?,
    };
    if created {
        config.enabled = request.enable;
    } else if request.enable {
        config.enabled = true;
    }
    config.log_distribution_role_arn = Some(format!(
        "arn:{partition}:iam::{}:role/{}",
        request.account_id, request.role_name
    ));
    let region = request
        .target_region
        .clone()
        .or_else(|| config.target_region.clone())
        .unwrap_or_else(|| default_region.to_owned());
    config.target_region = Some(region.clone());
    let group = request
        .log_group_name
        .clone()
        .or_else(|| config.log_group_name.clone())
        .unwrap_or_else(|| format!("{TEMPLATE_LOG_GROUP_PREFIX}{}", request.tenant_id));
    let (prefix, suffix) = split_log_group(&group)?;
    config.log_group_name = Some(group);
    let reusable = config
        .external_id
        .as_ref()
        .is_some_and(|id| id.chars().count() >= TEMPLATE_MIN_EXTERNAL_ID_CHARS);
    let external_id_generated = request.rotate_external_id || !reusable;
    if external_id_generated {
        config.external_id = Some(new_external_id()?);
    }
    config.updated_at = Some(now.to_owned());
    if config.created_at.is_none() {
        config.created_at = Some(now.to_owned());
    }
    config
        .validate()
        .map_err(|problems| OnboardError::Config { problems })?;

    let external_id = config.external_id.clone().unwrap_or_default();
    let mut parameters = vec![
        parameter("CentralLogDistributionRoleArn", &request.central_role_arn),
        parameter("ExternalId", &external_id),
        parameter("TenantId", &request.tenant_id),
        parameter("RoleName", &request.role_name),
        parameter("LogGroupPrefix", &prefix),
        parameter(
            "CreateLogGroup",
            if request.create_log_group {
                "true"
            } else {
                "false"
            },
        ),
    ];
    if request.create_log_group {
        parameters.push(parameter("LogGroupSuffix", &suffix));
        let days = config
            .retention_days
            .unwrap_or(TEMPLATE_DEFAULT_RETENTION_DAYS);
        parameters.push(parameter("LogRetentionDays", &days.to_string()));
    }
    Ok(Onboarding {
        config,
        previous_updated_at,
        created,
        external_id_generated,
        parameters,
        stack_name: stack_name(&request.tenant_id),
        region,
    })
}

/// The parameters as the JSON file the customer passes to `aws cloudformation deploy`.
pub fn parameters_json(parameters: &[TemplateParameter]) -> String {
    let mut text = serde_json::to_string_pretty(parameters).unwrap_or_else(|_| "[]".to_owned());
    text.push('\n');
    text
}

/// The command the customer runs in their account, reading the parameters from `parameters_file`.
pub fn deploy_command(onboarding: &Onboarding, parameters_file: &str) -> String {
    stack_deploy_command(&onboarding.stack_name, &onboarding.region, parameters_file)
}

/// The customer's `aws cloudformation deploy` of the template as stack `stack_name` in `region`.
pub fn stack_deploy_command(stack_name: &str, region: &str, parameters_file: &str) -> String {
    format!(
        "aws cloudformation deploy --template-file {CUSTOMER_TEMPLATE_FILE} --stack-name {stack_name} --region {region} --capabilities CAPABILITY_NAMED_IAM --parameter-overrides {}",
        shell_quote(&format!("file://{parameters_file}")),
    )
}

/// `RoleName`: `CustomerLogDistribution` followed by up to 40 of `[A-Za-z0-9+=,.@_-]`.
fn check_role_name(name: &str) -> Result<(), OnboardError> {
    let rest = name.strip_prefix(DEFAULT_ROLE_NAME).ok_or_else(|| {
        invalid(
            "--role-name",
            format!(
                "must start with {DEFAULT_ROLE_NAME} (the central role may assume only such roles)"
            ),
        )
    })?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
    if rest.chars().count() > MAX_ROLE_NAME_SUFFIX_CHARS || !rest.chars().all(allowed) {
        return Err(invalid(
            "--role-name",
            format!(
                "after {DEFAULT_ROLE_NAME}, at most {MAX_ROLE_NAME_SUFFIX_CHARS} of A-Z a-z 0-9 + = , . @ _ -"
            ),
        ));
    }
    Ok(())
}

/// Splits a log group into the template's `LogGroupPrefix` (starts and ends with `/`) and
/// `LogGroupSuffix`: the default prefix when the group lies below it, else its parent path.
fn split_log_group(group: &str) -> Result<(String, String), OnboardError> {
    let (prefix, suffix) = match group.strip_prefix(TEMPLATE_LOG_GROUP_PREFIX) {
        Some(rest) if !rest.is_empty() => (TEMPLATE_LOG_GROUP_PREFIX, rest),
        _ => {
            let cut = group.rfind('/').map_or(0, |at| at + 1);
            group.split_at(cut)
        }
    };
    if !prefix.starts_with('/') || prefix.len() < 2 || suffix.is_empty() {
        return Err(invalid(
            "--log-group",
            format!(
                "{group:?} cannot be granted by the customer template: use a name like {TEMPLATE_LOG_GROUP_PREFIX}<tenant> (a /prefix/ and a name)"
            ),
        ));
    }
    if suffix.chars().count() > MAX_LOG_GROUP_SUFFIX_CHARS {
        return Err(invalid(
            "--log-group",
            format!(
                "the part after {prefix} is longer than the template's {MAX_LOG_GROUP_SUFFIX_CHARS} characters"
            ),
        ));
    }
    Ok((prefix.to_owned(), suffix.to_owned()))
}

/// `logrelay-<tenant>` with `_` as `-` (stack names allow `[A-Za-z][-A-Za-z0-9]*`).
pub fn stack_name(tenant_id: &str) -> String {
    format!("logrelay-{}", tenant_id.replace('_', "-"))
        .chars()
        .take(MAX_STACK_NAME_CHARS)
        .collect()
}

/// The partition of an IAM role ARN (`aws`, `aws-cn`, `aws-us-gov`, …).
fn partition_of(role_arn: &str) -> Option<&str> {
    logrelay_common::aws::role_account_id(role_arn)?;
    role_arn.split(':').nth(1)
}

fn parameter(key: &str, value: &str) -> TemplateParameter {
    TemplateParameter {
        parameter_key: key.to_owned(),
        parameter_value: value.to_owned(),
    }
}

/// Quotes a word for POSIX shells when it holds anything but safe characters.
pub fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CENTRAL: &str = "arn:aws:iam::111111111111:role/central-log-distribution";
    const NOW: &str = "2024-05-01T10:00:00Z";

    fn request() -> OnboardRequest {
        OnboardRequest {
            tenant_id: "acme".into(),
            account_id: "222222222222".into(),
            target_region: Some("eu-west-1".into()),
            log_group_name: None,
            role_name: DEFAULT_ROLE_NAME.into(),
            central_role_arn: CENTRAL.into(),
            rotate_external_id: false,
            enable: false,
            create_log_group: true,
        }
    }

    fn fixed_id() -> Result<String, RandomError> {
        Ok("N3wlyGeneratedExternalId0123456789abcdefABCDEF".into())
    }

    fn value<'a>(onboarding: &'a Onboarding, key: &str) -> Option<&'a str> {
        onboarding
            .parameters
            .iter()
            .find(|p| p.parameter_key == key)
            .map(|p| p.parameter_value.as_str())
    }

    #[test]
    fn a_new_tenant_gets_a_disabled_config_with_a_fresh_external_id_and_every_parameter() {
        let onboarding = plan(&request(), None, "us-east-1", NOW, fixed_id).expect("plan");
        let config = &onboarding.config;
        assert!(onboarding.created && onboarding.external_id_generated);
        assert!(!config.enabled);
        assert_eq!(config.delivery_type, DeliveryType::Cloudwatch);
        assert_eq!(
            config.log_distribution_role_arn.as_deref(),
            Some("arn:aws:iam::222222222222:role/CustomerLogDistribution")
        );
        assert_eq!(
            config.log_group_name.as_deref(),
            Some("/ROSA/cluster-logs/acme")
        );
        assert_eq!(config.target_region.as_deref(), Some("eu-west-1"));
        assert_eq!(config.created_at.as_deref(), Some(NOW));
        assert_eq!(
            value(&onboarding, "ExternalId"),
            config.external_id.as_deref()
        );
        assert_eq!(
            value(&onboarding, "CentralLogDistributionRoleArn"),
            Some(CENTRAL)
        );
        assert_eq!(value(&onboarding, "TenantId"), Some("acme"));
        assert_eq!(
            value(&onboarding, "LogGroupPrefix"),
            Some("/ROSA/cluster-logs/")
        );
        assert_eq!(value(&onboarding, "LogGroupSuffix"), Some("acme"));
        assert_eq!(value(&onboarding, "LogRetentionDays"), Some("30"));
        assert_eq!(onboarding.stack_name, "logrelay-acme");
        let command = deploy_command(&onboarding, "acme parameters.json");
        assert_eq!(
            command,
            "aws cloudformation deploy --template-file customer-log-distribution-role.yaml --stack-name logrelay-acme --region eu-west-1 --capabilities CAPABILITY_NAMED_IAM --parameter-overrides 'file://acme parameters.json'"
        );
    }

    #[test]
    fn onboarding_again_keeps_the_external_id_and_other_fields_unless_rotation_is_asked() {
        let first = plan(&request(), None, "us-east-1", NOW, fixed_id).expect("plan");
        let mut stored = first.config.clone();
        stored.enabled = true;
        stored.retention_days = Some(90);
        stored.groups = vec!["API".into()];
        stored.updated_at = Some("2024-05-02T00:00:00Z".into());
        let again = plan(
            &OnboardRequest {
                target_region: None,
                ..request()
            },
            Some(stored.clone()),
            "us-east-1",
            "2024-06-01T00:00:00Z",
            || panic!("must not generate"),
        )
        .expect("plan");
        assert!(!again.created && !again.external_id_generated);
        assert_eq!(again.config.external_id, stored.external_id);
        assert!(again.config.enabled, "kept");
        assert_eq!(again.config.groups, ["API"]);
        assert_eq!(
            again.config.target_region.as_deref(),
            Some("eu-west-1"),
            "kept"
        );
        assert_eq!(again.config.created_at.as_deref(), Some(NOW));
        assert_eq!(
            again.previous_updated_at.as_deref(),
            Some("2024-05-02T00:00:00Z")
        );
        assert_eq!(value(&again, "LogRetentionDays"), Some("90"));

        let rotated = plan(
            &OnboardRequest {
                rotate_external_id: true,
                ..request()
            },
            Some(stored),
            "us-east-1",
            NOW,
            || Ok("AnotherGeneratedExternalId0123456789".into()),
        )
        .expect("plan");
        assert_eq!(
            rotated.config.external_id.as_deref(),
            Some("AnotherGeneratedExternalId0123456789")
        );
    }

    #[test]
    fn a_short_stored_external_id_is_replaced_because_the_template_refuses_it() {
        let mut stored = blank_config("acme", DeliveryType::Cloudwatch).expect("config");
        stored.external_id = Some("short-id".into());
        let onboarding = plan(&request(), Some(stored), "us-east-1", NOW, fixed_id).expect("plan");
        assert!(onboarding.external_id_generated);
    }

    #[test]
    fn log_groups_map_to_a_template_prefix_or_are_refused() {
        assert_eq!(
            split_log_group("/ROSA/cluster-logs/acme/prod").expect("ok"),
            ("/ROSA/cluster-logs/".into(), "acme/prod".into())
        );
        assert_eq!(
            split_log_group("/customer/acme").expect("ok"),
            ("/customer/".into(), "acme".into())
        );
        for bad in ["acme", "/acme", "/customer/"] {
            assert!(split_log_group(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_flags_are_named() {
        let field = |request: OnboardRequest| match plan(&request, None, "us-east-1", NOW, fixed_id)
        {
            Err(OnboardError::Invalid { field, .. }) => field,
            other => panic!("expected invalid, got {other:?}"),
        };
        assert_eq!(
            field(OnboardRequest {
                account_id: "1234".into(),
                ..request()
            }),
            "--account"
        );
        assert_eq!(
            field(OnboardRequest {
                role_name: "Other".into(),
                ..request()
            }),
            "--role-name"
        );
        assert_eq!(
            field(OnboardRequest {
                tenant_id: "a/b".into(),
                ..request()
            }),
            "TENANT"
        );
        assert_eq!(
            field(OnboardRequest {
                central_role_arn: "central".into(),
                ..request()
            }),
            "--central-role-arn (CENTRAL_LOG_DISTRIBUTION_ROLE_ARN)"
        );
        assert!(matches!(
            plan(
                &OnboardRequest {
                    target_region: Some("moon".into()),
                    ..request()
                },
                None,
                "us-east-1",
                NOW,
                fixed_id
            ),
            Err(OnboardError::Config { .. })
        ));
    }

    #[test]
    fn shell_quoting_leaves_plain_words_alone() {
        assert_eq!(shell_quote("file://acme.json"), "file://acme.json");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    /// The parameters onboarding emits must be the template's: every one exists there, and every
    /// template parameter without a default is emitted.
    #[test]
    fn parameters_match_the_customer_template() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../cloudformation")
            .join(CUSTOMER_TEMPLATE_FILE);
        let text = std::fs::read_to_string(&path).expect("the customer template exists");
        let template: serde_yaml::Value = serde_yaml::from_str(&text).expect("template is YAML");
        let declared = template["Parameters"].as_mapping().expect("Parameters");
        let onboarding = plan(&request(), None, "us-east-1", NOW, fixed_id).expect("plan");
        for emitted in &onboarding.parameters {
            let spec = &declared
                .get(emitted.parameter_key.as_str())
                .unwrap_or_else(|| panic!("{} is not a template parameter", emitted.parameter_key));
            if let Some(allowed) = spec.get("AllowedValues").and_then(|v| v.as_sequence()) {
                let allowed: Vec<String> = allowed
                    .iter()
                    .map(|v| match v {
                        serde_yaml::Value::String(s) => s.clone(),
                        other => serde_yaml::to_string(other)
                            .expect("scalar")
                            .trim()
                            .to_owned(),
                    })
                    .collect();
                assert!(
                    allowed.contains(&emitted.parameter_value),
                    "{}: {allowed:?}",
                    emitted.parameter_key
                );
            }
            if let Some(min) = spec.get("MinLength").and_then(serde_yaml::Value::as_u64) {
                assert!(
                    emitted.parameter_value.len() as u64 >= min,
                    "{}",
                    emitted.parameter_key
                );
            }
        }
        for (name, spec) in declared {
            let name = name.as_str().expect("name");
            if spec.get("Default").is_none() {
                assert!(
                    value(&onboarding, name).is_some(),
                    "required parameter {name} is not emitted"
                );
            }
        }
    }
}
