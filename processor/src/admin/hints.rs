//! What `tenants doctor` suggests when a step fails: the likely fix, from the AWS error code or
//! class, the operation that failed and the tenant's config. Hints never contain the ExternalId.

use crate::error::DeliveryError;
use crate::retry::Classified;
use logrelay_common::aws::{AwsError, ErrorClass};
use logrelay_common::tenant::DeliveryConfig;

/// The call that creates a missing log group.
const CREATE_LOG_GROUP: &str = "logs:CreateLogGroup";

/// Role names the central role may assume (the customer template's `RoleName` pattern).
pub const CUSTOMER_ROLE_NAME_PREFIX: &str = "CustomerLogDistribution";

/// The code to show for an error: AWS's code, else the class (moto's refusals carry no code).
pub fn shown_code(code: Option<&str>, class: ErrorClass) -> String {
    match code {
        Some(code) => code.to_owned(),
        None => match class {
            ErrorClass::AccessDenied => "AccessDenied (HTTP 403)".to_owned(),
            ErrorClass::Throttling => "Throttling".to_owned(),
            ErrorClass::Transient => "unreachable or 5xx".to_owned(),
            ErrorClass::NotFound => "NotFound".to_owned(),
            ErrorClass::Permanent => "error".to_owned(),
        },
    }
}

/// The code to show for a delivery error: AWS's code from its cause, else one from its reason label.
pub fn delivery_code(error: &DeliveryError) -> String {
    match error.cause.as_ref().and_then(|cause| cause.code.as_deref()) {
        Some(code) => code.to_owned(),
        None => reason_code(error.reason),
    }
}

/// The code to show for a delivery error without an AWS code, from its reason label.
pub fn reason_code(reason: &str) -> String {
    let class = match reason {
        "access_denied" => ErrorClass::AccessDenied,
        "throttled" => ErrorClass::Throttling,
        "aws_unavailable" => ErrorClass::Transient,
        "not_found" => ErrorClass::NotFound,
        _ => return reason.to_owned(),
    };
    shown_code(None, class)
}

/// Reading the tenant's configs failed.
pub fn table(failure: &Classified, table: &str, region: &str) -> String {
    match failure.class {
        ErrorClass::AccessDenied => format!(
            "The identity running this command needs dynamodb:Query, GetItem and PutItem on table {table}."
        ),
        ErrorClass::NotFound => format!(
            "Table {table} does not exist in {region}: set TENANT_CONFIG_TABLE (or --table) and AWS_REGION to where the tenant configs are."
        ),
        _ => format!(
            "DynamoDB in {region} did not answer; check AWS_REGION, AWS_ENDPOINT_URL and the network, then run again."
        ),
    }
}

/// Assuming the central role failed.
pub fn central_role(error: &AwsError, role_arn: &str) -> String {
    if error.is_access_denied() {
        format!(
            "The identity running this command may not assume {role_arn}: the central role's trust policy must trust it, and it needs sts:AssumeRole on the central role. Run doctor with the processor's own credentials."
        )
    } else {
        format!(
            "STS did not answer for {role_arn}; check the network and AWS_REGION, then run again."
        )
    }
}

/// Assuming the customer's role failed.
pub fn customer_role(
    error: &AwsError,
    config: &DeliveryConfig,
    central_role_arn: Option<&str>,
    external_id_sent: bool,
    region: &str,
) -> String {
    let role = config.log_distribution_role_arn.as_deref().unwrap_or("?");
    let account = logrelay_common::aws::role_account_id(role).unwrap_or("?");
    if let AwsError::InvalidRoleStep { reason, .. } = error {
        return format!(
            "The config cannot make a valid AssumeRole request ({reason}); fix it with `tenants put --update`."
        );
    }
    match error.code() {
        Some("RegionDisabledException") => {
            return format!(
                "STS is not activated for {region} in the operator's account: activate the region (IAM account settings) or fix target_region."
            );
        }
        Some("ExpiredToken" | "InvalidClientTokenId") => {
            return "The central session was refused; run again with valid processor credentials."
                .to_owned();
        }
        _ => {}
    }
    if !error.is_access_denied() {
        return format!(
            "STS in {region} could not be reached or failed: check that target_region ({region}) is a real region enabled for the operator's account, then run again."
        );
    }
    let trusted = central_role_arn.unwrap_or("the processor's identity");
    if refusal(error, role, external_id_sent) == Some(Refusal::TagSessionNotAllowed) {
        return Refusal::TagSessionNotAllowed.fix(trusted);
    }
    let mut hint = format!(
        "The customer role refused the central role. Check, most likely first: the stack's ExternalId parameter equals this config's external_id (re-send the parameters: `tenants onboard {tenant} --account {account}` keeps the stored ExternalId, then the customer updates the stack); the stack's CentralLogDistributionRoleArn is exactly {trusted}; its TenantId is {tenant}; the role {role} exists (IAM answers AccessDenied for a missing role too).",
        tenant = config.tenant_id,
    );
    if !external_id_sent {
        hint.push_str(" This config has no external_id (and DEFAULT_EXTERNAL_ID is unset), so none was sent; the customer template requires one: run `tenants onboard`.");
    }
    let role_name = role.rsplit('/').next().unwrap_or_default();
    if !role_name.starts_with(CUSTOMER_ROLE_NAME_PREFIX) {
        hint.push_str(&format!(
            " The role name does not start with {CUSTOMER_ROLE_NAME_PREFIX}, and the central role may only assume such roles."
        ));
    }
    hint
}

/// Why a customer role refused the central role, as far as the refusal and the config tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// AWS named `sts:TagSession`: the trust policy does not allow the session tags.
    TagSessionNotAllowed,
    /// The config has no ExternalId (and `DEFAULT_EXTERNAL_ID` is unset), so none was sent.
    ExternalIdMissing,
    /// The role name is outside `CustomerLogDistribution*`, which the central role may assume.
    RoleNameOutsideTemplate,
    /// AWS refused `sts:AssumeRole` and does not say why: the trusted principal, the ExternalId,
    /// the `tenant_id` tag condition or a missing role look the same.
    TrustOrExternalId,
}

/// The action AWS names in its message when the trust policy lacks it for tagged sessions.
const TAG_SESSION_ACTION: &str = "sts:TagSession";

/// Classifies an AccessDenied of the tenant hop; `None` for any other failure.
pub fn refusal(error: &AwsError, role_arn: &str, external_id_sent: bool) -> Option<Refusal> {
    if !error.is_access_denied() {
        return None;
    }
    let named_tag_session = match error {
        AwsError::Call { message, .. } => message.contains(TAG_SESSION_ACTION),
        AwsError::InvalidRoleStep { .. } => false,
    };
    let role_name = role_arn.rsplit('/').next().unwrap_or_default();
    Some(if named_tag_session {
        Refusal::TagSessionNotAllowed
    } else if !external_id_sent {
        Refusal::ExternalIdMissing
    } else if !role_name.starts_with(CUSTOMER_ROLE_NAME_PREFIX) {
        Refusal::RoleNameOutsideTemplate
    } else {
        Refusal::TrustOrExternalId
    })
}

impl Refusal {
    /// What the customer's role must change, for a role that should trust `central_role_arn`.
    pub fn fix(self, central_role_arn: &str) -> String {
        match self {
            Self::TagSessionNotAllowed => format!(
                "sts:TagSession not allowed: the role's trust policy must allow sts:TagSession (with sts:AssumeRole) for {central_role_arn}; the processor tags every session with tenant_id and cluster_id. Deploy the current template."
            ),
            Self::ExternalIdMissing => "ExternalId missing: the config has no external_id, so none is sent; the current template requires one. Onboard with --rotate-external-id to generate it and deploy the template with it.".to_owned(),
            Self::RoleNameOutsideTemplate => format!(
                "role name outside {CUSTOMER_ROLE_NAME_PREFIX}*: the central role may assume only such roles. Deploy the template as a new role (--role-name {CUSTOMER_ROLE_NAME_PREFIX}…)."
            ),
            Self::TrustOrExternalId => format!(
                "AssumeRole refused; AWS answers the same AccessDenied for each of these, so check all: (1) the trust principal is exactly {central_role_arn} (a proof-of-concept role trusts the old central role); (2) the role's sts:ExternalId condition equals this config's external_id (ExternalId mismatch); (3) sts:TagSession is allowed and aws:RequestTag/tenant_id is this tenant; (4) the role exists. Deploying the current template fixes all four."
            ),
        }
    }
}

/// The log group was not found in the target region (and no write was asked for).
pub fn log_group_missing(config: &DeliveryConfig, group: &str, region: &str) -> String {
    format!(
        "If the customer's stack creates {group} (CreateLogGroup=true), the stack is not deployed yet or was deployed in another region than target_region ({region}). Otherwise logrelay creates it on first delivery: run `tenants doctor {tenant} --write` to prove the role may create it (its name must start with the stack's LogGroupPrefix).",
        tenant = config.tenant_id,
    )
}

/// Listing log groups failed with something other than access denied.
pub fn log_group_check(failure: &Classified, region: &str) -> String {
    if failure.is_retryable() {
        format!("CloudWatch Logs in {region} is throttling or unavailable; run again.")
    } else {
        format!(
            "CloudWatch Logs in {region} refused the request; check that target_region ({region}) is right."
        )
    }
}

/// Writing the test event failed with `error`.
pub fn logs_write(error: &DeliveryError, group: &str, region: &str) -> String {
    if mentions_kms(&error.message) {
        return format!(
            "{group} is encrypted with a KMS key CloudWatch Logs may not use (or the key is disabled): the customer must allow the service principal logs.{region}.amazonaws.com in the key policy, or re-enable the key."
        );
    }
    let creating_group = error
        .cause
        .as_ref()
        .is_some_and(|cause| cause.operation == CREATE_LOG_GROUP);
    match error.reason {
        "access_denied" if creating_group => format!(
            "The role may not create {group}: its name must start with the stack's LogGroupPrefix, or the customer deploys with CreateLogGroup=true so the group exists."
        ),
        "access_denied" => format!(
            "The role may not write to {group}: the stack's LogGroupPrefix must be a prefix of the group name; also check SCPs and permissions boundaries in the customer account."
        ),
        "throttled" | "aws_unavailable" => {
            format!("CloudWatch Logs in {region} is throttling or unavailable; run again.")
        }
        "log_stream_unavailable" | "not_found" => {
            format!(
                "{group} or its stream disappeared while writing (is it being deleted?); run again."
            )
        }
        _ => format!(
            "CloudWatch Logs refused the event; check that target_region ({region}) and log_group_name are right."
        ),
    }
}

/// The bucket check failed. `status` is the HTTP status, `bucket_region` S3's
/// `x-amz-bucket-region` when it named one.
pub fn bucket(
    status: Option<u16>,
    bucket: &str,
    region: &str,
    bucket_region: Option<&str>,
    writer: &str,
) -> String {
    if let Some(actual) = bucket_region.filter(|actual| *actual != region) {
        return format!(
            "{bucket} is in {actual}: set the config's target_region to {actual} (`tenants put --tenant-id … --type s3 --target-region {actual} --update`)."
        );
    }
    match status {
        Some(404) => format!(
            "Bucket {bucket} does not exist: check bucket_name; the customer must create the bucket first."
        ),
        Some(403) => format!(
            "{writer} may not read {bucket}: delivery needs the bucket policy to allow it s3:PutObject (with the bucket-owner-full-control ACL); allowing s3:ListBucket too lets doctor check the bucket without writing."
        ),
        Some(301) => format!("{bucket} is in another region than {region}: fix target_region."),
        _ => format!("S3 in {region} did not answer for {bucket}; run again."),
    }
}

/// Writing the test object failed.
pub fn s3_write(class: ErrorClass, message: &str, bucket: &str, writer: &str) -> String {
    if mentions_kms(message) {
        return format!(
            "{bucket}'s default encryption uses a KMS key {writer} may not use: the key policy must allow it kms:GenerateDataKey and kms:Encrypt."
        );
    }
    match class {
        ErrorClass::AccessDenied => format!(
            "The bucket policy of {bucket} must allow {writer} s3:PutObject (with the bucket-owner-full-control ACL) under the config's bucket_prefix."
        ),
        class if class.is_retryable() => "S3 is throttling or unavailable; run again.".to_owned(),
        _ => format!("S3 refused the object; check bucket_name and bucket_prefix of {bucket}."),
    }
}

fn mentions_kms(message: &str) -> bool {
    message.contains("KMS") || message.contains("kms:")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AwsCause;

    fn config(role: &str) -> DeliveryConfig {
        serde_json::from_value(serde_json::json!({
            "tenant_id": "acme",
            "type": "cloudwatch",
            "log_distribution_role_arn": role,
            "log_group_name": "/ROSA/cluster-logs/acme",
            "external_id": "secret-external-id-123",
        }))
        .expect("config")
    }

    fn denied(code: Option<&str>) -> AwsError {
        AwsError::Call {
            operation: "sts:AssumeRole".into(),
            class: ErrorClass::AccessDenied,
            code: code.map(str::to_owned),
            message: "not authorized".into(),
            cause: None,
        }
    }

    fn write_failure(operation: &str, code: Option<&str>, message: &str) -> DeliveryError {
        let class = ErrorClass::AccessDenied;
        DeliveryError::permanent("access_denied", message).with_cause(Some(AwsCause {
            operation: operation.into(),
            class,
            code: code.map(str::to_owned),
        }))
    }

    #[test]
    fn codes_come_from_the_typed_aws_cause() {
        assert_eq!(
            delivery_code(&write_failure(
                "logs:PutLogEvents",
                Some("AccessDeniedException"),
                "User x is not authorized"
            )),
            "AccessDeniedException"
        );
        let unreachable = DeliveryError::transient("aws_unavailable", "dispatch failure: io")
            .with_cause(Some(AwsCause {
                operation: "logs:PutLogEvents".into(),
                class: ErrorClass::Transient,
                code: None,
            }));
        assert_eq!(delivery_code(&unreachable), "unreachable or 5xx");
        assert_eq!(
            delivery_code(&DeliveryError::permanent("plain", "plain text")),
            "plain"
        );
    }

    #[test]
    fn access_denied_on_the_customer_role_points_at_the_external_id_first_and_never_shows_it() {
        let config = config("arn:aws:iam::222222222222:role/CustomerLogDistribution");
        let hint = customer_role(
            &denied(None),
            &config,
            Some("arn:aws:iam::111111111111:role/central"),
            true,
            "eu-west-1",
        );
        assert!(hint.contains("ExternalId"), "{hint}");
        assert!(
            hint.find("ExternalId") < hint.find("CentralLogDistributionRoleArn"),
            "{hint}"
        );
        assert!(hint.contains("--account 222222222222"), "{hint}");
        assert!(!hint.contains("secret-external-id-123"));
        assert!(!hint.contains("may only assume"), "{hint}");
        assert!(
            hint.contains("the role arn:aws:iam::222222222222:role/CustomerLogDistribution exists"),
            "{hint}"
        );
    }

    #[test]
    fn customer_role_hints_name_a_missing_external_id_and_a_foreign_role_name() {
        let config = config("arn:aws:iam::222222222222:role/SomethingElse");
        let hint = customer_role(
            &denied(Some("AccessDenied")),
            &config,
            None,
            false,
            "eu-west-1",
        );
        assert!(hint.contains("none was sent"), "{hint}");
        assert!(hint.contains("may only assume"), "{hint}");
        let region = customer_role(
            &denied(Some("RegionDisabledException")),
            &config,
            None,
            true,
            "ap-east-1",
        );
        assert!(
            region.contains("ap-east-1") && region.contains("activate"),
            "{region}"
        );
    }

    fn denied_with(message: &str) -> AwsError {
        AwsError::Call {
            operation: "sts:AssumeRole".into(),
            class: ErrorClass::AccessDenied,
            code: Some("AccessDenied".into()),
            message: message.into(),
            cause: None,
        }
    }

    #[test]
    fn a_refusal_naming_tag_session_is_told_apart_from_the_undistinguishable_ones() {
        let role = "arn:aws:iam::222222222222:role/CustomerLogDistribution";
        // The message STS sends when the trust policy allows sts:AssumeRole but not sts:TagSession.
        let tags = denied_with(
            "User: arn:aws:sts::111111111111:assumed-role/central/s is not authorized to perform: sts:TagSession on resource: arn:aws:iam::222222222222:role/CustomerLogDistribution",
        );
        assert_eq!(
            refusal(&tags, role, true),
            Some(Refusal::TagSessionNotAllowed)
        );
        let single = customer_role(
            &tags,
            &config(role),
            Some("arn:aws:iam::111111111111:role/central"),
            true,
            "eu-west-1",
        );
        assert!(single.starts_with("sts:TagSession not allowed"), "{single}");
        let fix = Refusal::TagSessionNotAllowed.fix("arn:aws:iam::111111111111:role/central");
        assert!(
            fix.contains("must allow sts:TagSession (with sts:AssumeRole) for arn:aws:iam::111111111111:role/central"),
            "{fix}"
        );
        let assume = denied_with(
            "User: arn:aws:sts::111111111111:assumed-role/central/s is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::222222222222:role/CustomerLogDistribution",
        );
        assert_eq!(
            refusal(&assume, role, true),
            Some(Refusal::TrustOrExternalId)
        );
        let fix = Refusal::TrustOrExternalId.fix("arn:aws:iam::111111111111:role/central");
        for check in [
            "AWS answers the same AccessDenied",
            "trust principal is exactly arn:aws:iam::111111111111:role/central",
            "sts:ExternalId condition equals this config's external_id",
            "sts:TagSession is allowed",
            "the role exists",
        ] {
            assert!(fix.contains(check), "{check}: {fix}");
        }
        assert_eq!(
            refusal(&assume, role, false),
            Some(Refusal::ExternalIdMissing)
        );
        assert_eq!(
            refusal(&assume, "arn:aws:iam::222222222222:role/poc", true),
            Some(Refusal::RoleNameOutsideTemplate)
        );
        let unreachable = AwsError::Call {
            operation: "sts:AssumeRole".into(),
            class: ErrorClass::Transient,
            code: None,
            message: "dispatch failure".into(),
            cause: None,
        };
        assert_eq!(refusal(&unreachable, role, true), None);
    }

    #[test]
    fn write_hints_distinguish_kms_creation_and_writing() {
        let kms = write_failure("logs:PutLogEvents", None, "kms:Decrypt denied: KMS key");
        assert!(logs_write(&kms, "/g", "eu-west-1").contains("logs.eu-west-1.amazonaws.com"));
        let create = write_failure("logs:CreateLogGroup", None, "access denied");
        assert!(logs_write(&create, "/g", "r").contains("CreateLogGroup=true"));
        let put = write_failure("logs:PutLogEvents", None, "access denied");
        assert!(logs_write(&put, "/g", "r").contains("LogGroupPrefix"));
    }

    #[test]
    fn bucket_hints_prefer_the_region_s3_names() {
        let hint = bucket(Some(301), "b", "us-east-1", Some("eu-west-1"), "central");
        assert!(hint.contains("target_region to eu-west-1"), "{hint}");
        assert!(bucket(Some(404), "b", "r", None, "c").contains("does not exist"));
        assert!(bucket(Some(403), "b", "r", Some("r"), "central").contains("s3:PutObject"));
    }
}
