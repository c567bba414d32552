//! Property tests of tenant configs as DynamoDB items (`logrelay_processor::tenant::item`): items
//! of any shape read or fail cleanly, and what reads (or what validation accepts) round-trips
//! through an item. The stable-Rust stand-in for fuzzing, like `common/tests/properties.rs`.

use aws_sdk_dynamodb::types::AttributeValue;
use logrelay_common::tenant::DeliveryConfig;
use logrelay_processor::tenant::DynamoItem;
use logrelay_testkit::strategies::{cases, hostile_config, valid_config};
use proptest::collection::{hash_map, vec};
use proptest::prelude::*;
use std::collections::HashMap;

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
