//! Property tests of tenant configs as DynamoDB items (`logrelay_processor::tenant::item`): items
//! of any shape read or fail cleanly, and what reads (or what validation accepts) round-trips
//! through an item. The stable-Rust stand-in for fuzzing, like `common/tests/properties.rs`.

use aws_sdk_dynamodb::types::AttributeValue;
use logrelay_common::tenant::{DeliveryConfig, DeliveryType};
use logrelay_processor::tenant::DynamoItem;
use proptest::collection::{hash_map, vec};
use proptest::prelude::*;
use std::collections::HashMap;

/// `cases` unless `PROPTEST_CASES` is set (then proptest's own default reads it).
fn cases(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

/// Partition values a hostile workload could choose: separators, escapes, path steps, the
/// encoding's own special spellings, unicode, control characters, values past the segment cap.
fn hostile_value() -> impl Strategy<Value = String> {
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
fn tenant_id() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z][a-z0-9-]{0,20}", "[A-Za-z0-9_-]{1,128}"]
}

/// Arbitrary DynamoDB attribute values, nested a few levels.
fn attribute_value() -> impl Strategy<Value = AttributeValue> {
    let leaf = prop_oneof![
        "\\PC{0,20}".prop_map(AttributeValue::S),
        prop_oneof![
            "-?[0-9]{1,30}(\\.[0-9]{1,5})?(e-?[0-9]{1,4})?",
            "[0-9a-z.+-]{0,8}"
        ]
        .prop_map(AttributeValue::N),
        any::<bool>().prop_map(AttributeValue::Bool),
        any::<bool>().prop_map(AttributeValue::Null),
        vec(any::<u8>(), 0..8).prop_map(|b| AttributeValue::B(aws_smithy_types::Blob::new(b))),
        vec("\\PC{0,6}", 0..4).prop_map(AttributeValue::Ss),
        vec("[0-9]{1,5}", 0..4).prop_map(AttributeValue::Ns),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(AttributeValue::L),
            hash_map("[a-z_]{1,8}", inner, 0..4).prop_map(AttributeValue::M),
        ]
    })
}

/// Items: arbitrary attributes mixed with the real field names, right or wrong types.
fn item() -> impl Strategy<Value = HashMap<String, AttributeValue>> {
    let field = prop_oneof![
        Just("tenant_id"),
        Just("type"),
        Just("enabled"),
        Just("desired_logs"),
        Just("groups"),
        Just("external_id"),
        Just("ttl"),
        Just("log_group_name"),
        Just("log_distribution_role_arn"),
        Just("log_stream_template"),
        Just("retention_days"),
        Just("bucket_name"),
        Just("bucket_prefix"),
        Just("target_region"),
        Just("extra_attr"),
    ];
    let typed = prop_oneof![
        Just(AttributeValue::S("cloudwatch".into())),
        Just(AttributeValue::S("s3".into())),
        Just(AttributeValue::S("acme".into())),
        attribute_value(),
    ];
    (
        hash_map(field.prop_map(str::to_owned), typed, 0..10),
        hash_map("[a-z]{1,6}", attribute_value(), 0..3),
    )
        .prop_map(|(mut fields, extra)| {
            fields.extend(extra);
            fields
        })
}

/// Configs with hostile values in every field.
fn hostile_config() -> impl Strategy<Value = DeliveryConfig> {
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
fn valid_config() -> impl Strategy<Value = DeliveryConfig> {
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

proptest! {
    #![proptest_config(cases(128))]

    /// DynamoDB items of any shape never panic `from_item`; what reads writes back to an item
    /// that reads to the same config.
    #[test]
    fn items_of_any_shape_read_or_fail_cleanly(item in item()) {
        if let Ok(config) = DeliveryConfig::from_item(&item) {
            let _ = config.validate();
            let written = config.to_item().expect("a read config writes");
            let again = DeliveryConfig::from_item(&written).expect("a written config reads");
            prop_assert_eq!(again, config);
        }
    }

    /// A config validation accepts round-trips through a DynamoDB item.
    #[test]
    fn accepted_configs_round_trip_through_an_item(
        hostile in hostile_config(),
        valid in valid_config(),
        use_valid in any::<bool>(),
    ) {
        let config = if use_valid { valid } else { hostile };
        if config.validate().is_ok() {
            let item = config.to_item().expect("item");
            prop_assert_eq!(DeliveryConfig::from_item(&item).expect("reads back"), config.clone());
        }
    }
}
