//! Reading the components' `/metrics` pages (Prometheus text format): enough of the format to
//! sum a metric over its label sets or pick the series with one label value.

use crate::http::HttpClient;

/// One sample: name, labels and value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// A scraped page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    samples: Vec<Sample>,
}

impl Metrics {
    /// Parses Prometheus text; comment lines and lines that do not parse are skipped.
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(parse_line)
            .collect();
        Self { samples }
    }

    /// Scrapes `http://<addr>/metrics`; `None` when it cannot be reached.
    pub async fn scrape(client: &HttpClient, addr: &str) -> Option<Self> {
        match client.get(&format!("http://{addr}/metrics")).await {
            Ok((200, body)) => Some(Self::parse(&body)),
            _ => None,
        }
    }

    /// The sum of every series of `name` (0 when absent).
    pub fn sum(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .fold(0.0, |sum, s| sum + s.value)
    }

    /// The sum of the series of `name` whose `label` equals `value`.
    pub fn sum_where(&self, name: &str, label: &str, value: &str) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name && s.labels.iter().any(|(k, v)| k == label && v == value))
            .fold(0.0, |sum, s| sum + s.value)
    }

    /// Whether any series of `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

/// `name{a="x",b="y"} value [timestamp]` or `name value`.
fn parse_line(line: &str) -> Option<Sample> {
    let (series, rest) = match line.find('{') {
        Some(_) => {
            let close = line.rfind('}')?;
            (&line[..close + 1], &line[close + 1..])
        }
        None => line.split_once(' ')?,
    };
    let value: f64 = rest.split_whitespace().next()?.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((name, labels)) => (name, parse_labels(labels.strip_suffix('}')?)?),
        None => (series, Vec::new()),
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// `a="x",b="y"` with `\"`, `\\` and `\n` escapes in values.
fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(labels);
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break,
                other => value.push(other),
            }
        }
        labels.push((key.trim().to_owned(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"# HELP logrelay_processor_events_delivered_total Events.
# TYPE logrelay_processor_events_delivered_total counter
logrelay_processor_events_delivered_total{tenant="acme",type="cloudwatch"} 120
logrelay_processor_events_delivered_total{tenant="glo\"bex",type="cloudwatch"} 30
logrelay_agent_open_batches 2
logrelay_processor_delivery_latency_seconds_sum{tenant="acme"} 1.5 1700000000
garbage line
"#;

    #[test]
    fn sums_and_filters_series() {
        let metrics = Metrics::parse(PAGE);
        assert_eq!(
            metrics.sum("logrelay_processor_events_delivered_total"),
            150.0
        );
        assert_eq!(
            metrics.sum_where(
                "logrelay_processor_events_delivered_total",
                "tenant",
                "glo\"bex"
            ),
            30.0
        );
        assert_eq!(metrics.sum("logrelay_agent_open_batches"), 2.0);
        assert_eq!(
            metrics.sum("logrelay_processor_delivery_latency_seconds_sum"),
            1.5
        );
        assert!(!metrics.has("absent"));
        assert_eq!(metrics.sum("absent").to_string(), "0", "not -0");
    }
}
