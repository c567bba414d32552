//! Building an object's PutLogEvents requests from its records: the isolation check (a record
//! claiming another tenant than its object's key is counted and dropped), the timestamp fallback,
//! each config's filter, the log stream name from the config's template, and the config's
//! [`Batcher`] (which keeps every request under CloudWatch's limits).

use super::batch::{BatchLimits, Batcher, SealedBatch};
use crate::record::{BadLine, Record};
use logrelay_common::key::Partition;
use logrelay_common::tenant::{DeliveryConfig, StreamFields};
use std::sync::Arc;

/// What the reader learned about the object's lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Records read (misattributed ones included).
    pub records: u64,
    /// Lines that are not JSON objects.
    pub invalid_json: u64,
    /// Lines that are not UTF-8.
    pub invalid_utf8: u64,
    /// Lines over the line limit.
    pub too_long: u64,
    /// JSON objects without a message.
    pub missing_message: u64,
    /// Records that got the object's time because theirs was missing or unreadable.
    pub timestamp_fallbacks: u64,
    /// Records claiming another tenant (never delivered).
    pub misattributed: u64,
}

impl ReadStats {
    /// Lines that were not records.
    pub fn bad_lines(&self) -> u64 {
        self.invalid_json + self.invalid_utf8 + self.too_long + self.missing_message
    }

    /// Counts a line that is not a record.
    pub fn count_bad(&mut self, bad: BadLine) {
        match bad {
            BadLine::InvalidJson => self.invalid_json += 1,
            BadLine::InvalidUtf8 => self.invalid_utf8 += 1,
            BadLine::MissingMessage => self.missing_message += 1,
        }
    }
}

/// A sealed batch for the route at index `route`.
#[derive(Debug)]
pub struct Routed {
    /// Index of the route (and delivery target).
    pub route: usize,
    /// The batch.
    pub batch: SealedBatch,
}

/// Per-route counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteStats {
    /// Records the config's filter did not want.
    pub filtered: u64,
    /// Wanted records with an empty message (CloudWatch requires ≥ 1 character), not sent.
    pub empty_messages: u64,
    /// Messages split into continuation events.
    pub split: u64,
}

/// One CloudWatch config's routing state.
#[derive(Debug)]
struct Route {
    config: Arc<DeliveryConfig>,
    batcher: Batcher,
    stats: RouteStats,
    /// The stream-template inputs and name of the previous record (records of an object share them).
    last_stream: Option<([String; 5], String)>,
}

impl Route {
    /// Adds one record's message to this config's batches, under the stream its template names.
    fn push(
        &mut self,
        fields: &StreamFields<'_>,
        timestamp_ms: i64,
        message: String,
        sealed: &mut Vec<SealedBatch>,
    ) {
        let stream = stream_name(&self.config, &mut self.last_stream, fields);
        self.batcher.push(stream, timestamp_ms, message, sealed);
    }
}

/// The stream name `config`'s template gives `fields`: the previous record's name when the
/// template's inputs are the same (records of an object mostly share them), so the template is
/// expanded, and a name allocated, only when they change.
fn stream_name<'s>(
    config: &DeliveryConfig,
    last: &'s mut Option<([String; 5], String)>,
    fields: &StreamFields<'_>,
) -> &'s str {
    let inputs = [
        fields.pod_name,
        fields.namespace,
        fields.application,
        fields.container_name,
        fields.cluster_id,
    ];
    let hit = last
        .as_ref()
        .is_some_and(|(previous, _)| previous.iter().zip(inputs).all(|(a, b)| a == b));
    if !hit {
        *last = Some((inputs.map(str::to_owned), config.log_stream_name(fields)));
    }
    last.as_ref().map_or("", |(_, name)| name.as_str())
}

/// Routes an object's records to its configs' batchers.
#[derive(Debug)]
pub struct Router {
    partition: Partition,
    fallback_ms: i64,
    routes: Vec<Route>,
    stats: ReadStats,
    sealed: Vec<SealedBatch>,
}

impl Router {
    /// A router for an object of `partition` (its `customer_id` is the tenant), giving records
    /// without a usable time `fallback_ms`, with one route per config.
    pub fn new(
        partition: Partition,
        fallback_ms: i64,
        configs: &[Arc<DeliveryConfig>],
        limits: BatchLimits,
    ) -> Self {
        Self {
            partition,
            fallback_ms,
            routes: configs
                .iter()
                .map(|config| Route {
                    config: config.clone(),
                    batcher: Batcher::new(limits),
                    stats: RouteStats::default(),
                    last_stream: None,
                })
                .collect(),
            stats: ReadStats::default(),
            sealed: Vec::new(),
        }
    }

    /// Counts so far.
    pub fn stats(&self) -> ReadStats {
        self.stats
    }

    /// Counts of a line that is not a record.
    pub fn stats_mut(&mut self) -> &mut ReadStats {
        &mut self.stats
    }

    /// Per-route counts, in route order.
    pub fn route_stats(&self) -> Vec<RouteStats> {
        self.routes
            .iter()
            .map(|route| RouteStats {
                split: route.batcher.split_events(),
                ..route.stats
            })
            .collect()
    }

    /// Routes one record; appends the batches it seals to `out`.
    pub fn route(&mut self, record: Record<'_>, out: &mut Vec<Routed>) {
        self.stats.records += 1;
        let tenant = self.partition.customer_id.as_str();
        if record
            .customer_id
            .as_deref()
            .is_some_and(|claimed| claimed != tenant)
        {
            self.stats.misattributed += 1;
            return;
        }
        let timestamp_ms = record.timestamp_ms.unwrap_or_else(|| {
            self.stats.timestamp_fallbacks += 1;
            self.fallback_ms
        });
        let fields = StreamFields {
            pod_name: record
                .pod_name
                .as_deref()
                .unwrap_or(&self.partition.pod_name),
            namespace: record.namespace.as_deref().unwrap_or_default(),
            application: record
                .application
                .as_deref()
                .unwrap_or(&self.partition.application),
            container_name: record.container_name.as_deref().unwrap_or_default(),
            cluster_id: record
                .cluster_id
                .as_deref()
                .unwrap_or(&self.partition.cluster_id),
            customer_id: tenant,
        };
        // Every config that wants the record but the last gets a copy of its message; the last
        // one takes the message itself (most objects have one config: no copy of an owned one).
        let mut wanting: Option<usize> = None;
        for index in 0..self.routes.len() {
            let Some(route) = self.routes.get_mut(index) else {
                continue;
            };
            if !route.config.wants(fields.application) {
                route.stats.filtered += 1;
                continue;
            }
            if record.message.is_empty() {
                route.stats.empty_messages += 1;
                continue;
            }
            if let Some(earlier) = wanting.replace(index)
                && let Some(earlier_route) = self.routes.get_mut(earlier)
            {
                earlier_route.push(
                    &fields,
                    timestamp_ms,
                    record.message.to_string(),
                    &mut self.sealed,
                );
                drain_sealed(&mut self.sealed, earlier, out);
            }
        }
        if let Some(last) = wanting
            && let Some(route) = self.routes.get_mut(last)
        {
            route.push(
                &fields,
                timestamp_ms,
                record.message.into_owned(),
                &mut self.sealed,
            );
            drain_sealed(&mut self.sealed, last, out);
        }
    }

    /// Seals every open batch (at the real end of the object only: a batch sealed early would
    /// differ from the one a complete read makes, and progress relies on identical batches).
    pub fn finish(&mut self, out: &mut Vec<Routed>) {
        for (index, route) in self.routes.iter_mut().enumerate() {
            route.batcher.finish(&mut self.sealed);
            drain_sealed(&mut self.sealed, index, out);
        }
    }
}

/// Moves the batches just sealed for route `route` to `out`.
fn drain_sealed(sealed: &mut Vec<SealedBatch>, route: usize, out: &mut Vec<Routed>) {
    out.extend(sealed.drain(..).map(|batch| Routed { route, batch }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn config(template: Option<&str>, desired: &[&str]) -> Arc<DeliveryConfig> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "tenant_id": "acme",
                "type": "cloudwatch",
                "log_distribution_role_arn": "arn:aws:iam::111111111111:role/r",
                "log_group_name": "/acme",
                "log_stream_template": template,
                "desired_logs": desired,
            }))
            .expect("config"),
        )
    }

    fn partition() -> Partition {
        Partition::new("acme", "c1", "api", "api-pod")
    }

    fn record<'a>(
        message: &'a str,
        customer: Option<&'a str>,
        application: Option<&'a str>,
    ) -> Record<'a> {
        Record {
            message: Cow::Borrowed(message),
            timestamp_ms: Some(1_000),
            customer_id: customer.map(Cow::Borrowed),
            cluster_id: None,
            namespace: Some(Cow::Borrowed("ns")),
            application: application.map(Cow::Borrowed),
            pod_name: None,
            container_name: Some(Cow::Borrowed("main")),
        }
    }

    fn run(router: &mut Router, records: Vec<Record<'_>>) -> Vec<Routed> {
        let mut out = Vec::new();
        for r in records {
            router.route(r, &mut out);
        }
        router.finish(&mut out);
        out
    }

    #[test]
    fn records_claiming_another_tenant_are_counted_and_not_routed() {
        let mut router = Router::new(partition(), 0, &[config(None, &[])], BatchLimits::default());
        let out = run(
            &mut router,
            vec![
                record("mine", Some("acme"), None),
                record("theirs", Some("globex"), None),
                record("unclaimed", None, None),
            ],
        );
        let messages: Vec<&str> = out
            .iter()
            .flat_map(|r| &r.batch.events)
            .map(|e| e.message.as_str())
            .collect();
        assert_eq!(messages, ["mine", "unclaimed"]);
        assert_eq!(router.stats().misattributed, 1);
        assert_eq!(router.stats().records, 3);
    }

    #[test]
    fn each_config_filters_by_application() {
        let configs = [config(None, &["api"]), config(None, &["db"])];
        let mut router = Router::new(partition(), 0, &configs, BatchLimits::default());
        let out = run(
            &mut router,
            vec![
                record("a", None, Some("api")),
                record("b", None, Some("db")),
                record("c", None, None),
            ],
        );
        let per_route = |i: usize| -> Vec<&str> {
            out.iter()
                .filter(|r| r.route == i)
                .flat_map(|r| &r.batch.events)
                .map(|e| e.message.as_str())
                .collect()
        };
        assert_eq!(
            per_route(0),
            ["a", "c"],
            "no application: the key's (api) decides"
        );
        assert_eq!(per_route(1), ["b"]);
        let stats = router.route_stats();
        assert_eq!((stats[0].filtered, stats[1].filtered), (1, 2));
    }

    #[test]
    fn stream_names_come_from_the_template_with_key_values_as_defaults() {
        let mut router = Router::new(
            partition(),
            0,
            &[config(
                Some("{cluster_id}/{namespace}/{pod_name}/{container_name}"),
                &[],
            )],
            BatchLimits::default(),
        );
        let out = run(&mut router, vec![record("m", None, None)]);
        assert_eq!(out[0].batch.stream, "c1/ns/api-pod/main");
        let mut router = Router::new(partition(), 0, &[config(None, &[])], BatchLimits::default());
        let out = run(&mut router, vec![record("m", None, None)]);
        assert_eq!(
            out[0].batch.stream, "api-pod",
            "default template is the pod name"
        );
    }

    #[test]
    fn records_without_time_get_the_fallback_and_are_counted() {
        let mut router = Router::new(
            partition(),
            42_000,
            &[config(None, &[])],
            BatchLimits::default(),
        );
        let mut untimed = record("m", None, None);
        untimed.timestamp_ms = None;
        let out = run(&mut router, vec![untimed]);
        assert_eq!(out[0].batch.events[0].timestamp_ms, 42_000);
        assert_eq!(router.stats().timestamp_fallbacks, 1);
    }

    #[test]
    fn empty_messages_are_counted_not_sent() {
        let mut router = Router::new(partition(), 0, &[config(None, &[])], BatchLimits::default());
        let out = run(&mut router, vec![record("", None, None)]);
        assert!(out.is_empty());
        assert_eq!(router.route_stats()[0].empty_messages, 1);
    }
}
