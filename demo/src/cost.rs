//! The running cost of a run's AWS requests, per TB of logs: the requests counted at each
//! component's endpoint (plus the SNS publish S3 sends per object) priced at list prices. The
//! prices are a dated table for one region; storage, data transfer, Lambda compute and the
//! tenants' CloudWatch Logs ingestion (billed to the tenant) are not included.

use crate::summary::{RequestRow, stored_objects};

/// Where and when [`PRICES`] were read.
pub const PRICES_AS_OF: &str = "us-east-1 list prices, 2026-12";

/// USD per request of one kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Service (SigV4 name).
    pub service: &'static str,
    /// Operations this price applies to; empty = every other operation of the service.
    pub operations: &'static [&'static str],
    /// USD per request.
    pub per_request: f64,
}

/// S3 PUT-class and GET-class requests ($0.005 and $0.0004 per 1,000), SQS standard requests
/// ($0.40 per million, 64 KiB chunks), SNS publishes ($0.50 per million), DynamoDB on-demand
/// writes and reads ($0.625 and $0.125 per million request units, one unit per small item); STS
/// and CloudWatch Logs API calls carry no request charge.
pub const PRICES: &[Price] = &[
    Price {
        service: "s3",
        operations: &["GetObject", "HeadObject", "HeadBucket"],
        per_request: 0.0004 / 1_000.0,
    },
    Price {
        service: "s3",
        operations: &[],
        per_request: 0.005 / 1_000.0,
    },
    Price {
        service: "sqs",
        operations: &[],
        per_request: 0.40 / 1_000_000.0,
    },
    Price {
        service: "sns",
        operations: &[],
        per_request: 0.50 / 1_000_000.0,
    },
    Price {
        service: "dynamodb",
        operations: &["GetItem", "Query", "Scan", "BatchGetItem"],
        per_request: 0.125 / 1_000_000.0,
    },
    Price {
        service: "dynamodb",
        operations: &[],
        per_request: 0.625 / 1_000_000.0,
    },
];

/// Bytes in a TB (decimal, as AWS prices data).
const TB: f64 = 1e12;

/// The price of one request of `service`/`operation` (0 for services without request charges).
pub fn price_of(service: &str, operation: &str) -> f64 {
    PRICES
        .iter()
        .filter(|p| p.service == service)
        .find(|p| p.operations.is_empty() || p.operations.contains(&operation))
        .map_or(0.0, |p| p.per_request)
}

/// Estimated request cost per TB of generated logs, in total and per service.
#[derive(Debug, Clone, PartialEq)]
pub struct CostPerTb {
    /// USD per TB in total.
    pub total: f64,
    /// USD per TB by service, largest first.
    pub by_service: Vec<(String, f64)>,
}

/// The cost per TB of `requests` made for `generated_bytes` of logs; the SNS publish S3 sends for
/// each object the agent stored is added (it is not seen at the components' endpoints).
pub fn per_tb(requests: &[RequestRow], generated_bytes: u64) -> Option<CostPerTb> {
    if generated_bytes == 0 {
        return None;
    }
    let scale = TB / generated_bytes as f64;
    let mut by_service: Vec<(String, f64)> = Vec::new();
    let mut add = |service: &str, usd: f64| match by_service.iter_mut().find(|(s, _)| s == service)
    {
        Some((_, total)) => *total += usd,
        None => by_service.push((service.to_owned(), usd)),
    };
    for row in requests {
        add(
            &row.service,
            row.requests as f64 * price_of(&row.service, &row.operation) * scale,
        );
    }
    let objects = stored_objects(requests);
    add("sns", objects as f64 * price_of("sns", "Publish") * scale);
    by_service.retain(|(_, usd)| *usd > 0.0);
    by_service.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total = by_service.iter().map(|(_, usd)| usd).sum();
    Some(CostPerTb { total, by_service })
}

/// Object size of the node profile [`per_tb_at_object_size`] is usually asked for: the agent's
/// default `--batch-max-bytes` reached (a busy node), 10 MiB.
pub const FULL_BATCH_BYTES: u64 = 10 << 20;

/// The request cost per TB if every object were `object_bytes` large, with the run's request mix
/// per object: every request of the pipeline is made per object (PUT, notification, queue
/// messages, GET, progress), so it scales with objects per TB.
pub fn per_tb_at_object_size(
    requests: &[RequestRow],
    generated_bytes: u64,
    object_bytes: u64,
) -> Option<f64> {
    let objects = stored_objects(requests);
    if objects == 0 || object_bytes == 0 {
        return None;
    }
    let run = per_tb(requests, generated_bytes)?;
    let run_objects_per_tb = objects as f64 * TB / generated_bytes as f64;
    let profile_objects_per_tb = TB / object_bytes as f64;
    Some(run.total / run_objects_per_tb * profile_objects_per_tb)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(component: &str, service: &str, operation: &str, requests: u64) -> RequestRow {
        RequestRow {
            component: component.into(),
            service: service.into(),
            operation: operation.into(),
            requests,
            per_gb: 0.0,
        }
    }

    #[test]
    fn requests_are_priced_by_class_and_scaled_to_a_terabyte() {
        // 1 GB of logs: 1,000 objects stored, read once, 2 progress writes each.
        let rows = [
            row("agent", "s3", "PutObject", 1_000),
            row("processor", "s3", "GetObject", 1_000),
            row("processor", "dynamodb", "UpdateItem", 2_000),
            row("processor", "logs", "PutLogEvents", 1_000),
            row("agent", "sts", "AssumeRoleWithWebIdentity", 3),
        ];
        let cost = per_tb(&rows, 1_000_000_000).expect("a cost");
        let of = |service: &str| {
            cost.by_service
                .iter()
                .find(|(s, _)| s == service)
                .map_or(0.0, |(_, usd)| *usd)
        };
        // ×1,000 GB: 1M PUTs $5, 1M GETs $0.40, 2M writes $1.25, 1M SNS publishes $0.50.
        assert!((of("s3") - 5.40).abs() < 1e-9, "{cost:?}");
        assert!((of("dynamodb") - 1.25).abs() < 1e-9, "{cost:?}");
        assert!((of("sns") - 0.50).abs() < 1e-9, "{cost:?}");
        assert_eq!(of("logs"), 0.0);
        assert!((cost.total - 7.15).abs() < 1e-9, "{cost:?}");
        assert_eq!(cost.by_service[0].0, "s3", "largest first");
        assert_eq!(per_tb(&rows, 0), None);
        // The same mix with 1 MB objects (1,000 per GB already): the same cost; with 10 MB, a tenth.
        let at = |bytes| per_tb_at_object_size(&rows, 1_000_000_000, bytes).expect("a cost");
        assert!((at(1_000_000) - 7.15).abs() < 1e-9);
        assert!((at(10_000_000) - 0.715).abs() < 1e-9);
    }
}
