//! Property tests of what both ends share, the stable-Rust stand-in for fuzzing (cargo-fuzz needs
//! nightly; see `docs/reliability.md`): the S3 key layout (`key`), the gzip NDJSON reader
//! (`codec`) and tenant config parsing and validation (`tenant`).
//!
//! Properties: nothing panics on arbitrary input; memory stays within each API's declared limits
//! (decompressed-size cap, line cap, S3's key length); keys built from any partition parse back,
//! and no partition value other than `customer_id` can change a key's first segment; a tenant's
//! key prefix never lists another tenant's objects.
//!
//! Default case counts keep the whole file to a few seconds in debug; `PROPTEST_CASES=N` raises
//! every property to N cases (see `docs/reliability.md` for a longer campaign).

use chrono::{DateTime, TimeZone, Utc};
use flate2::write::GzEncoder;
use logrelay_common::codec::{CodecError, LineError, NdjsonGzReader, ReadLimits};
use logrelay_common::key::{
    MAX_KEY_BYTES, MAX_PREFIX_BYTES, MAX_SEGMENT_BYTES, ObjectKey, Partition,
    decode_notification_key, decode_segment, encode_segment, validate_prefix,
};
use logrelay_common::record::LogRecord;
use logrelay_common::tenant::{
    DeliveryConfig, MAX_LOG_STREAM_NAME_CHARS, StreamFields, validate_tenant_id,
};
use logrelay_testkit::strategies::{cases, hostile_config, hostile_value, tenant_id, valid_config};
use proptest::collection::vec;
use proptest::prelude::*;
use std::io::Write;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// S3 keys
// ---------------------------------------------------------------------------------------------

fn partition() -> impl Strategy<Value = Partition> {
    (
        hostile_value(),
        hostile_value(),
        hostile_value(),
        hostile_value(),
    )
        .prop_map(|(c, k, a, p)| Partition::new(c, k, a, p))
}

fn created() -> impl Strategy<Value = DateTime<Utc>> {
    (-62_167_219_200i64..253_402_300_799).prop_map(|secs| {
        Utc.timestamp_opt(secs, 0)
            .single()
            .expect("years 0000-9999 are in range")
    })
}

fn object_key() -> impl Strategy<Value = ObjectKey> {
    (partition(), created(), "[a-z0-9-]{1,64}").prop_map(|(partition, created, id)| {
        ObjectKey::new(partition, created, id).expect("valid id and year")
    })
}

/// Whether `value` is too long for a segment as it is (its plain percent-encoding passes the
/// cap), so the key may hold it cut, with a hash in place of the rest.
fn may_be_cut(value: &str) -> bool {
    let plain: usize = value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
                1
            } else {
                3
            }
        })
        .sum();
    plain > MAX_SEGMENT_BYTES
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

proptest! {
    #![proptest_config(cases(256))]

    /// Any partition builds a key of five `/`-separated parts within S3's limit that parses back
    /// to the same partition (values past the segment cap come back as their cut-and-hashed form,
    /// which encodes to the same segment).
    #[test]
    fn any_partition_builds_a_bounded_key_that_parses_back(key in object_key(), prefix in "[a-zA-Z0-9/_-]{0,120}") {
        let text = key.to_key();
        prop_assert!(text.len() <= MAX_KEY_BYTES - MAX_PREFIX_BYTES);
        prop_assert_eq!(text.split('/').count(), 5);
        for segment in text.split('/').take(4) {
            prop_assert!(!segment.is_empty() && segment != "." && segment != "..");
            prop_assert!(segment.len() <= MAX_SEGMENT_BYTES);
        }
        let parsed = ObjectKey::parse(&text).expect("built keys parse");
        prop_assert_eq!(parsed.to_key(), text.clone());
        let values = |p: &Partition| [p.customer_id.clone(), p.cluster_id.clone(), p.application.clone(), p.pod_name.clone()];
        for (sent, got) in values(&key.partition).iter().zip(values(&parsed.partition)) {
            prop_assert_eq!(encode_segment(&got), encode_segment(sent));
            prop_assert!(&got == sent || may_be_cut(sent), "only a cut value comes back changed");
        }
        prop_assert_eq!(parsed.created, key.created);
        prop_assert_eq!(&parsed.id, &key.id);

        if validate_prefix(&prefix).is_ok() {
            let with_prefix = key.to_key_with_prefix(&prefix);
            prop_assert!(with_prefix.len() <= MAX_KEY_BYTES);
            prop_assert_eq!(ObjectKey::parse_with_prefix(&with_prefix, &prefix), Ok(parsed));
        }
    }

    /// Isolation: the first segment encodes `customer_id` and nothing else. Whatever cluster,
    /// application and pod hold, the key's first segment is `encode_segment(customer_id)` and the
    /// parsed key names the same customer; for a valid tenant id, exactly that id.
    #[test]
    fn no_other_value_changes_the_first_segment(
        customer in prop_oneof![tenant_id(), hostile_value()],
        a in partition(),
        b in partition(),
        created in created(),
    ) {
        let first = Partition::customer_prefix(&customer);
        for other in [a, b] {
            let partition = Partition { customer_id: customer.clone(), ..other };
            let key = ObjectKey::new(partition, created, "x").expect("valid").to_key();
            prop_assert!(key.starts_with(&first), "{key:?} outside {first:?}");
            let segment = encode_segment(&customer);
            prop_assert_eq!(key.split('/').next(), Some(segment.as_str()));
            let parsed = ObjectKey::parse(&key).expect("parses");
            if parsed.partition.customer_id != customer {
                // Only a value cut by the encoding comes back changed, and then never as a valid
                // tenant id (it holds the `~` marker): the processor refuses such keys.
                prop_assert!(may_be_cut(&customer));
                prop_assert!(validate_tenant_id(&parsed.partition.customer_id).is_err());
            }
        }
        if validate_tenant_id(&customer).is_ok() {
            prop_assert_eq!(encode_segment(&customer), customer.clone(), "tenant ids are their own segment");
        }
    }

    /// Isolation of listings: an object built for any customer value other than a tenant id never
    /// sits under that tenant's prefix, and never parses as that tenant's object, near misses
    /// included (case, suffixes, separators, escapes of the id itself).
    #[test]
    fn a_tenant_prefix_never_holds_another_customers_objects(
        tenant in tenant_id(),
        other in prop_oneof![
            hostile_value(),
            tenant_id(),
            "[a-z]{1,8}".prop_map(|s| s.to_uppercase()),
        ],
        variant in 0usize..8,
        rest in partition(),
    ) {
        let near_miss = match variant {
            0 => other,
            1 => format!("{tenant}/{other}"),
            2 => format!("{tenant}{other}"),
            3 => format!("{other}/{tenant}"),
            4 => tenant.to_uppercase(),
            5 => tenant.bytes().map(|b| format!("%{b:02X}")).collect(),
            6 => format!("{tenant} "),
            _ => format!("./{tenant}"),
        };
        prop_assume!(near_miss != tenant);
        let partition = Partition { customer_id: near_miss, ..rest };
        let key = ObjectKey::new(partition, Utc::now(), "x").expect("valid").to_key();
        prop_assert!(!key.starts_with(&Partition::customer_prefix(&tenant)));
        let parsed = ObjectKey::parse(&key).expect("parses");
        prop_assert_ne!(parsed.partition.customer_id, tenant);
    }

    /// The key parser and segment decoder never panic on arbitrary text or on mutations of valid
    /// keys, and accept only the one canonical spelling the builder writes.
    #[test]
    fn parser_accepts_only_canonical_keys(
        key in object_key(),
        edits in vec((any::<prop::sample::Index>(), prop_oneof![
            Just('/'), Just('%'), Just('~'), Just('.'), Just('a'), Just('A'), Just('é'), Just('\0'),
        ], 0u8..3), 0..4),
        arbitrary in "\\PC{0,300}",
    ) {
        let mut text: Vec<char> = key.to_key().chars().collect();
        for (at, c, op) in edits {
            let i = at.index(text.len() + 1);
            match op {
                0 => text.insert(i, c),
                1 if i < text.len() => { text.remove(i); }
                _ if i < text.len() => text[i] = c,
                _ => {}
            }
        }
        for candidate in [String::from_iter(text), arbitrary] {
            if let Ok(parsed) = ObjectKey::parse(&candidate) {
                prop_assert_eq!(parsed.to_key(), candidate.clone());
            }
            for segment in candidate.split('/') {
                if let Ok(value) = decode_segment(segment) {
                    prop_assert_eq!(encode_segment(&value), segment);
                }
            }
        }
    }

    /// Notification keys: whatever S3 (or an emulator) form-encodes decodes back to the stored
    /// key; arbitrary text never panics and never decodes to more bytes than it has.
    #[test]
    fn notification_keys_decode_to_the_stored_key(
        key in prop_oneof![object_key().prop_map(|k| k.to_key()), "\\PC{0,80}", vec(any::<char>(), 0..40).prop_map(String::from_iter)],
        escape_more in vec(any::<bool>(), 1..8),
        lower_hex in any::<bool>(),
        arbitrary in "[%+0-9a-fA-FgG/ \\PC]{0,80}",
    ) {
        let encoded = form_encode(&key, &escape_more, lower_hex);
        prop_assert_eq!(decode_notification_key(&encoded), Ok(key));
        if let Ok(decoded) = decode_notification_key(&arbitrary) {
            prop_assert!(decoded.len() <= arbitrary.len());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The gzip NDJSON reader
// ---------------------------------------------------------------------------------------------

/// One item the reader produced.
#[derive(Debug, Clone, PartialEq)]
enum Read {
    Line(u64, Vec<u8>),
    Bad(u64, LineError),
}

/// Everything the reader yields, stopping at the first object-level error.
struct ReadResult {
    items: Vec<Read>,
    error: Option<CodecError>,
    decompressed: u64,
    lines_read: u64,
    skipped_empty: u64,
}

fn read_all(data: &[u8], limits: ReadLimits, buffer: usize) -> ReadResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut reader =
            NdjsonGzReader::new(tokio::io::BufReader::with_capacity(buffer, data), limits);
        let mut items = Vec::new();
        let error = loop {
            match reader.next_line().await {
                Ok(None) => break None,
                Ok(Some((number, Ok(line)))) => items.push(Read::Line(number, line)),
                Ok(Some((number, Err(error)))) => items.push(Read::Bad(number, error)),
                Err(error) => {
                    assert!(
                        reader.next_line().await.is_err(),
                        "a failed reader stays failed"
                    );
                    break Some(error);
                }
            }
        };
        ReadResult {
            items,
            error,
            decompressed: reader.decompressed_bytes(),
            lines_read: reader.lines_read(),
            skipped_empty: reader.skipped_empty_lines(),
        }
    })
}

fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    encoder.write_all(data).expect("in-memory write");
    encoder.finish().expect("in-memory finish")
}

/// Checks what any read must respect: lines within the cap, decompression within the cap plus the
/// one byte that detects an overrun.
fn check_bounds(result: &ReadResult, limits: ReadLimits) -> Result<(), TestCaseError> {
    prop_assert!(result.decompressed <= limits.max_decompressed_bytes + 1);
    for item in &result.items {
        match item {
            Read::Line(_, line) => prop_assert!(line.len() <= limits.max_line_bytes),
            Read::Bad(_, LineError::TooLong { len, limit }) => {
                prop_assert!(*len > *limit as u64);
                prop_assert_eq!(*limit, limits.max_line_bytes);
            }
            Read::Bad(..) => {}
        }
    }
    if result.decompressed > limits.max_decompressed_bytes {
        let too_large = matches!(result.error, Some(CodecError::TooLarge { .. }));
        prop_assert!(too_large, "passing the cap is an error");
    }
    Ok(())
}

fn limits() -> impl Strategy<Value = ReadLimits> {
    (
        prop_oneof![0u64..64, 64u64..4096, Just(1 << 30)],
        prop_oneof![0usize..16, 16usize..512, Just(4 << 20)],
    )
        .prop_map(|(max_decompressed_bytes, max_line_bytes)| ReadLimits {
            max_decompressed_bytes,
            max_line_bytes,
        })
}

proptest! {
    #![proptest_config(cases(256))]

    /// Arbitrary bytes, gzip headers with arbitrary bodies, and damaged valid objects never panic
    /// the reader and never break its limits.
    #[test]
    fn reader_never_panics_on_arbitrary_or_damaged_input(
        raw in prop_oneof![
            vec(any::<u8>(), 0..300),
            vec(any::<u8>(), 0..300).prop_map(|body| [&[0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff][..], &body].concat()),
        ],
        lines in vec("[^\n]{0,40}", 0..20),
        damage in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        limits in limits(),
        buffer in 1usize..64,
    ) {
        check_bounds(&read_all(&raw, limits, buffer), limits)?;
        let mut object = gzip(lines.join("\n").as_bytes(), 6);
        let truncated = &object[..cut.index(object.len() + 1)];
        check_bounds(&read_all(truncated, limits, buffer), limits)?;
        for (at, byte) in damage {
            let i = at.index(object.len());
            object[i] ^= byte | 1;
        }
        check_bounds(&read_all(&object, limits, buffer), limits)?;
    }

    /// Any lines, gzipped in any number of members at any split points and read through any
    /// buffer size, come back exactly: line numbers count blank lines, blank lines are skipped,
    /// over-long lines are reported with their length, everything else is returned byte for byte.
    #[test]
    fn any_lines_in_any_members_read_back_exactly(
        lines in vec(prop_oneof![
            4 => vec(any::<u8>(), 0..60),
            1 => "[ \t\r]{0,3}".prop_map(String::into_bytes),
            1 => vec(any::<u8>(), 100..600),
        ].prop_map(|mut line: Vec<u8>| { line.retain(|b| *b != b'\n'); line }), 1..20),
        trailing_newline in any::<bool>(),
        splits in vec(any::<prop::sample::Index>(), 0..4),
        level in 0u32..10,
        max_line_bytes in prop_oneof![1usize..100, Just(4 << 20)],
        buffer in prop_oneof![1usize..16, Just(8192)],
    ) {
        let mut data = lines.join(&b'\n');
        if trailing_newline {
            data.push(b'\n');
        }
        let mut cuts: Vec<usize> = splits.iter().map(|i| i.index(data.len() + 1)).collect();
        cuts.sort_unstable();
        let mut object = Vec::new();
        let mut from = 0;
        for cut in cuts.into_iter().chain([data.len()]) {
            object.extend(gzip(&data[from..cut], level));
            from = cut;
        }
        let limits = ReadLimits { max_decompressed_bytes: 1 << 30, max_line_bytes };
        let result = read_all(&object, limits, buffer);
        prop_assert!(result.error.is_none(), "{:?}", result.error);
        prop_assert_eq!(result.decompressed, data.len() as u64);

        // The lines the data holds: a missing final newline still ends a non-empty last line.
        let mut present: Vec<&Vec<u8>> = lines.iter().collect();
        if !trailing_newline && present.last().is_some_and(|l| l.is_empty()) {
            present.pop();
        }
        let mut expected = Vec::new();
        let mut blank = 0;
        for (i, line) in present.iter().enumerate() {
            let number = i as u64 + 1;
            if line.len() > max_line_bytes {
                expected.push(Read::Bad(number, LineError::TooLong { len: line.len() as u64, limit: max_line_bytes }));
            } else if line.iter().all(u8::is_ascii_whitespace) {
                blank += 1;
            } else {
                expected.push(Read::Line(number, line.to_vec()));
            }
        }
        prop_assert_eq!(result.items, expected);
        prop_assert_eq!(result.lines_read, present.len() as u64);
        prop_assert_eq!(result.skipped_empty, blank);
    }

    /// Hostile record lines (deep nesting, huge numbers, wrong types, invalid UTF-8) are per-line
    /// errors or records; the stream goes on and nothing panics or overflows the stack.
    #[test]
    fn hostile_record_lines_are_per_line_errors(
        lines in vec(prop_oneof![
            (1usize..100_000).prop_map(|n| "[".repeat(n)),
            (1usize..5_000).prop_map(|n| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n))),
            (1usize..2_000).prop_map(|n| format!("{{\"message\":\"m\",\"customer_id\":\"a\",\"x\":{}1{}}}", "[".repeat(n), "]".repeat(n))),
            Just(r#"{"timestamp":"2024-01-01T00:00:00Z","message":1e999999}"#.to_owned()),
            Just(r#"{"timestamp":123,"message":"m"}"#.to_owned()),
            "\\PC{0,40}",
        ], 1..6),
    ) {
        let data = gzip(lines.join("\n").as_bytes(), 1);
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let count = runtime.block_on(async {
            let mut reader = NdjsonGzReader::new(&data[..], ReadLimits::default());
            let mut count = 0;
            while let Some((_, _record)) = reader.next_record::<LogRecord>().await.expect("valid gzip") {
                count += 1;
            }
            let mut reader = NdjsonGzReader::new(&data[..], ReadLimits::default());
            while let Some((_, _value)) = reader.next_record::<serde_json::Value>().await.expect("valid gzip") {}
            count
        });
        let non_blank = lines.iter().filter(|l| !l.bytes().all(|b| b.is_ascii_whitespace())).count();
        prop_assert_eq!(count, non_blank);
    }
}

proptest! {
    #![proptest_config(cases(8))]

    /// Gzip bombs (many members, or one member, of zeros or of one endless line) stop at the
    /// decompressed-size cap, quickly, whatever the line cap; under a cap they fit, the endless
    /// line is reported with its full length and never buffered past the line cap.
    #[test]
    fn bombs_stop_at_the_caps(
        members in 4usize..16,
        byte in prop_oneof![Just(0u8), Just(b'a'), Just(b'\n')],
        max_decompressed_bytes in (64u64 << 10)..(2 << 20),
        max_line_bytes in 1usize..(64 << 10),
    ) {
        let member = gzip(&vec![byte; 1 << 20], 9);
        let bomb = member.repeat(members);
        prop_assert!(bomb.len() < members * (8 << 10), "a bomb: ~1000x smaller than its content");
        let limits = ReadLimits { max_decompressed_bytes, max_line_bytes };
        let started = Instant::now();
        let result = read_all(&bomb, limits, 8192);
        prop_assert!(started.elapsed() < Duration::from_secs(10));
        check_bounds(&result, limits)?;
        let too_large = matches!(result.error, Some(CodecError::TooLarge { limit }) if limit == max_decompressed_bytes);
        prop_assert!(too_large, "stops at the cap: {:?}", result.error);
        prop_assert_eq!(result.decompressed, max_decompressed_bytes + 1);

        if byte != b'\n' {
            let fits = ReadLimits { max_decompressed_bytes: (members as u64) << 20, max_line_bytes };
            let result = read_all(&bomb, fits, 64 << 10);
            prop_assert!(result.error.is_none());
            let expected = vec![Read::Bad(1, LineError::TooLong { len: (members as u64) << 20, limit: max_line_bytes })];
            prop_assert_eq!(result.items, expected);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tenant configs
// ---------------------------------------------------------------------------------------------

/// YAML documents meant to hurt: alias expansion ("billion laughs"), deep nesting, huge scalars.
fn hostile_yaml() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,200}",
        (2usize..12, 2usize..10).prop_map(|(width, depth)| {
            let mut doc = format!(
                "- tenant_id: t\n  type: s3\n  l0: &l0 [{}]\n",
                vec!["\"lol\""; width].join(",")
            );
            for level in 1..depth {
                let refs = vec![format!("*l{}", level - 1); width].join(",");
                doc.push_str(&format!("  l{level}: &l{level} [{refs}]\n"));
            }
            doc.push_str(&format!("  bomb: *l{}\n", depth - 1));
            doc
        }),
        (1usize..5_000).prop_map(|n| format!("- tenant_id: {}{}", "[".repeat(n), "]".repeat(n))),
        (1usize..10_000).prop_map(|n| format!("- {}", "- ".repeat(n))),
        (1usize..200_000).prop_map(|n| format!("- tenant_id: {}\n  type: s3\n", "a".repeat(n))),
    ]
}

proptest! {
    #![proptest_config(cases(128))]

    /// Config files: arbitrary text and hostile YAML never panic `list_from_yaml`, alias bombs and
    /// deep nesting end quickly, and what parses can be validated.
    #[test]
    fn config_files_never_panic_and_bombs_end_quickly(doc in hostile_yaml()) {
        let started = Instant::now();
        if let Ok(configs) = DeliveryConfig::list_from_yaml(&doc) {
            for config in configs {
                let _ = config.validate();
            }
        }
        prop_assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    }

    /// Validation is total on hostile configs. A config it accepts has a tenant id that is its own
    /// key segment (no escaping can make two tenants share a prefix), and round-trips through a
    /// YAML file (through a DynamoDB item: `processor/tests/item_properties.rs`). Stream names from any template and any record values are
    /// valid CloudWatch names (1-512 characters, no `:` or `*`).
    #[test]
    fn validation_is_total_and_accepted_configs_are_safe(
        hostile in hostile_config(),
        valid in valid_config(),
        use_valid in any::<bool>(),
        fields in (hostile_value(), hostile_value(), hostile_value(), hostile_value()),
    ) {
        let config = if use_valid { valid } else { hostile };
        let verdict = config.validate();
        prop_assert_eq!(config.validate(), verdict.clone(), "deterministic");
        if use_valid {
            prop_assert!(verdict.is_ok(), "a well-formed config is accepted: {:?}", verdict);
        }
        if verdict.is_ok() {
            prop_assert!(validate_tenant_id(&config.tenant_id).is_ok());
            prop_assert_eq!(encode_segment(&config.tenant_id), config.tenant_id.clone());
            let yaml = serde_yaml::to_string(&vec![config.clone()]).expect("yaml");
            prop_assert_eq!(DeliveryConfig::list_from_yaml(&yaml).expect("reads back"), vec![config.clone()]);
        }
        let (pod, namespace, application, cluster) = &fields;
        let name = config.log_stream_name(&StreamFields {
            pod_name: pod, namespace, application, container_name: pod, cluster_id: cluster, customer_id: &config.tenant_id,
        });
        let chars = name.chars().count();
        prop_assert!((1..=MAX_LOG_STREAM_NAME_CHARS).contains(&chars));
        prop_assert!(!name.contains(':') && !name.contains('*'));
    }
}
