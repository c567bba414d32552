//! Property tests of the processor's intake and record reading, the stable-Rust stand-in for
//! fuzzing (cargo-fuzz needs nightly; see `docs/reliability.md`): notification bodies (S3 event,
//! SNS envelope, EventBridge, `s3:TestEvent`, manual input with `s3://` lines and Lambda SQS
//! events), the lenient NDJSON record reader, and what those feed: the CloudWatch batcher and the
//! S3 copy's destination key.
//!
//! Properties: nothing panics on arbitrary input or on JSON of the wrong shape; nesting stays
//! bounded; intake never yields an object whose key differs from the stored key it announces — so
//! the tenant the processor derives from the key is the tenant the key was built for; batches
//! respect every CloudWatch limit and the batcher's memory bound; copies stay below the tenant's
//! prefix. One end-to-end test (`the_processor_never_logs_a_tenants_external_id_even_at_trace`)
//! backs the threat model's "secrets are never logged" for the delivery path (`docs/security.md`).
//!
//! Default case counts keep the whole file to a few seconds in debug; `PROPTEST_CASES=N` raises
//! every property to N cases (see `docs/reliability.md` for a longer campaign).

mod intake_support;

use chrono::{TimeZone, Utc};
use logrelay_common::key::{ObjectKey, Partition, decode_notification_key};
use logrelay_common::record::{LogRecord, Stream};
use logrelay_common::tenant::DeliveryConfig;
use logrelay_processor::deliver::cloudwatch::batch::{
    BatchLimits, Batcher, EVENT_OVERHEAD_BYTES, MAX_BATCH_BYTES, MAX_BATCH_EVENTS,
    MAX_BATCH_SPAN_MS, MAX_BUFFERED_BYTES, SealedBatch,
};
use logrelay_processor::deliver::s3::CopyRequest;
use logrelay_processor::intake::event::{
    BodyError, BodySource, IntakeItem, MAX_NESTING, parse_body, parse_manual_entries,
    parse_manual_input,
};
use logrelay_processor::process::{parse_record, parse_timestamp_text};
use logrelay_processor::tenant::DynamoItem;
use logrelay_testkit::unique_name;
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{Value, json};

/// `cases` unless `PROPTEST_CASES` is set (then proptest's own default reads it).
fn cases(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

// ---------------------------------------------------------------------------------------------
// Strategies and builders
// ---------------------------------------------------------------------------------------------

/// Stored keys: keys the agent builds from hostile partitions, and arbitrary text.
fn stored_key() -> impl Strategy<Value = String> {
    let value = || {
        prop_oneof![
            Just(String::new()),
            Just("..".to_owned()),
            "[./%+~ a-zA-Z0-9_-]{0,20}",
            "\\PC{0,12}",
            "[\\x00-\\x1f/]{1,6}",
        ]
    };
    prop_oneof![
        (value(), value(), value(), value(), 0i64..4_102_444_800).prop_map(|(c, k, a, p, secs)| {
            let created = Utc.timestamp_opt(secs, 0).single().expect("in range");
            ObjectKey::new(Partition::new(c, k, a, p), created, "id-1")
                .expect("valid")
                .to_key()
        }),
        "\\PC{1,60}",
        vec(any::<char>(), 1..30).prop_map(String::from_iter),
    ]
}

/// Form-encodes a key as S3 event notifications do: space is `+`; `+`, `%`, non-ASCII and control
/// bytes are escaped; other characters are escaped or not as `escape_more` says (S3 and emulators
/// differ), with upper- or lowercase hex.
fn form_encode(key: &str, escape_more: &[bool], lower_hex: bool) -> String {
    let mut out = String::new();
    let mut choices = escape_more.iter().copied().cycle();
    for c in key.chars() {
        let escape_optional = choices.next().unwrap_or(false);
        let must = c == '+' || c == '%' || !c.is_ascii() || c.is_ascii_control();
        if c == ' ' {
            out.push('+');
        } else if must || (escape_optional && !c.is_ascii_alphanumeric()) {
            let mut utf8 = [0; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                if lower_hex {
                    out.push_str(&format!("%{byte:02x}"));
                } else {
                    out.push_str(&format!("%{byte:02X}"));
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn s3_event(bucket: &str, raw_key: &str) -> Value {
    json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": "2024-01-02T03:04:05.000Z",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": raw_key, "size": 3, "eTag": "\"e\""}}
    }]})
}

fn eventbridge_event(bucket: &str, key: &str) -> Value {
    json!({
        "version": "0",
        "source": "aws.s3",
        "detail-type": "Object Created",
        "time": "2024-01-02T03:04:05Z",
        "detail": {"bucket": {"name": bucket}, "object": {"key": key, "size": 3, "etag": "e"}}
    })
}

fn sns_envelope(message: &str) -> Value {
    json!({
        "Type": "Notification",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:central",
        "Message": message,
    })
}

/// The one object a body announced.
fn single_object(items: &[IntakeItem]) -> Option<(&str, &str)> {
    match items {
        [IntakeItem::Object(object)] => Some((object.bucket.as_str(), object.key.as_str())),
        _ => None,
    }
}

/// Arbitrary JSON built from the intake's own field names, so shapes are recognized and then
/// broken in every field: grammar-aware input for the shape detector.
fn notification_json() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        Just("Records"),
        Just("Message"),
        Just("TopicArn"),
        Just("Type"),
        Just("source"),
        Just("detail-type"),
        Just("detail"),
        Just("bucket"),
        Just("name"),
        Just("object"),
        Just("key"),
        Just("eventVersion"),
        Just("eventName"),
        Just("s3"),
        Just("Event"),
        Just("Bucket"),
        Just("body"),
        Just("eventSource"),
        Just("size"),
        Just("eTag"),
        Just("etag"),
        Just("versionId"),
        Just("version-id"),
        Just("sequencer"),
        Just("eventTime"),
        Just("time"),
        Just("other"),
    ]
    .prop_map(str::to_owned);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just("2.1"),
            Just("3.0"),
            Just("ObjectCreated:Put"),
            Just("s3:ObjectCreated:Copy"),
            Just("ObjectRemoved:Delete"),
            Just("aws.s3"),
            Just("Object Created"),
            Just("aws:sqs"),
            Just("s3:TestEvent"),
            Just("Notification"),
            Just("null"),
            Just("%zz"),
            Just("%FF"),
            Just("a+b%2Fc"),
            Just("1700000000"),
            Just("2024-01-02T03:04:05Z"),
            Just(""),
        ]
        .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::from),
            vec((name.clone(), inner.clone()), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            // A document carried as a string (SNS `Message`, SQS `body`).
            inner.prop_map(|value| Value::from(value.to_string())),
        ]
    })
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(cases(256))]

    /// Arbitrary text and arbitrary JSON in the notification vocabulary never panic intake, from
    /// a queue or from manual input; every error has a metrics label.
    #[test]
    fn bodies_of_any_shape_never_panic(
        text in prop_oneof!["\\PC{0,200}", "[{}\\[\\]\":,s3/ ]{0,80}"],
        value in notification_json(),
    ) {
        for body in [text.clone(), value.to_string(), serde_json::to_string_pretty(&value).expect("json")] {
            for source in [BodySource::Queue, BodySource::Manual] {
                match parse_body(&body, source) {
                    Ok(items) => for item in items {
                        if let IntakeItem::Object(object) = item {
                            prop_assert!(!object.bucket.is_empty() && !object.key.is_empty());
                        }
                    },
                    Err(error) => prop_assert!(!error.reason().is_empty()),
                }
            }
            let _ = parse_manual_input(&body);
        }
        let _ = parse_manual_input(&format!("{text}\n{value}\ns3://{text}"));
    }

    /// Key fidelity: whatever key S3 stored, and however the notification form-encodes it, the
    /// announced object's key is exactly the stored key, through every envelope (raw S3 event,
    /// SNS, a Lambda SQS event on manual input, EventBridge, `s3://` lines).
    #[test]
    fn intake_yields_exactly_the_stored_key(
        key in stored_key(),
        bucket in "[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]",
        escape_more in vec(any::<bool>(), 1..8),
        lower_hex in any::<bool>(),
    ) {
        let encoded = form_encode(&key, &escape_more, lower_hex);
        let event = s3_event(&bucket, &encoded).to_string();
        let sns = sns_envelope(&event).to_string();
        let lambda = json!({"Records": [{"messageId": "m", "eventSource": "aws:sqs", "body": sns}]}).to_string();
        let bridge = eventbridge_event(&bucket, &key).to_string();
        for (body, source) in [
            (&event, BodySource::Queue),
            (&sns, BodySource::Queue),
            (&bridge, BodySource::Queue),
            (&lambda, BodySource::Manual),
        ] {
            let items = parse_body(body, source).expect("a well-formed notification parses");
            prop_assert_eq!(single_object(&items), Some((bucket.as_str(), key.as_str())), "{}", body);
        }
        if !key.chars().any(char::is_whitespace) {
            let entries = parse_manual_input(&format!("s3://{bucket}/{key}\n{sns}\n"));
            prop_assert_eq!(entries.len(), 2);
            for entry in entries {
                let items = entry.expect("parses");
                prop_assert_eq!(single_object(&items), Some((bucket.as_str(), key.as_str())));
            }
        }
    }

    /// Whatever text a notification carries as its key, intake either refuses it (`BadKey`) or
    /// yields exactly its form-decoding: never another key.
    #[test]
    fn intake_never_yields_a_key_other_than_the_decoded_input(
        raw in prop_oneof!["[%+0-9a-fA-F/ ~.]{1,30}", "\\PC{1,40}", "(%[0-9A-Fa-f]{2}){1,8}"],
        wrap_in_sns in any::<bool>(),
    ) {
        let mut body = s3_event("central", &raw).to_string();
        if wrap_in_sns {
            body = sns_envelope(&body).to_string();
        }
        match (parse_body(&body, BodySource::Queue), decode_notification_key(&raw)) {
            (Ok(items), Ok(decoded)) => {
                prop_assert_eq!(single_object(&items), Some(("central", decoded.as_str())));
            }
            (Err(BodyError::BadKey { source, .. }), Err(expected)) => prop_assert_eq!(source, expected),
            (got, decoded) => prop_assert!(false, "intake {:?} disagrees with decoding {:?}", got, decoded),
        }
    }

    /// End to end on the key: the agent builds a key for any partition, S3 announces it, intake
    /// reads it, and the processor's key parser finds the same tenant the agent wrote.
    #[test]
    fn the_tenant_read_from_an_announced_key_is_the_tenant_it_was_built_for(
        tenant in "[A-Za-z0-9_-]{1,128}",
        cluster in "\\PC{0,30}",
        application in prop_oneof!["\\PC{0,30}", Just("../../other".to_owned()), Just("%2F..%2F".to_owned())],
        pod in "\\PC{0,30}",
        escape_more in vec(any::<bool>(), 1..8),
        lower_hex in any::<bool>(),
    ) {
        let partition = Partition::new(tenant.clone(), cluster, application, pod);
        let key = ObjectKey::new(partition, Utc::now(), "id").expect("valid").to_key();
        let body = sns_envelope(&s3_event("central", &form_encode(&key, &escape_more, lower_hex)).to_string()).to_string();
        let items = parse_body(&body, BodySource::Queue).expect("parses");
        let (_, announced) = single_object(&items).expect("one object");
        let parsed = ObjectKey::parse(announced).expect("the announced key parses");
        prop_assert_eq!(parsed.partition.customer_id, tenant);
    }

    /// Nesting (SNS envelopes, documents quoted as strings) is followed up to `MAX_NESTING`
    /// levels and refused past it, never by running out of stack.
    #[test]
    fn nesting_is_followed_to_the_limit_and_no_further(
        wrappers in vec(any::<bool>(), 0..(MAX_NESTING + 4)),
        key in "[a-z0-9/]{1,20}",
    ) {
        let mut body = s3_event("central", &key).to_string();
        for sns in &wrappers {
            body = if *sns { sns_envelope(&body).to_string() } else { Value::from(body).to_string() };
        }
        let result = parse_body(&body, BodySource::Queue);
        if wrappers.len() <= MAX_NESTING {
            let items = result.expect("within the nesting limit");
            prop_assert_eq!(single_object(&items), Some(("central", key.as_str())));
        } else {
            prop_assert_eq!(result, Err(BodyError::TooDeep));
        }
    }

    /// Manual input where some compact bodies are cut off at any byte: every intact body still
    /// yields its object, in order, and each input line is one entry (nothing hidden, nothing
    /// unreported).
    #[test]
    fn a_cut_off_body_never_hides_the_bodies_after_it(
        entries in vec(("[a-z0-9/._-]{1,20}", any::<bool>(), any::<prop::sample::Index>()), 1..8),
    ) {
        let mut input = String::new();
        let mut intact = Vec::new();
        for (key, cut, at) in &entries {
            let body = s3_event("central", key).to_string();
            if *cut {
                let end = at.index(body.len() - 1).max(1);
                input.push_str(&body[..end]);
            } else {
                input.push_str(&body);
                intact.push(key.clone());
            }
            input.push('\n');
        }
        let parsed = parse_manual_entries(&input);
        let lines: Vec<usize> = parsed.iter().map(|(line, _)| *line).collect();
        prop_assert_eq!(lines, (1..=entries.len()).collect::<Vec<_>>(), "{}", input);
        let objects: Vec<String> = parsed
            .iter()
            .filter_map(|(_, entry)| entry.as_ref().ok())
            .filter_map(|items| single_object(items).map(|(_, key)| key.to_owned()))
            .collect();
        prop_assert_eq!(objects, intact, "{}", input);
    }

    /// Manual input of many bodies and `s3://` lines, compact or pretty-printed, yields one entry
    /// per input in order.
    #[test]
    fn manual_input_yields_one_entry_per_body_in_order(
        keys in vec("[a-z0-9/._-]{1,20}", 1..8),
        styles in vec(0u8..3, 1..8),
    ) {
        let mut input = String::new();
        for (key, style) in keys.iter().zip(styles.iter().cycle()) {
            match style {
                0 => input.push_str(&format!("s3://central/{key}\n")),
                1 => input.push_str(&format!("{}\n", s3_event("central", key))),
                _ => input.push_str(&serde_json::to_string_pretty(&sns_envelope(&s3_event("central", key).to_string())).expect("json")),
            }
        }
        let entries = parse_manual_input(&input);
        prop_assert_eq!(entries.len(), keys.len());
        for (entry, key) in entries.into_iter().zip(&keys) {
            let items = entry.expect("parses");
            prop_assert_eq!(single_object(&items), Some(("central", key.as_str())));
        }
    }
}

/// The seed corpus: real notifications as moto and AWS write them (the unit tests' fixtures).
const SEEDS: [&str; 8] = [
    include_str!("../src/intake/testdata/aws_s3_object_created.json"),
    include_str!("../src/intake/testdata/moto_eventbridge_object_created.json"),
    include_str!("../src/intake/testdata/moto_eventbridge_tags_added.json"),
    include_str!("../src/intake/testdata/moto_s3_object_created.json"),
    include_str!("../src/intake/testdata/moto_s3_test_event.json"),
    include_str!("../src/intake/testdata/moto_sns_object_created.json"),
    include_str!("../src/intake/testdata/moto_sns_object_removed.json"),
    include_str!("../src/intake/testdata/moto_sns_test_event.json"),
];

proptest! {
    #![proptest_config(cases(512))]

    /// Mutation fuzzing from the seed corpus: real notifications with bytes inserted, removed or
    /// replaced never panic intake; every seed itself parses.
    #[test]
    fn mutated_real_notifications_never_panic(
        seed in 0..SEEDS.len(),
        edits in vec((any::<prop::sample::Index>(), 0u8..3, prop_oneof![
            any::<u8>(), Just(b'"'), Just(b'\\'), Just(b'{'), Just(b'}'), Just(b'['), Just(b']'), Just(b'%'), Just(b'+'),
        ]), 1..6),
    ) {
        prop_assert!(parse_body(SEEDS[seed], BodySource::Queue).is_ok());
        let mut bytes = SEEDS[seed].as_bytes().to_vec();
        for (at, op, byte) in edits {
            let i = at.index(bytes.len() + 1);
            match op {
                0 => bytes.insert(i, byte),
                1 if i < bytes.len() => { bytes.remove(i); }
                _ if i < bytes.len() => bytes[i] = byte,
                _ => {}
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        for source in [BodySource::Queue, BodySource::Manual] {
            if let Ok(items) = parse_body(&text, source) {
                for item in items {
                    if let IntakeItem::Object(object) = item {
                        prop_assert!(!object.bucket.is_empty() && !object.key.is_empty());
                    }
                }
            }
        }
        let _ = parse_manual_input(&text);
    }
}

/// A record with hostile metadata values.
fn hostile_record() -> impl Strategy<Value = LogRecord> {
    let value = || prop_oneof!["\\PC{0,20}", "[\"\\\\/%~ \u{0}\u{2028}a-z]{0,12}"];
    (
        0i64..4_102_444_800,
        "\\PC{0,60}",
        value(),
        value(),
        value(),
        value(),
    )
        .prop_map(
            |(secs, message, customer_id, cluster_id, application, pod_name)| {
                let timestamp = Utc.timestamp_opt(secs, 0).single().expect("in range");
                LogRecord {
                    timestamp,
                    message,
                    stream: Stream::Stdout,
                    customer_id,
                    cluster_id,
                    namespace: "ns".into(),
                    application,
                    pod_name,
                    container_name: "c".into(),
                    node_name: "n".into(),
                    ingest_timestamp: timestamp,
                    kubernetes: None,
                    extra: serde_json::Map::new(),
                }
            },
        )
}

proptest! {
    #![proptest_config(cases(256))]

    /// The record reader never panics on arbitrary lines (bytes, JSON of any shape, timestamps of
    /// any size), and reads a schema record's tenant, message and time exactly: the isolation
    /// check compares the key's tenant with exactly what the record claims.
    #[test]
    fn record_lines_never_panic_and_keep_the_claimed_tenant(
        bytes in vec(any::<u8>(), 0..200),
        timestamp in prop_oneof![
            "\\PC{0,30}".prop_map(Value::from),
            "-?[0-9]{1,45}".prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            Just(Value::from(i128::MIN.to_string())),
            Just(Value::from(i128::MAX.to_string())),
        ],
        message in prop_oneof!["\\PC{0,20}".prop_map(Value::from), Just(json!({"structured": [1, 2]})), Just(Value::Null)],
        record in hostile_record(),
    ) {
        let _ = parse_record(&bytes);
        if let Value::String(text) = &timestamp {
            let _ = parse_timestamp_text(text);
        }
        let line = json!({"message": message, "timestamp": timestamp, "customer_id": "acme"}).to_string();
        if let Ok(parsed) = parse_record(line.as_bytes()) {
            prop_assert_eq!(parsed.customer_id.as_deref(), Some("acme"));
        }
        let line = serde_json::to_vec(&record).expect("json");
        let parsed = parse_record(&line).expect("a schema record parses");
        prop_assert_eq!(parsed.customer_id.as_deref(), Some(record.customer_id.as_str()));
        prop_assert_eq!(&*parsed.message, record.message.as_str());
        prop_assert_eq!(parsed.timestamp_ms, Some(record.timestamp.timestamp_millis()));
    }
}

/// Regression (found by `record_lines_never_panic_and_keep_the_claimed_tenant`): a digit-string
/// timestamp equal to `i128::MIN` overflowed `abs()` in `epoch_int_to_ms` — a panic in debug
/// builds, epoch 0 in release. It is now an unreadable time, so the record gets the fallback.
#[test]
fn timestamp_text_of_i128_min_is_unreadable_not_a_panic() {
    assert_eq!(parse_timestamp_text(&i128::MIN.to_string()), None);
    let line = format!(r#"{{"message":"m","timestamp":"{}"}}"#, i128::MIN);
    let record = parse_record(line.as_bytes()).expect("a record with a message");
    assert_eq!(record.timestamp_ms, None);
}

// ---------------------------------------------------------------------------------------------
// What intake feeds: CloudWatch batches and S3 copies
// ---------------------------------------------------------------------------------------------

/// One record pushed into the batcher: stream, time, message length and its repeated character.
fn batcher_input() -> impl Strategy<Value = Vec<(u8, i64, usize, char)>> {
    vec(
        (
            prop_oneof![4 => 0u8..4, 1 => any::<u8>()],
            prop_oneof![
                0i64..10_000,
                Just(0),
                Just(MAX_BATCH_SPAN_MS),
                Just(MAX_BATCH_SPAN_MS + 1),
                any::<i64>(),
            ],
            prop_oneof![8 => 0usize..200, 1 => 100_000usize..400_000, 1 => Just(MAX_BATCH_BYTES)],
            prop_oneof![Just('a'), Just('é'), Just('😀')],
        ),
        0..120,
    )
}

proptest! {
    #![proptest_config(cases(48))]

    /// Whatever an object holds, every sealed batch respects CloudWatch's limits (events, bytes,
    /// 24-hour span), is sorted, and no message byte is lost or invented; the open batches never
    /// hold more than the batcher's memory bound, so one object cannot grow a config's memory
    /// without limit.
    #[test]
    fn batches_respect_every_limit_and_lose_nothing(
        input in batcher_input(),
        max_events in prop_oneof![1usize..20, Just(MAX_BATCH_EVENTS)],
    ) {
        let limits = BatchLimits::with_max_events(max_events);
        let mut batcher = Batcher::new(limits);
        let mut sealed: Vec<SealedBatch> = Vec::new();
        let mut pushed_bytes = 0usize;
        let mut open_bytes = 0usize;
        for (stream, timestamp, len, c) in &input {
            let message: String = std::iter::repeat_n(*c, len / c.len_utf8()).collect();
            pushed_bytes += message.len();
            open_bytes += message.len();
            let before = sealed.len();
            batcher.push(&format!("stream-{stream}"), *timestamp, message, &mut sealed);
            for batch in &sealed[before..] {
                open_bytes -= batch.events.iter().map(|e| e.message.len()).sum::<usize>();
            }
            prop_assert!(open_bytes <= MAX_BUFFERED_BYTES, "open batches hold {} bytes", open_bytes);
        }
        batcher.finish(&mut sealed);
        let mut sealed_bytes = 0;
        for (i, batch) in sealed.iter().enumerate() {
            prop_assert_eq!(batch.seq, i as u64);
            prop_assert!(!batch.events.is_empty());
            prop_assert!(batch.events.len() <= limits.max_events);
            let bytes: usize = batch.events.iter().map(|e| e.message.len() + EVENT_OVERHEAD_BYTES).sum();
            prop_assert_eq!(batch.bytes, bytes);
            prop_assert!(batch.bytes <= MAX_BATCH_BYTES);
            let (first, last) = (batch.events[0].timestamp_ms, batch.events[batch.events.len() - 1].timestamp_ms);
            prop_assert!(last.saturating_sub(first) <= MAX_BATCH_SPAN_MS);
            prop_assert!(batch.events.windows(2).all(|w| w[0].timestamp_ms <= w[1].timestamp_ms));
            sealed_bytes += batch.events.iter().map(|e| e.message.len()).sum::<usize>();
        }
        prop_assert_eq!(sealed_bytes, pushed_bytes);
    }

    /// An S3 copy of any object of a tenant lands below that tenant's configured prefix, at the
    /// object's own layout key, with metadata values that are valid header text.
    #[test]
    fn s3_copies_stay_below_the_tenants_prefix(
        tenant in "[A-Za-z0-9_-]{1,40}",
        prefix in prop_oneof![Just(None), "[a-z0-9][a-z0-9/._-]{0,30}/".prop_map(Some), Just(Some(String::new()))],
        cluster in "\\PC{0,30}",
        application in prop_oneof!["\\PC{0,30}", Just("../../other".to_owned())],
        pod in "[\\x00-\\x7f]{0,20}",
    ) {
        let config: DeliveryConfig = serde_json::from_value(json!({
            "tenant_id": tenant, "type": "s3", "bucket_name": "tenant-bucket", "bucket_prefix": prefix,
        })).expect("config");
        let partition = Partition::new(tenant.clone(), cluster.clone(), application, pod);
        let layout = ObjectKey::new(partition, Utc::now(), "id").expect("valid").to_key();
        let request = CopyRequest::for_config(&config, "central", &format!("prod/{layout}"), None, "etag", &layout, &cluster)
            .expect("an s3 config copies");
        let below = format!("{}{}/", config.effective_bucket_prefix(), tenant);
        prop_assert!(request.key.starts_with(&below), "{} outside {}", request.key, below);
        prop_assert_eq!(&request.key[config.effective_bucket_prefix().len()..], layout.as_str());
        prop_assert_eq!(request.bucket.as_str(), "tenant-bucket");
        for (_, value) in &request.metadata {
            prop_assert!(value.bytes().all(|b| (0x20..0x7f).contains(&b)), "{:?}", value);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

/// The delivery path (the processor binary, manual mode, debug logging) delivers a tenant whose
/// config has its own ExternalId and a tenant that falls back to `DEFAULT_EXTERNAL_ID`, and neither
/// secret appears in its output or logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_processor_never_logs_a_tenants_external_id_even_at_trace() {
    use intake_support::{
        ACCOUNT_A, ACCOUNT_B, Central, expected_lines, messages, processor_command,
    };
    use std::io::Write;

    let central = Central::new().await;
    let (own, fallback) = (unique_name("own"), unique_name("fallback"));
    let (own_group, fallback_group) = (format!("/logrelay/{own}"), format!("/logrelay/{fallback}"));
    // `add_cloudwatch_tenant` gives the config the ExternalId `ext-{tenant}`.
    central
        .add_cloudwatch_tenant(&own, ACCOUNT_A, &own_group)
        .await;
    let own_secret = format!("ext-{own}");
    let default_secret = format!("default-secret-{}", unique_name("x"));
    let role = logrelay_testkit::create_role(
        &logrelay_testkit::Moto::shared()
            .await
            .config(ACCOUNT_B)
            .await,
        &unique_name("delivery"),
        &logrelay_testkit::trust_policy("*", Some(&default_secret)),
        Some(&logrelay_testkit::allow_policy(&["logs:*"])),
    )
    .await
    .expect("customer role");
    let config: DeliveryConfig = serde_json::from_value(json!({
        "tenant_id": fallback, "type": "cloudwatch", "log_distribution_role_arn": role,
        "log_group_name": fallback_group, "target_region": "us-east-1",
    }))
    .expect("config without an ExternalId");
    aws_sdk_dynamodb::Client::new(&central.aws)
        .put_item()
        .table_name(&central.tenant_table)
        .set_item(Some(config.to_item().expect("item")))
        .send()
        .await
        .expect("put config");
    let now = Utc::now();
    let first = central
        .put_object(&Partition::new(&own, "c1", "api", "p"), now, 3, "own")
        .await;
    let second = central
        .put_object(
            &Partition::new(&fallback, "c1", "api", "p"),
            now,
            2,
            "fallback",
        )
        .await;

    let mut env = central.processor_env(&central.moto_url);
    env.insert("RUST_LOG", "trace".to_owned());
    env.insert("DEFAULT_EXTERNAL_ID", default_secret.clone());
    let mut child = processor_command(&env)
        .arg("manual")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn processor");
    let input = format!("s3://{0}/{first}\ns3://{0}/{second}\n", central.bucket);
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let output = child.wait_with_output().expect("wait");
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(output.status.code(), Some(0), "stderr:\n{err}");
    assert_eq!(
        messages(ACCOUNT_A, &own_group).await,
        expected_lines("own", 3)
    );
    assert_eq!(
        messages(ACCOUNT_B, &fallback_group).await,
        expected_lines("fallback", 2)
    );
    assert!(
        err.contains("DEBUG") || err.contains("\"level\":\"DEBUG\""),
        "debug logging is on:\n{err}"
    );
    for secret in [&own_secret, &default_secret] {
        assert!(
            !out.contains(secret.as_str()) && !err.contains(secret.as_str()),
            "{secret} leaked:\n{err}"
        );
    }
}
