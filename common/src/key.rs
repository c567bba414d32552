//! The S3 key layout of the central bucket: the one builder ([`ObjectKey::to_key`]) and the one
//! parser ([`ObjectKey::parse`]) of object keys, and the segment encoding they share.
//!
//! Layout: `{customer_id}/{cluster_id}/{application}/{pod_name}/{YYYYMMDD}T{HHMMSS}Z-{id}.json.gz`.
//! The first segment separates tenants, so a value can never change another segment: every byte
//! outside `[A-Za-z0-9._-]` is percent-encoded, no segment is ever empty, `.` or `..`, and each
//! value has exactly one spelling. See `docs/record-format.md` for the full rules and examples.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};
use sha2::{Digest, Sha256};
use std::fmt;

/// The longest key S3 accepts, in bytes (S3 object key limit: 1,024 bytes of UTF-8).
pub const MAX_KEY_BYTES: usize = 1024;
/// The longest encoded segment, in bytes. Longer values are truncated and hashed (see
/// [`encode_segment`]). Four segments of 200 bytes, four slashes and the longest file name
/// (89 bytes) make 893 bytes, which leaves [`MAX_PREFIX_BYTES`] for a deployment prefix.
pub const MAX_SEGMENT_BYTES: usize = 200;
/// The longest deployment prefix (trailing `/` included) that still leaves room for the largest key.
pub const MAX_PREFIX_BYTES: usize = 128;
/// The longest object id, in bytes.
pub const MAX_ID_BYTES: usize = 64;
/// The segment that stands for the empty value. A raw `~` is never produced by encoding a
/// non-empty value (`~` itself is percent-encoded as `%7E`), so this spelling is unambiguous.
pub const EMPTY_SEGMENT: &str = "~";
/// The encoding of the value `.` (which cannot stay as it is: `.` is a path step).
pub const DOT_SEGMENT: &str = "%2E";
/// The encoding of the value `..` (which cannot stay as it is: `..` is a path step).
pub const DOT_DOT_SEGMENT: &str = "%2E%2E";
/// Separates a truncated segment from the hash of the whole value. Raw, it only occurs in
/// [`EMPTY_SEGMENT`] and in truncated segments.
pub const TRUNCATION_MARKER: char = '~';
/// Hex digits of the SHA-256 of the whole value appended to a truncated segment (64 bits: distinct
/// long values collide with probability ~2^-64 per pair).
pub const TRUNCATION_HASH_HEX_LEN: usize = 16;
/// Hex digits of an [`object_id`] (128 bits of SHA-256).
pub const OBJECT_ID_HEX_LEN: usize = 32;

/// The file name suffix of every object.
const FILENAME_SUFFIX: &str = ".json.gz";
/// Length of `YYYYMMDDTHHMMSSZ-`.
const FILENAME_TIME_LEN: usize = 17;
/// The longest file name: time, separator, id and suffix.
const MAX_FILENAME_BYTES: usize = FILENAME_TIME_LEN + MAX_ID_BYTES + FILENAME_SUFFIX.len();
/// The longest key this module builds without a prefix.
const MAX_LAYOUT_BYTES: usize = 4 * (MAX_SEGMENT_BYTES + 1) + MAX_FILENAME_BYTES;
const _: () = assert!(MAX_PREFIX_BYTES + MAX_LAYOUT_BYTES <= MAX_KEY_BYTES);

/// The most bytes one character takes when encoded (four UTF-8 bytes, three characters each).
const MAX_ENCODED_CHAR_BYTES: usize = 12;
/// Room for the kept prefix of a truncated segment (before the marker and hash).
const TRUNCATED_PREFIX_MAX: usize = MAX_SEGMENT_BYTES - 1 - TRUNCATION_HASH_HEX_LEN;
/// The shortest kept prefix of a truncated segment: truncation stops only when the next character
/// does not fit, so at most `MAX_ENCODED_CHAR_BYTES - 1` bytes of room are left unused.
const TRUNCATED_PREFIX_MIN: usize = TRUNCATED_PREFIX_MAX + 1 - MAX_ENCODED_CHAR_BYTES;

/// The customer segment of quarantined objects: lines the agent could not attribute to a tenant
/// (their pod's metadata never arrived). `.` is not allowed in a tenant id, so no tenant can own
/// this prefix, and the processor never delivers from it; an operator assigns such objects to a
/// tenant with `logrelay-processor quarantine release`. Their application segment holds the
/// namespace the lines came from.
pub const QUARANTINE_CUSTOMER: &str = ".quarantine";

/// Where an object belongs: the decoded values of the four directory segments.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    /// Tenant that owns the objects (first segment: the security boundary).
    pub customer_id: String,
    /// Cluster the logs were collected on.
    pub cluster_id: String,
    /// Application name.
    pub application: String,
    /// Pod name.
    pub pod_name: String,
}

impl Partition {
    /// Makes a partition from its four values.
    pub fn new(
        customer_id: impl Into<String>,
        cluster_id: impl Into<String>,
        application: impl Into<String>,
        pod_name: impl Into<String>,
    ) -> Self {
        Self {
            customer_id: customer_id.into(),
            cluster_id: cluster_id.into(),
            application: application.into(),
            pod_name: pod_name.into(),
        }
    }

    /// The encoded directory prefix of this partition, `enc/enc/enc/enc/`, for listing.
    pub fn key_prefix(&self) -> String {
        let mut out = String::with_capacity(4 * (MAX_SEGMENT_BYTES + 1));
        for value in [
            &self.customer_id,
            &self.cluster_id,
            &self.application,
            &self.pod_name,
        ] {
            out.push_str(&encode_segment(value));
            out.push('/');
        }
        out
    }

    /// Whether this is a quarantine partition ([`QUARANTINE_CUSTOMER`]).
    pub fn is_quarantine(&self) -> bool {
        self.customer_id == QUARANTINE_CUSTOMER
    }

    /// The encoded prefix of everything one customer owns, `enc/`, for listing.
    pub fn customer_prefix(customer_id: &str) -> String {
        format!("{}/", encode_segment(customer_id))
    }
}

/// One object of the central bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    /// The directory part.
    pub partition: Partition,
    /// When the object was created (whole seconds; [`ObjectKey::new`] drops the fraction).
    pub created: DateTime<Utc>,
    /// The object's id: `[a-z0-9-]`, 1 to [`MAX_ID_BYTES`] bytes.
    pub id: String,
    /// The file name of a Vector-written object, kept verbatim (see [`crate::vector_name`]);
    /// `None` for every key of this layout.
    pub vector_filename: Option<String>,
}

impl ObjectKey {
    /// Makes a key after checking the id and the year (0–9999); `created` is truncated to whole
    /// seconds so that `parse(to_key())` gives the same value back.
    pub fn new(
        partition: Partition,
        created: DateTime<Utc>,
        id: impl Into<String>,
    ) -> Result<Self, KeyError> {
        let id = id.into();
        check_id(&id)?;
        if !(0..=9999).contains(&created.year()) {
            return Err(KeyError::BadTime {
                reason: "year outside 0000-9999",
            });
        }
        let created = created.with_nanosecond(0).unwrap_or(created);
        Ok(Self {
            partition,
            created,
            id,
            vector_filename: None,
        })
    }

    /// The file name: `{YYYYMMDD}T{HHMMSS}Z-{id}.json.gz`, or the verbatim name of a
    /// Vector-written object.
    ///
    /// Built with [`ObjectKey::new`] it always parses back. If the public fields were set to an
    /// invalid id, every byte outside `[a-z0-9-]` becomes `_` (and the id is cut to 64 bytes), so
    /// the name never holds a `/` and the parser rejects it instead of misreading it.
    pub fn filename(&self) -> String {
        if let Some(name) = &self.vector_filename {
            return name.clone();
        }
        let id: String = if check_id(&self.id).is_ok() {
            self.id.clone()
        } else if self.id.is_empty() {
            "_".to_owned()
        } else {
            self.id
                .bytes()
                .take(MAX_ID_BYTES)
                .map(|b| if is_id_byte(b) { char::from(b) } else { '_' })
                .collect()
        };
        format!(
            "{}-{id}{FILENAME_SUFFIX}",
            self.created.format("%Y%m%dT%H%M%SZ")
        )
    }

    /// Builds the object key (without any deployment prefix). Never longer than
    /// [`MAX_KEY_BYTES`] minus [`MAX_PREFIX_BYTES`].
    pub fn to_key(&self) -> String {
        let mut key = self.partition.key_prefix();
        key.push_str(&self.filename());
        key
    }

    /// Builds the object key below a deployment prefix (`""` = none; a missing trailing `/` is
    /// added). Check the prefix once with [`validate_prefix`].
    pub fn to_key_with_prefix(&self, prefix: &str) -> String {
        let mut key = normalize_prefix(prefix);
        key.push_str(&self.to_key());
        key
    }

    /// Parses a key without a deployment prefix. Rejects anything [`ObjectKey::to_key`] would not
    /// have built, with a typed error; never panics. The one exception is the file name of a
    /// Vector-written object (`20250720-155434-{uuid}.json.gz`, see [`crate::vector_name`]),
    /// accepted and kept verbatim; its directory segments are held to the same rules.
    pub fn parse(key: &str) -> Result<Self, KeyError> {
        Self::parse_with_prefix(key, "")
    }

    /// Parses a key that starts with a deployment prefix (`""` = none; a missing trailing `/` is
    /// added, as in [`ObjectKey::to_key_with_prefix`]).
    pub fn parse_with_prefix(key: &str, prefix: &str) -> Result<Self, KeyError> {
        if key.len() > MAX_KEY_BYTES {
            return Err(KeyError::TooLong {
                len: key.len(),
                max: MAX_KEY_BYTES,
            });
        }
        let prefix = normalize_prefix(prefix);
        let rest = key
            .strip_prefix(prefix.as_str())
            .ok_or_else(|| KeyError::PrefixMismatch {
                prefix: prefix.clone(),
            })?;
        let parts: Vec<&str> = rest.split('/').collect();
        let [customer, cluster, application, pod, filename] = parts.as_slice() else {
            return Err(KeyError::SegmentCount { found: parts.len() });
        };
        let decode = |segment: &str, field: &'static str| {
            decode_segment_inner(segment).map_err(|reason| KeyError::BadSegment { field, reason })
        };
        let partition = Partition {
            customer_id: decode(customer, "customer_id")?,
            cluster_id: decode(cluster, "cluster_id")?,
            application: decode(application, "application")?,
            pod_name: decode(pod, "pod_name")?,
        };
        let stem = filename.strip_suffix(FILENAME_SUFFIX).unwrap_or(filename);
        if crate::vector_name::looks_like_vector_name(stem) {
            let (created, id) = crate::vector_name::parse(filename)?;
            return Ok(Self {
                partition,
                created,
                id,
                vector_filename: Some((*filename).to_owned()),
            });
        }
        let (created, id) = parse_filename(filename)?;
        Ok(Self {
            partition,
            created,
            id,
            vector_filename: None,
        })
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_key())
    }
}

/// Checks a deployment prefix: at most [`MAX_PREFIX_BYTES`] once normalized (trailing `/` added).
pub fn validate_prefix(prefix: &str) -> Result<(), KeyError> {
    let len = normalize_prefix(prefix).len();
    if len > MAX_PREFIX_BYTES {
        return Err(KeyError::PrefixTooLong {
            len,
            max: MAX_PREFIX_BYTES,
        });
    }
    Ok(())
}

/// A deployment prefix as keys carry it: `""`, or ending in `/` (added when missing).
pub fn normalize_prefix(prefix: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    }
}

/// Encodes one value as a key segment.
///
/// * `[A-Za-z0-9._-]` stays; every other byte becomes `%XX` (uppercase hex).
/// * `""` becomes [`EMPTY_SEGMENT`] (`~`), `.` becomes `%2E`, `..` becomes `%2E%2E`.
/// * If the encoding is longer than [`MAX_SEGMENT_BYTES`], it is cut after the last whole
///   character that fits in 183 bytes and `~` plus the first 16 hex digits of the SHA-256 of the
///   whole value are appended (at most 200 bytes).
/// * A value that already has the shape of a decoded truncated segment (`{prefix}~{16 hex}` whose
///   prefix encodes to 172–183 bytes) is written as that truncated segment, so that
///   `encode_segment(decode_segment(s)) == s` holds for every valid segment.
pub fn encode_segment(value: &str) -> String {
    match value {
        "" => return EMPTY_SEGMENT.to_owned(),
        "." => return DOT_SEGMENT.to_owned(),
        ".." => return DOT_DOT_SEGMENT.to_owned(),
        _ => {}
    }
    if let Some((prefix, hash)) = split_truncated_form(value) {
        let mut out = plain_encode(prefix);
        out.push(TRUNCATION_MARKER);
        out.push_str(hash);
        return out;
    }
    let full = plain_encode(value);
    if full.len() <= MAX_SEGMENT_BYTES {
        return full;
    }
    let mut out = String::with_capacity(MAX_SEGMENT_BYTES);
    for c in value.chars() {
        let mut utf8 = [0; 4];
        let bytes = c.encode_utf8(&mut utf8).as_bytes();
        let needed = if bytes.len() == 1 && is_kept(bytes[0]) {
            1
        } else {
            3 * bytes.len()
        };
        if out.len() + needed > TRUNCATED_PREFIX_MAX {
            break;
        }
        push_encoded_char(&mut out, c);
    }
    out.push(TRUNCATION_MARKER);
    out.push_str(&truncation_hash(value));
    out
}

/// Decodes one key segment, rejecting any spelling [`encode_segment`] would not produce (lowercase
/// hex, an escaped kept byte, raw bytes outside `[A-Za-z0-9._-]`, …), so each value has one key.
///
/// A truncated segment decodes to its kept prefix, `~` and the hash: `decode_segment` cannot
/// recover the cut-off part. Such a value re-encodes to the same segment.
pub fn decode_segment(segment: &str) -> Result<String, KeyError> {
    decode_segment_inner(segment).map_err(|reason| KeyError::BadSegment {
        field: "segment",
        reason,
    })
}

fn decode_segment_inner(segment: &str) -> Result<String, SegmentError> {
    if segment.is_empty() {
        return Err(SegmentError::Empty);
    }
    if segment.len() > MAX_SEGMENT_BYTES {
        return Err(SegmentError::TooLong {
            len: segment.len(),
            max: MAX_SEGMENT_BYTES,
        });
    }
    if segment == EMPTY_SEGMENT {
        return Ok(String::new());
    }
    let value = match segment.find(TRUNCATION_MARKER) {
        None => strict_percent_decode(segment)?,
        Some(at) => {
            let hash = &segment[at + 1..];
            if hash.len() != TRUNCATION_HASH_HEX_LEN || !is_lower_hex(hash) {
                return Err(SegmentError::BadTruncation);
            }
            let mut value = strict_percent_decode(&segment[..at])?;
            value.push(TRUNCATION_MARKER);
            value.push_str(hash);
            value
        }
    };
    if encode_segment(&value) != segment {
        return Err(SegmentError::NonCanonical);
    }
    Ok(value)
}

/// A deterministic object id from the parts that identify a source range (for example node name,
/// file fingerprint and first offset): the same parts always give the same id, so a retried upload
/// overwrites instead of duplicating. Each part is hashed with its length, so `["ab", "c"]` and
/// `["a", "bc"]` differ. Returns [`OBJECT_ID_HEX_LEN`] lowercase hex digits.
pub fn object_id(source: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"logrelay-object-id-v1\0");
    hasher.update((source.len() as u64).to_be_bytes());
    for part in source {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    hex::encode(&digest[..OBJECT_ID_HEX_LEN / 2])
}

/// Decodes a key as S3 event notifications carry it: form-encoded, so `+` becomes a space, then
/// `%XX` escapes (either hex case) are decoded. A `%` without two hex digits or a result that is
/// not UTF-8 is an error.
pub fn decode_notification_key(raw: &str) -> Result<String, KeyError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let byte = bytes.get(i + 1..i + 3).and_then(hex_pair).ok_or(
                    KeyError::BadNotificationKey {
                        reason: SegmentError::BadEscape { position: i },
                    },
                )?;
                out.push(byte);
                i += 3;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| KeyError::BadNotificationKey {
        reason: SegmentError::InvalidUtf8,
    })
}

/// The setting that holds the deployment prefix, with the same flag and environment name in the
/// agent and the processor; named in every error a prefix mismatch can cause.
pub const KEY_PREFIX_SETTING: &str = "--key-prefix (LOGRELAY_KEY_PREFIX)";

/// What is wrong with a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key is longer than S3 allows.
    #[error("key is {len} bytes, more than the {max} S3 allows")]
    TooLong {
        /// Length of the key.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The key does not start with the deployment prefix.
    #[error(
        "key does not start with the prefix {prefix:?} (setting {KEY_PREFIX_SETTING}: the agent's and the processor's must be equal)"
    )]
    PrefixMismatch {
        /// The expected prefix (normalized).
        prefix: String,
    },
    /// The deployment prefix leaves no room for the largest key.
    #[error("prefix is {len} bytes, more than {max}")]
    PrefixTooLong {
        /// Length of the normalized prefix.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The key does not have four directory segments and a file name.
    #[error(
        "key has {found} '/'-separated parts after the prefix, expected 5 (setting {KEY_PREFIX_SETTING}: the agent's and the processor's must be equal)"
    )]
    SegmentCount {
        /// Number of parts found.
        found: usize,
    },
    /// One directory segment is not a valid encoding.
    #[error("{field} segment: {reason}")]
    BadSegment {
        /// Which segment (`customer_id`, …; `segment` from [`decode_segment`]).
        field: &'static str,
        /// What is wrong with it.
        reason: SegmentError,
    },
    /// The file name does not have the shape `{YYYYMMDD}T{HHMMSS}Z-{id}.json.gz`.
    #[error("file name: {reason}")]
    BadFilename {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The time in the file name is not a real UTC time, or cannot be written in the layout.
    #[error("file name time: {reason}")]
    BadTime {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The object id is empty, too long or has a byte outside `[a-z0-9-]`.
    #[error("object id: {reason}")]
    BadId {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A key from an S3 event notification is not valid form encoding.
    #[error("notification key: {reason}")]
    BadNotificationKey {
        /// What is wrong with it.
        reason: SegmentError,
    },
}

/// What is wrong with one segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    /// The segment is empty (`~` is the empty value).
    #[error("empty segment")]
    Empty,
    /// The segment is longer than the cap.
    #[error("segment is {len} bytes, more than {max}")]
    TooLong {
        /// Length of the segment.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A `%` is not followed by two hex digits.
    #[error("bad percent escape at byte {position}")]
    BadEscape {
        /// Byte offset of the `%`.
        position: usize,
    },
    /// A raw byte that must be percent-encoded.
    #[error("byte 0x{byte:02X} at {position} must be percent-encoded")]
    ForbiddenByte {
        /// The byte.
        byte: u8,
        /// Its offset.
        position: usize,
    },
    /// The decoded bytes are not UTF-8.
    #[error("decoded value is not UTF-8")]
    InvalidUtf8,
    /// The segment is not the one spelling of its value (e.g. lowercase hex or `%61` for `a`).
    #[error("not the canonical encoding of its value")]
    NonCanonical,
    /// A `~` that is not the empty value or the marker of a truncated segment.
    #[error("misplaced '~' (only the empty value or a truncation marker)")]
    BadTruncation,
}

fn is_kept(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn push_encoded_char(out: &mut String, c: char) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut utf8 = [0; 4];
    for &b in c.encode_utf8(&mut utf8).as_bytes() {
        if is_kept(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        }
    }
}

/// Percent-encodes without the special cases (empty, dots, truncation).
fn plain_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        push_encoded_char(&mut out, c);
    }
    out
}

fn plain_encoded_len(value: &str) -> usize {
    value.bytes().map(|b| if is_kept(b) { 1 } else { 3 }).sum()
}

fn truncation_hash(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    hex::encode(&digest[..TRUNCATION_HASH_HEX_LEN / 2])
}

/// Splits a value shaped like a decoded truncated segment into its prefix and hash.
fn split_truncated_form(value: &str) -> Option<(&str, &str)> {
    let at = value.len().checked_sub(TRUNCATION_HASH_HEX_LEN + 1)?;
    if value.as_bytes()[at] != b'~' {
        return None;
    }
    // `~` is ASCII, so `at` and `at + 1` are character boundaries.
    let (prefix, hash) = (&value[..at], &value[at + 1..]);
    let prefix_len = plain_encoded_len(prefix);
    let fits = (TRUNCATED_PREFIX_MIN..=TRUNCATED_PREFIX_MAX).contains(&prefix_len);
    (fits && is_lower_hex(hash)).then_some((prefix, hash))
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn hex_pair(pair: &[u8]) -> Option<u8> {
    match pair {
        [hi, lo] => Some(hex_digit(*hi)? << 4 | hex_digit(*lo)?),
        _ => None,
    }
}

/// Decodes `%XX` escapes; any raw byte outside the kept set is an error.
fn strict_percent_decode(segment: &str) -> Result<String, SegmentError> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let byte = bytes
                .get(i + 1..i + 3)
                .and_then(hex_pair)
                .ok_or(SegmentError::BadEscape { position: i })?;
            out.push(byte);
            i += 3;
        } else if is_kept(b) {
            out.push(b);
            i += 1;
        } else {
            return Err(SegmentError::ForbiddenByte {
                byte: b,
                position: i,
            });
        }
    }
    String::from_utf8(out).map_err(|_| SegmentError::InvalidUtf8)
}

fn check_id(id: &str) -> Result<(), KeyError> {
    if id.is_empty() {
        return Err(KeyError::BadId { reason: "empty" });
    }
    if id.len() > MAX_ID_BYTES {
        return Err(KeyError::BadId {
            reason: "longer than 64 bytes",
        });
    }
    if !id.bytes().all(is_id_byte) {
        return Err(KeyError::BadId {
            reason: "only a-z, 0-9 and '-' are allowed",
        });
    }
    Ok(())
}

fn digits(s: &str) -> Option<u32> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// Parses `{YYYYMMDD}T{HHMMSS}Z-{id}.json.gz`.
fn parse_filename(filename: &str) -> Result<(DateTime<Utc>, String), KeyError> {
    let stem = filename
        .strip_suffix(FILENAME_SUFFIX)
        .ok_or(KeyError::BadFilename {
            reason: "does not end with .json.gz",
        })?;
    let bytes = stem.as_bytes();
    if bytes.len() < FILENAME_TIME_LEN
        || bytes[8] != b'T'
        || bytes[15] != b'Z'
        || bytes[16] != b'-'
        || !stem.is_char_boundary(FILENAME_TIME_LEN)
    {
        return Err(KeyError::BadFilename {
            reason: "expected {YYYYMMDD}T{HHMMSS}Z-{id}",
        });
    }
    let field = |range: std::ops::Range<usize>| {
        stem.get(range)
            .and_then(digits)
            .ok_or(KeyError::BadFilename {
                reason: "date and time must be digits",
            })
    };
    let (year, month, day) = (field(0..4)?, field(4..6)?, field(6..8)?);
    let (hour, minute, second) = (field(9..11)?, field(11..13)?, field(13..15)?);
    let year = i32::try_from(year).map_err(|_| KeyError::BadTime { reason: "bad year" })?;
    let created = NaiveDate::from_ymd_opt(year, month, day)
        .ok_or(KeyError::BadTime {
            reason: "no such date",
        })?
        .and_hms_opt(hour, minute, second)
        .ok_or(KeyError::BadTime {
            reason: "no such time of day",
        })?;
    // A second of 60 would need a leap second, which the builder never writes.
    if second > 59 {
        return Err(KeyError::BadTime {
            reason: "no such time of day",
        });
    }
    let id = &stem[FILENAME_TIME_LEN..];
    check_id(id)?;
    Ok((Utc.from_utc_datetime(&created), id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn time(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test time is RFC 3339")
            .with_timezone(&Utc)
    }

    fn key(customer: &str, cluster: &str, app: &str, pod: &str) -> ObjectKey {
        ObjectKey::new(
            Partition::new(customer, cluster, app, pod),
            time("2024-03-05T07:08:09.999Z"),
            "abc-123",
        )
        .expect("valid key")
    }

    #[test]
    fn key_has_the_documented_layout() {
        let k = key("acme", "c1", "api", "api-7d9f");
        assert_eq!(
            k.to_key(),
            "acme/c1/api/api-7d9f/20240305T070809Z-abc-123.json.gz"
        );
        assert_eq!(k.created, time("2024-03-05T07:08:09Z"), "fraction dropped");
        assert_eq!(ObjectKey::parse(&k.to_key()), Ok(k.clone()));
        assert_eq!(k.to_string(), k.to_key());
        assert_eq!(k.partition.key_prefix(), "acme/c1/api/api-7d9f/");
        assert_eq!(Partition::customer_prefix("a/b"), "a%2Fb/");
    }

    #[test]
    fn special_values_have_reserved_spellings() {
        assert_eq!(encode_segment(""), "~");
        assert_eq!(encode_segment("."), "%2E");
        assert_eq!(encode_segment(".."), "%2E%2E");
        assert_eq!(encode_segment("..."), "...");
        assert_eq!(encode_segment("~"), "%7E");
        assert_eq!(encode_segment("a/b c+%"), "a%2Fb%20c%2B%25");
        assert_eq!(encode_segment("é"), "%C3%A9");
        assert_eq!(encode_segment("\n\0"), "%0A%00");
        for value in ["", ".", "..", "~", "%", "é"] {
            assert_eq!(decode_segment(&encode_segment(value)).as_deref(), Ok(value));
        }
    }

    #[test]
    fn documented_examples_hold() {
        // The examples table of docs/record-format.md.
        for (value, segment) in [
            ("api-7d9f", "api-7d9f"),
            ("a/b c+%", "a%2Fb%20c%2B%25"),
            ("../other", "..%2Fother"),
            ("%2F", "%252F"),
            ("é", "%C3%A9"),
            ("~", "%7E"),
        ] {
            assert_eq!(encode_segment(value), segment);
        }
        let long = "a".repeat(300);
        assert_eq!(
            encode_segment(&long),
            format!("{}~9835fa6bf4e20a9b", "a".repeat(183))
        );
        let k = "acme/c1/api/api-7d9f/20240305T070809Z-3f2a9c0d1e4b5a697887766554433221.json.gz";
        assert_eq!(ObjectKey::parse(k).map(|p| p.to_key()).as_deref(), Ok(k));
    }

    #[test]
    fn hostile_values_never_change_another_segment() {
        let long = "x/".repeat(500);
        for hostile in [
            "../other",
            "a/b",
            "%2F",
            "..",
            ".",
            "",
            "/",
            "other/c1/api/pod",
            &long,
        ] {
            let k = key(hostile, hostile, hostile, hostile);
            let text = k.to_key();
            assert_eq!(text.split('/').count(), 5, "{text}");
            assert!(text.len() <= MAX_KEY_BYTES - MAX_PREFIX_BYTES);
            let parsed = ObjectKey::parse(&text).expect("own keys parse");
            assert_eq!(
                parsed.partition.customer_id,
                decode_segment(&encode_segment(hostile)).expect("decodes")
            );
            for segment in text.split('/').take(4) {
                assert!(
                    !segment.is_empty() && segment != "." && segment != "..",
                    "{segment}"
                );
            }
            let victim = key("victim", "c1", hostile, hostile).to_key();
            assert!(victim.starts_with("victim/c1/"), "{victim}");
        }
    }

    #[test]
    fn long_values_are_truncated_with_a_hash_and_stay_distinct() {
        let a = format!("{}a", "x".repeat(1000));
        let b = format!("{}b", "x".repeat(1000));
        let (ea, eb) = (encode_segment(&a), encode_segment(&b));
        assert_ne!(ea, eb);
        assert_eq!(ea.len(), MAX_SEGMENT_BYTES);
        assert!(ea.starts_with(&"x".repeat(TRUNCATED_PREFIX_MAX)));
        assert_eq!(&ea[TRUNCATED_PREFIX_MAX..TRUNCATED_PREFIX_MAX + 1], "~");
        let decoded = decode_segment(&ea).expect("truncated segment decodes");
        assert_eq!(
            decoded,
            format!("{}~{}", "x".repeat(183), truncation_hash(&a))
        );
        assert_eq!(
            encode_segment(&decoded),
            ea,
            "decoded truncated form re-encodes the same"
        );
        let k = key(&a, &b, &a, &b);
        assert_eq!(
            ObjectKey::parse(&k.to_key()).expect("parses").to_key(),
            k.to_key()
        );
    }

    #[test]
    fn truncation_cuts_on_character_boundaries() {
        let value = "é".repeat(100); // 600 encoded bytes, 6 per character
        let encoded = encode_segment(&value);
        assert!(encoded.len() <= MAX_SEGMENT_BYTES);
        let prefix = encoded.split('~').next().expect("has a prefix");
        assert_eq!(prefix.len(), 180, "30 whole characters");
        assert!(
            decode_segment(&encoded)
                .expect("decodes")
                .starts_with(&"é".repeat(30))
        );
        let emoji = format!("a{}", "😀".repeat(40)); // 12 encoded bytes each
        let encoded = encode_segment(&emoji);
        assert_eq!(encoded.split('~').next().map(str::len), Some(1 + 12 * 15));
    }

    #[test]
    fn lookalikes_of_truncated_values_are_escaped() {
        // A short value with a `~` and 16 hex digits is an ordinary value.
        let value = "pod~0123456789abcdef";
        assert_eq!(encode_segment(value), "pod%7E0123456789abcdef");
        assert_eq!(
            decode_segment("pod%7E0123456789abcdef").as_deref(),
            Ok(value)
        );
        assert_eq!(
            decode_segment("pod~0123456789abcdef"),
            Err(KeyError::BadSegment {
                field: "segment",
                reason: SegmentError::NonCanonical
            })
        );
    }

    #[test]
    fn non_canonical_segments_are_rejected() {
        let non_canonical = SegmentError::NonCanonical;
        for segment in ["%2f", "%61", "%2D", ".", "..", "%2e", "%7e"] {
            assert_eq!(
                decode_segment(segment),
                Err(KeyError::BadSegment {
                    field: "segment",
                    reason: non_canonical.clone()
                }),
                "{segment}"
            );
        }
    }

    #[test]
    fn malformed_segments_give_typed_errors() {
        let cases: [(&str, SegmentError); 9] = [
            ("", SegmentError::Empty),
            ("%", SegmentError::BadEscape { position: 0 }),
            ("ab%4", SegmentError::BadEscape { position: 2 }),
            ("%zz", SegmentError::BadEscape { position: 0 }),
            (
                "a b",
                SegmentError::ForbiddenByte {
                    byte: b' ',
                    position: 1,
                },
            ),
            (
                "é",
                SegmentError::ForbiddenByte {
                    byte: 0xC3,
                    position: 0,
                },
            ),
            ("%FF", SegmentError::InvalidUtf8),
            ("a~b", SegmentError::BadTruncation),
            ("~~", SegmentError::BadTruncation),
        ];
        for (segment, reason) in cases {
            assert_eq!(
                decode_segment(segment),
                Err(KeyError::BadSegment {
                    field: "segment",
                    reason
                }),
                "{segment:?}"
            );
        }
        let long = "a".repeat(MAX_SEGMENT_BYTES + 1);
        assert_eq!(
            decode_segment(&long),
            Err(KeyError::BadSegment {
                field: "segment",
                reason: SegmentError::TooLong { len: 201, max: 200 }
            })
        );
    }

    #[test]
    fn malformed_keys_give_typed_errors() {
        let good = "acme/c1/api/pod/20240305T070809Z-abc.json.gz";
        assert!(ObjectKey::parse(good).is_ok());
        let cases: Vec<(String, KeyError)> = vec![
            (
                "acme/c1/api/20240305T070809Z-abc.json.gz".into(),
                KeyError::SegmentCount { found: 4 },
            ),
            (format!("x/{good}"), KeyError::SegmentCount { found: 6 }),
            (
                "acme//api/pod/20240305T070809Z-abc.json.gz".into(),
                KeyError::BadSegment {
                    field: "cluster_id",
                    reason: SegmentError::Empty,
                },
            ),
            (
                "acme/c1/%2e%2e/pod/20240305T070809Z-abc.json.gz".into(),
                KeyError::BadSegment {
                    field: "application",
                    reason: SegmentError::NonCanonical,
                },
            ),
            (
                "acme/c1/api/pod/20240305T070809Z-abc.json".into(),
                KeyError::BadFilename {
                    reason: "does not end with .json.gz",
                },
            ),
            (
                "acme/c1/api/pod/2024035T070809Z-abc.json.gz".into(),
                KeyError::BadFilename {
                    reason: "expected {YYYYMMDD}T{HHMMSS}Z-{id}",
                },
            ),
            (
                "acme/c1/api/pod/2024+305T070809Z-abc.json.gz".into(),
                KeyError::BadFilename {
                    reason: "date and time must be digits",
                },
            ),
            (
                "acme/c1/api/pod/20240230T070809Z-abc.json.gz".into(),
                KeyError::BadTime {
                    reason: "no such date",
                },
            ),
            (
                "acme/c1/api/pod/20240305T240000Z-abc.json.gz".into(),
                KeyError::BadTime {
                    reason: "no such time of day",
                },
            ),
            (
                "acme/c1/api/pod/20240305T235960Z-abc.json.gz".into(),
                KeyError::BadTime {
                    reason: "no such time of day",
                },
            ),
            (
                "acme/c1/api/pod/20240305T070809Z-.json.gz".into(),
                KeyError::BadId { reason: "empty" },
            ),
            (
                "acme/c1/api/pod/20240305T070809Z-ABC.json.gz".into(),
                KeyError::BadId {
                    reason: "only a-z, 0-9 and '-' are allowed",
                },
            ),
            (
                format!(
                    "acme/c1/api/pod/20240305T070809Z-{}.json.gz",
                    "a".repeat(65)
                ),
                KeyError::BadId {
                    reason: "longer than 64 bytes",
                },
            ),
            (
                "a".repeat(1025),
                KeyError::TooLong {
                    len: 1025,
                    max: 1024,
                },
            ),
            ("é/€/x".into(), KeyError::SegmentCount { found: 3 }),
            (
                "2024é5T070809Z-abc.json.gz".into(),
                KeyError::SegmentCount { found: 1 },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(ObjectKey::parse(&text), Err(expected), "{text}");
        }
        let multibyte = "a/b/c/d/2024030é070809Z-abc.json.gz";
        assert!(matches!(
            ObjectKey::parse(multibyte),
            Err(KeyError::BadFilename { .. })
        ));
    }

    #[test]
    fn vector_written_keys_parse_and_rebuild_verbatim() {
        for text in [
            "test-customer/test-cluster/test-app/test-pod/20240101-test.json.gz",
            "acme/c1/api/pod-7/20250720-155434-0b9d1c4e-6f2a-4c3e-9a7b-2f1e0d9c8b7a.json.gz",
            "acme/c1/api/pod-7/20250719123456-0b9d1c4e-6f2a-4c3e-9a7b-2f1e0d9c8b7a.json.gz",
        ] {
            let parsed = ObjectKey::parse(text).expect(text);
            assert_eq!(parsed.to_key(), text);
            assert!(parsed.vector_filename.is_some(), "{text}");
        }
        let parsed = ObjectKey::parse_with_prefix(
            "logs/test-customer/test-cluster/test-app/test-pod/20240101-test.json.gz",
            "logs",
        )
        .expect("prefixed");
        assert_eq!(parsed.partition.customer_id, "test-customer");
        assert_eq!(parsed.created, time("2024-01-01T00:00:00Z"));
        assert_eq!(parsed.id, "test");
    }

    #[test]
    fn vector_written_keys_are_held_to_the_segment_rules() {
        let name = "20240101-test.json.gz";
        let cases: Vec<(String, KeyError)> = vec![
            (
                format!("../c1/api/pod/{name}"),
                KeyError::BadSegment {
                    field: "customer_id",
                    reason: SegmentError::NonCanonical,
                },
            ),
            (
                format!("acme/../api/pod/{name}"),
                KeyError::BadSegment {
                    field: "cluster_id",
                    reason: SegmentError::NonCanonical,
                },
            ),
            (
                format!("acme corp/c1/api/pod/{name}"),
                KeyError::BadSegment {
                    field: "customer_id",
                    reason: SegmentError::ForbiddenByte {
                        byte: b' ',
                        position: 4,
                    },
                },
            ),
            (
                format!("acme/c1/api/{name}"),
                KeyError::SegmentCount { found: 4 },
            ),
            (
                format!("x/acme/c1/api/pod/{name}"),
                KeyError::SegmentCount { found: 6 },
            ),
            (
                "acme/c1/api/pod/20240101-../x.json.gz".into(),
                KeyError::SegmentCount { found: 6 },
            ),
            (
                "acme/c1/api/pod/20240101-..json.gz".into(),
                KeyError::BadId {
                    reason: "only a-z, 0-9 and '-' are allowed",
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(ObjectKey::parse(&text), Err(expected), "{text}");
        }
    }

    #[test]
    fn deployment_prefix_is_added_and_required() {
        let k = key("acme", "c1", "api", "pod");
        let text = k.to_key_with_prefix("logs/v1");
        assert_eq!(
            text,
            "logs/v1/acme/c1/api/pod/20240305T070809Z-abc-123.json.gz"
        );
        assert_eq!(k.to_key_with_prefix("logs/v1/"), text);
        assert_eq!(
            ObjectKey::parse_with_prefix(&text, "logs/v1"),
            Ok(k.clone())
        );
        assert_eq!(
            ObjectKey::parse_with_prefix(&text, "logs/v1/"),
            Ok(k.clone())
        );
        assert_eq!(
            ObjectKey::parse_with_prefix(&text, "other"),
            Err(KeyError::PrefixMismatch {
                prefix: "other/".into()
            })
        );
        let unprefixed = ObjectKey::parse(&text);
        assert_eq!(unprefixed, Err(KeyError::SegmentCount { found: 7 }));
        let message = unprefixed.expect_err("prefixed key").to_string();
        assert!(
            message.contains("--key-prefix (LOGRELAY_KEY_PREFIX)"),
            "a prefix mismatch names the setting: {message}"
        );
        assert_eq!(ObjectKey::parse_with_prefix(&k.to_key(), ""), Ok(k));
        assert!(validate_prefix(&"p".repeat(MAX_PREFIX_BYTES - 1)).is_ok());
        assert_eq!(
            validate_prefix(&"p".repeat(MAX_PREFIX_BYTES)),
            Err(KeyError::PrefixTooLong { len: 129, max: 128 })
        );
    }

    #[test]
    fn largest_key_with_largest_prefix_fits_s3() {
        let long = "€".repeat(400);
        let k = ObjectKey::new(
            Partition::new(&long, &long, &long, &long),
            time("9999-12-31T23:59:59Z"),
            "z".repeat(MAX_ID_BYTES),
        )
        .expect("valid key");
        let prefix = "p/".repeat(MAX_PREFIX_BYTES / 2);
        let text = k.to_key_with_prefix(&prefix);
        assert!(text.len() <= MAX_KEY_BYTES, "{}", text.len());
        assert_eq!(
            ObjectKey::parse_with_prefix(&text, &prefix).map(|p| p.to_key()),
            Ok(k.to_key())
        );
    }

    #[test]
    fn new_checks_id_and_year() {
        let p = Partition::new("a", "b", "c", "d");
        let t = time("2024-01-01T00:00:00Z");
        assert_eq!(
            ObjectKey::new(p.clone(), t, ""),
            Err(KeyError::BadId { reason: "empty" })
        );
        assert!(ObjectKey::new(p.clone(), t, "a_b").is_err());
        assert!(ObjectKey::new(p.clone(), t, "a".repeat(64)).is_ok());
        assert!(ObjectKey::new(p.clone(), t, "a".repeat(65)).is_err());
        let far = Utc
            .with_ymd_and_hms(10000, 1, 1, 0, 0, 0)
            .single()
            .expect("valid time");
        assert_eq!(
            ObjectKey::new(p, far, "a"),
            Err(KeyError::BadTime {
                reason: "year outside 0000-9999"
            })
        );
    }

    #[test]
    fn invalid_public_id_never_adds_a_segment() {
        let mut k = key("acme", "c1", "api", "pod");
        k.id = "../../other/x".into();
        let text = k.to_key();
        assert_eq!(
            text,
            "acme/c1/api/pod/20240305T070809Z-______other_x.json.gz"
        );
        assert!(matches!(
            ObjectKey::parse(&text),
            Err(KeyError::BadId { .. })
        ));
        k.id = String::new();
        assert!(matches!(
            ObjectKey::parse(&k.to_key()),
            Err(KeyError::BadId { .. })
        ));
    }

    #[test]
    fn filename_time_is_formatted_and_parsed_in_utc() {
        let k = ObjectKey::new(
            Partition::new("a", "b", "c", "d"),
            DateTime::parse_from_rfc3339("2024-12-31T23:30:00-02:00")
                .expect("valid")
                .with_timezone(&Utc),
            "x",
        )
        .expect("valid key");
        assert_eq!(k.filename(), "20250101T013000Z-x.json.gz");
        let parsed = ObjectKey::parse("a/b/c/d/00010101T000000Z-x.json.gz").expect("year 1 parses");
        assert_eq!(
            parsed.created,
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0)
                .single()
                .expect("valid")
        );
    }

    #[test]
    fn object_id_is_deterministic_and_length_delimited() {
        let id = object_id(&[b"node-1", b"fp", &42u64.to_be_bytes()]);
        assert_eq!(id, object_id(&[b"node-1", b"fp", &42u64.to_be_bytes()]));
        assert_eq!(id.len(), OBJECT_ID_HEX_LEN);
        assert!(check_id(&id).is_ok());
        assert_ne!(object_id(&[b"ab", b"c"]), object_id(&[b"a", b"bc"]));
        assert_ne!(object_id(&[b"a"]), object_id(&[b"a", b""]));
        assert_ne!(object_id(&[]), object_id(&[b""]));
        assert_ne!(id, object_id(&[b"node-1", b"fp", &43u64.to_be_bytes()]));
    }

    #[test]
    fn notification_keys_are_form_decoded() {
        assert_eq!(decode_notification_key("a%2Fb+c").as_deref(), Ok("a/b c"));
        assert_eq!(decode_notification_key("a%2fb%2B").as_deref(), Ok("a/b+"));
        assert_eq!(decode_notification_key("%C3%A9").as_deref(), Ok("é"));
        assert_eq!(
            decode_notification_key("plain/key.json.gz").as_deref(),
            Ok("plain/key.json.gz")
        );
        // An encoded segment arrives double-encoded: `%2F` in the key is `%252F` in the event.
        assert_eq!(
            decode_notification_key("a%252Fb/x").as_deref(),
            Ok("a%2Fb/x")
        );
        let bad = |position| {
            Err(KeyError::BadNotificationKey {
                reason: SegmentError::BadEscape { position },
            })
        };
        assert_eq!(decode_notification_key("a%2"), bad(1));
        assert_eq!(decode_notification_key("%g0"), bad(0));
        assert_eq!(
            decode_notification_key("%FF"),
            Err(KeyError::BadNotificationKey {
                reason: SegmentError::InvalidUtf8
            })
        );
    }

    /// Values that stress the encoding: separators, escapes, dots, unicode, control characters.
    fn tricky_value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just(".".to_owned()),
            Just("..".to_owned()),
            "[./%+~ a-zA-Z0-9_-]{0,40}",
            prop::collection::vec(any::<char>(), 0..16).prop_map(String::from_iter),
            "\\PC{0,16}",
            "[\\x00-\\x1f\\x7f/]{1,10}",
        ]
    }

    proptest! {
        #[test]
        fn parse_inverts_build(
            customer in tricky_value(),
            cluster in tricky_value(),
            app in tricky_value(),
            pod in tricky_value(),
            secs in 0i64..253_402_300_799,
            id in "[a-z0-9-]{1,64}",
        ) {
            let created = Utc.timestamp_opt(secs, 0).single().expect("in range");
            let k = ObjectKey::new(Partition::new(customer, cluster, app, pod), created, id).expect("valid");
            let text = k.to_key();
            prop_assert_eq!(text.split('/').count(), 5);
            prop_assert_eq!(ObjectKey::parse(&text), Ok(k));
        }

        #[test]
        fn parse_never_panics_and_accepts_only_canonical_keys(
            key in prop_oneof!["\\PC{0,120}", "([a-z%~.2EF]{1,6}/){4}2024[01][0-9][0-3][0-9]T[0-2][0-9][0-5][0-9][0-6][0-9]Z-[a-z0-9]{1,3}\\.json\\.gz"],
        ) {
            if let Ok(parsed) = ObjectKey::parse(&key) {
                prop_assert_eq!(parsed.to_key(), key.as_str());
            }
            let _ = decode_notification_key(&key);
        }

        #[test]
        fn decode_accepts_only_canonical_segments(segment in "[%A-Fa-f0-9./~ _-]{1,12}") {
            if let Ok(value) = decode_segment(&segment) {
                prop_assert_eq!(encode_segment(&value), segment);
            }
        }

        #[test]
        fn long_values_stay_distinct_and_bounded(
            base in "\\PC{60,120}",
            a in "\\PC{1,8}",
            b in "\\PC{1,8}",
        ) {
            let (va, vb) = (format!("{base}{a}"), format!("{base}{b}"));
            let (ea, eb) = (encode_segment(&va), encode_segment(&vb));
            prop_assert!(ea.len() <= MAX_SEGMENT_BYTES && eb.len() <= MAX_SEGMENT_BYTES);
            if va != vb {
                prop_assert_ne!(&ea, &eb);
            }
            let da = decode_segment(&ea).expect("own segments decode");
            prop_assert_eq!(encode_segment(&da), ea);
        }
    }
}
