//! Generates the benchmark's input: a kubelet-style pod log tree of CRI files with realistic
//! lines (testgen's content generator and CRI encoder), seeded so every run writes the same bytes.

use anyhow::Context;
use chrono::{Duration, Utc};
use logrelay_testgen::content::{ContentGenerator, SizeModel, TimestampFormat};
use logrelay_testgen::cri::encode_line;
use logrelay_testgen::seq::SeqToken;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Seed of the content generator (fixed: runs are comparable).
const SEED: u64 = 0x10c_7e1a;

/// What was written.
#[derive(Debug, Clone, Copy, Default)]
pub struct Generated {
    /// Files written.
    pub files: usize,
    /// Logical lines (a line split into `P`…`F` chunks counts once, as the agent stores it).
    pub lines: u64,
    /// Bytes of CRI text on disk.
    pub bytes: u64,
}

/// Writes `pods × containers` files under `root` (`<ns>_<pod>_<uid>/<container>/0.log`), each
/// about `bytes_per_file` long (at least `min_lines` lines).
pub fn write_tree(
    root: &Path,
    pods: usize,
    containers: usize,
    bytes_per_file: u64,
    min_lines: u64,
) -> anyhow::Result<Generated> {
    let content = ContentGenerator::new(TimestampFormat::Mixed, SizeModel::default());
    let mut rng = SmallRng::seed_from_u64(SEED);
    let start = Utc::now() - Duration::hours(1);
    let mut total = Generated::default();
    let mut chunk = Vec::with_capacity(64 << 10);
    for pod in 0..pods {
        let namespace = format!("tenant-{}", pod % 10);
        let pod_name = format!("app-{pod}-5d8f9c7b6d-x2x9k");
        let uid = format!("00000000-0000-4000-8000-{pod:012}");
        for container in 0..containers {
            let container_name = format!("c{container}");
            let dir = root
                .join(format!("{namespace}_{pod_name}_{uid}"))
                .join(&container_name);
            fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
            let path = dir.join("0.log");
            let file =
                fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
            let mut out = BufWriter::with_capacity(1 << 20, file);
            let source = format!("{namespace}/{pod_name}/{container_name}/any");
            let (mut lines, mut bytes) = (0u64, 0u64);
            while bytes < bytes_per_file || lines < min_lines {
                let level = content.pick_level(&mut rng);
                let stream = content.pick_stream(&mut rng, level);
                let ts = start + Duration::microseconds(lines as i64 * 137);
                let token = SeqToken {
                    source: &source,
                    seq: lines,
                };
                let text = content.render(&mut rng, level, &token, ts);
                chunk.clear();
                encode_line(&mut chunk, &ts, stream, text.as_bytes());
                out.write_all(&chunk)?;
                lines += 1;
                bytes += chunk.len() as u64;
            }
            out.flush()?;
            total.files += 1;
            total.lines += lines;
            total.bytes += bytes;
        }
    }
    Ok(total)
}
