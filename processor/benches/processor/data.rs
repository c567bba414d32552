//! The benchmark's objects: realistic records of one pod (message text from the test generator's
//! content model: mixed timestamp styles, JSON and plain lines, 80–400 bytes, 1 % multi-KiB or
//! > 16 KiB lines, some non-ASCII), written as gzip NDJSON exactly as the agent writes them.

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use logrelay_common::codec::NdjsonGzWriter;
use logrelay_common::key::Partition;
use logrelay_common::record::{KubernetesMeta, LogRecord};
use logrelay_testgen::content::{ContentGenerator, SizeModel, TimestampFormat};
use logrelay_testgen::seq::SeqToken;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// Time between two records' timestamps; with the object's first record four hours ago, even a
/// 960 MiB object (about 1.06 million records, 2.9 hours) ends before now, inside CloudWatch's
/// accepted window (14 days back, 2 hours ahead).
const RECORD_INTERVAL: TimeDelta = TimeDelta::milliseconds(10);
/// How far back the first record of an object lies.
const FIRST_RECORD_AGE: TimeDelta = TimeDelta::hours(4);

/// One generated object.
pub struct Generated {
    /// The gzip NDJSON bytes.
    pub gz: Vec<u8>,
    /// Records (lines) in it.
    pub records: u64,
    /// Decompressed size.
    pub uncompressed_bytes: u64,
}

/// Writes records of `partition` until at least `target_uncompressed` bytes of NDJSON are written.
pub fn generate(
    partition: &Partition,
    target_uncompressed: u64,
    seed: u64,
) -> anyhow::Result<Generated> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let content = ContentGenerator::new(TimestampFormat::Mixed, SizeModel::default());
    let source = format!("{}/{}", partition.customer_id, partition.pod_name);
    let start: DateTime<Utc> = Utc::now() - FIRST_RECORD_AGE;
    let kubernetes = KubernetesMeta {
        pod_uid: Some("5f0c2a4e-8d1b-4c7a-9e3f-2b6d8a1c0e97".into()),
        labels: BTreeMap::from([("app".to_owned(), partition.application.clone())]),
        container_image: Some(format!(
            "registry.example.com/{}:1.4.2",
            partition.application
        )),
        owner: Some(format!("Deployment/{}", partition.application)),
        ..KubernetesMeta::default()
    };
    let mut writer = NdjsonGzWriter::new(Vec::new());
    let mut n: u64 = 0;
    while writer.uncompressed_bytes() < target_uncompressed {
        let timestamp = start + RECORD_INTERVAL * i32::try_from(n % (1 << 30)).unwrap_or(0);
        let level = content.pick_level(&mut rng);
        let stream = content.pick_stream(&mut rng, level);
        let token = SeqToken {
            source: &source,
            seq: n,
        };
        let record = LogRecord {
            timestamp,
            message: content.render(&mut rng, level, &token, timestamp),
            stream,
            customer_id: partition.customer_id.clone(),
            cluster_id: partition.cluster_id.clone(),
            namespace: "shop".into(),
            application: partition.application.clone(),
            pod_name: partition.pod_name.clone(),
            container_name: partition.application.clone(),
            node_name: "ip-10-0-3-17.ec2.internal".into(),
            ingest_timestamp: timestamp + TimeDelta::milliseconds(40),
            kubernetes: Some(kubernetes.clone()),
            extra: serde_json::Map::new(),
        };
        writer.write_record(&record).context("encode record")?;
        n += 1;
    }
    let uncompressed_bytes = writer.uncompressed_bytes();
    let gz = writer.finish().context("finish gzip")?;
    Ok(Generated {
        gz,
        records: n,
        uncompressed_bytes,
    })
}
