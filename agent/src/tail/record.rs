//! Building a record from a file's line: metadata from the log path and the agent's config. The
//! path-derived defaults live here (`customer_id` = namespace, `application` = container name);
//! with Kubernetes metadata on, the annotator replaces them with what the pod's metadata says.

use super::path::PodLogPath;
use crate::parse::Message;
use chrono::{DateTime, Utc};
use logrelay_common::record::{KubernetesMeta, LogRecord, Stream};

/// Key in the record's `kubernetes` object holding the container's restart count (the `N` in
/// `N.log`), when the path has one.
pub const RESTART_COUNT_FIELD: &str = "restart_count";

/// What every record from this node carries, from the agent's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordContext {
    /// `CLUSTER_ID`.
    pub cluster_id: String,
    /// `NODE_NAME`.
    pub node_name: String,
}

/// The record for one line of a file at `pod`: `ingest_timestamp` is now; a truncated message
/// gets its marker fields.
pub fn from_path(
    pod: &PodLogPath,
    context: &RecordContext,
    timestamp: DateTime<Utc>,
    stream: Stream,
    message: Message,
) -> LogRecord {
    let mut kubernetes = KubernetesMeta {
        pod_uid: pod.pod_uid.clone(),
        ..Default::default()
    };
    if let Some(count) = pod.restart_count {
        kubernetes
            .extra
            .insert(RESTART_COUNT_FIELD.into(), serde_json::Value::from(count));
    }
    let mut extra = serde_json::Map::new();
    message.mark(&mut extra);
    LogRecord {
        timestamp,
        message: message.text,
        stream,
        customer_id: pod.namespace.clone(),
        cluster_id: context.cluster_id.clone(),
        namespace: pod.namespace.clone(),
        application: pod.container_name.clone(),
        pod_name: pod.pod_name.clone(),
        container_name: pod.container_name.clone(),
        node_name: context.node_name.clone(),
        ingest_timestamp: Utc::now(),
        kubernetes: Some(kubernetes),
        extra,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::finish_message;
    use std::path::Path;

    #[test]
    fn record_takes_metadata_from_path_and_config() {
        let root = Path::new("/var/log/pods");
        let pod = PodLogPath::from_path(root, &root.join("shop_api-1_uid-9/server/2.log"));
        let context = RecordContext {
            cluster_id: "c1".into(),
            node_name: "node-a".into(),
        };
        let ts = DateTime::from_timestamp(1_700_000_000, 5).expect("valid time");
        let record = from_path(
            &pod,
            &context,
            ts,
            Stream::Stderr,
            finish_message(b"hello".to_vec(), 5, 100),
        );
        assert_eq!(record.message, "hello");
        assert_eq!(record.timestamp, ts);
        assert_eq!(record.stream, Stream::Stderr);
        assert_eq!(
            (
                record.customer_id.as_str(),
                record.namespace.as_str(),
                record.application.as_str()
            ),
            ("shop", "shop", "server")
        );
        assert_eq!(
            (record.pod_name.as_str(), record.container_name.as_str()),
            ("api-1", "server")
        );
        assert_eq!(
            (record.cluster_id.as_str(), record.node_name.as_str()),
            ("c1", "node-a")
        );
        let kubernetes = record.kubernetes.expect("kubernetes metadata");
        assert_eq!(kubernetes.pod_uid.as_deref(), Some("uid-9"));
        assert_eq!(kubernetes.extra[RESTART_COUNT_FIELD], serde_json::json!(2));
        assert!(record.extra.is_empty());
    }

    #[test]
    fn truncated_message_is_marked() {
        let pod = PodLogPath::from_path(Path::new("/r"), Path::new("/r/ns_p_u/c/0.log"));
        let context = RecordContext {
            cluster_id: "c".into(),
            node_name: "n".into(),
        };
        let record = from_path(
            &pod,
            &context,
            Utc::now(),
            Stream::Stdout,
            finish_message(vec![b'x'; 10], 500, 10),
        );
        assert_eq!(
            record.extra[crate::parse::TRUNCATED_FIELD],
            serde_json::json!(true)
        );
        assert_eq!(
            record.extra[crate::parse::ORIGINAL_BYTES_FIELD],
            serde_json::json!(500)
        );
    }
}
