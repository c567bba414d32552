//! What delivering one object came to, as both outcomes and errors carry it: the counts
//! ([`DeliveryReport`]) and whether a failure may pass on retry ([`FailureKind`]).

/// Whether a failure may succeed if tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Trying again later may succeed (throttling, 5xx, timeouts): leave for redelivery.
    Transient,
    /// Trying again cannot help (malformed key, tenant not configured, access denied): dead-letter.
    Permanent,
}

/// Counts from delivering one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Tenant the object belongs to (from the key).
    pub tenant_id: String,
    /// Records read from the object.
    pub records_read: u64,
    /// Events accepted by CloudWatch Logs, over all configs.
    pub events_delivered: u64,
    /// Records not wanted by a config's filter.
    pub records_filtered: u64,
    /// Events dropped before sending or rejected by CloudWatch (too old, too new, expired).
    pub events_rejected: u64,
    /// Records whose own `customer_id` disagrees with the key's tenant (never delivered).
    pub records_misattributed: u64,
    /// Lines that could not be parsed as records.
    pub bad_lines: u64,
    /// S3 copies made.
    pub s3_copies: u64,
}
