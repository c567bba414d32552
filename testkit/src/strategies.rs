//! Proptest strategies shared by the property tests of several crates: the case count, hostile
//! partition values, valid tenant ids, and tenant configs (hostile, and ones validation accepts).

use logrelay_common::tenant::{DeliveryConfig, DeliveryType};
use proptest::collection::vec;
use proptest::prelude::*;

/// `cases` unless `PROPTEST_CASES` is set (then proptest's own default reads it).
pub fn cases(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

/// Partition values a hostile workload could choose: separators, escapes, path steps, the
/// encoding's own special spellings, unicode, control characters, values past the segment cap.
pub fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just("~".to_owned()),
        Just("%2F".to_owned()),
        Just("%2E%2E".to_owned()),
        Just("../other-tenant".to_owned()),
        Just("a/b/c/d/e".to_owned()),
        "[./%+~ a-zA-Z0-9_-]{0,40}",
        "\\PC{0,30}",
        "[\\x00-\\x1f\\x7f/\\\\]{1,10}",
        vec(any::<char>(), 0..24).prop_map(String::from_iter),
        // Past the 200-byte segment cap: cut and hashed.
        ("\\PC{1,4}", 60usize..300).prop_map(|(unit, n)| unit.repeat(n)),
        // Shaped like a decoded truncated segment: `{prefix}~{16 hex}`.
        ("[a-z]{172,183}", "[0-9a-f]{16}").prop_map(|(prefix, hash)| format!("{prefix}~{hash}")),
    ]
}

/// Tenant ids that pass validation (`[A-Za-z0-9_-]{1,128}`).
pub fn tenant_id() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z][a-z0-9-]{0,20}", "[A-Za-z0-9_-]{1,128}"]
}

/// Configs with hostile values in every field.
pub fn hostile_config() -> impl Strategy<Value = DeliveryConfig> {
    let text = || prop_oneof![hostile_value(), "[a-z0-9:/._{}-]{0,30}"];
    let opt = move || prop::option::of(text());
    (
        (
            prop_oneof![tenant_id(), hostile_value()],
            any::<bool>(),
            any::<bool>(),
            vec(text(), 0..3),
            vec(prop_oneof![Just("API".to_owned()), text()], 0..3),
        ),
        (opt(), opt(), prop::option::of(any::<i64>()), opt(), opt()),
        (opt(), prop::option::of(any::<i32>()), opt(), opt()),
    )
        .prop_map(
            |(
                (tenant_id, s3, enabled, desired_logs, groups),
                (target_region, external_id, ttl, role, group),
                (template, retention_days, bucket, bucket_prefix),
            )| DeliveryConfig {
                tenant_id,
                delivery_type: if s3 {
                    DeliveryType::S3
                } else {
                    DeliveryType::Cloudwatch
                },
                enabled,
                desired_logs,
                groups,
                target_region,
                external_id,
                ttl,
                created_at: None,
                updated_at: None,
                log_distribution_role_arn: role,
                log_group_name: group,
                log_stream_template: template,
                retention_days,
                bucket_name: bucket,
                bucket_prefix,
                bucket_owner_account_id: None,
                extra: Default::default(),
            },
        )
}

/// Configs that pass validation, with hostile application names (validation only asks them to be
/// non-blank).
pub fn valid_config() -> impl Strategy<Value = DeliveryConfig> {
    (
        tenant_id(),
        any::<bool>(),
        vec("[^\\s]\\PC{0,20}", 0..3),
        prop::option::of(prop_oneof![
            Just("{pod_name}"),
            Just("{namespace}/{application}/{pod_name}"),
            Just("static-{cluster_id}")
        ]),
        prop::option::of("[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]"),
        prop::option::of("[A-Za-z0-9_+=,.@:/-]{2,40}"),
    )
        .prop_map(
            |(tenant_id, s3, desired_logs, template, bucket_prefix, external_id)| DeliveryConfig {
                log_distribution_role_arn: (!s3)
                    .then(|| "arn:aws:iam::123456789012:role/logrelay".to_owned()),
                log_group_name: (!s3).then(|| format!("/logrelay/{tenant_id}")),
                log_stream_template: template.filter(|_| !s3).map(str::to_owned),
                bucket_name: s3.then(|| "tenant-bucket".to_owned()),
                bucket_prefix: bucket_prefix.filter(|_| s3).map(|p| format!("{p}/")),
                bucket_owner_account_id: None,
                delivery_type: if s3 {
                    DeliveryType::S3
                } else {
                    DeliveryType::Cloudwatch
                },
                tenant_id,
                enabled: true,
                desired_logs,
                groups: Vec::new(),
                target_region: None,
                external_id,
                ttl: None,
                created_at: None,
                updated_at: None,
                retention_days: None,
                extra: Default::default(),
            },
        )
}
