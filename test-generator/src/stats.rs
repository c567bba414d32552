//! Progress counters of a generator (lines, bytes, rate), printed to stderr as one line.

use std::time::{Duration, Instant};

/// Lines and bytes written since the generator started.
#[derive(Debug, Clone)]
pub struct Stats {
    started: Instant,
    last_report: Instant,
    /// Logical lines written.
    pub lines: u64,
    /// Bytes written (as encoded on the output).
    pub bytes: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// Counters starting now.
    pub fn new() -> Self {
        let now = Instant::now();
        Self {
            started: now,
            last_report: now,
            lines: 0,
            bytes: 0,
        }
    }

    /// Counts one line of `bytes` bytes.
    pub fn add_line(&mut self, bytes: usize) {
        self.lines += 1;
        self.bytes += bytes as u64;
    }

    /// Whether a periodic report is due (`interval` zero: never); resets the timer when it is.
    pub fn report_due(&mut self, interval: Duration) -> bool {
        if interval.is_zero() || self.last_report.elapsed() < interval {
            return false;
        }
        self.last_report = Instant::now();
        true
    }

    /// One line: `lines=… bytes=… elapsed=…s rate=… lines/s … KiB/s`.
    pub fn summary(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        format!(
            "lines={} bytes={} elapsed={:.1}s rate={:.1} lines/s {:.1} KiB/s",
            self.lines,
            self.bytes,
            secs,
            self.lines as f64 / secs,
            self.bytes as f64 / 1024.0 / secs
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_lines_and_bytes() {
        let mut stats = Stats::new();
        stats.add_line(10);
        stats.add_line(20);
        let text = stats.summary();
        assert!(text.starts_with("lines=2 bytes=30 elapsed="), "{text}");
        assert!(text.contains(" lines/s "));
    }

    #[test]
    fn reports_are_never_due_with_a_zero_interval() {
        let mut stats = Stats::new();
        assert!(!stats.report_due(Duration::ZERO));
        assert!(stats.report_due(Duration::from_nanos(1)));
    }
}
