//! When a Lambda invocation stops starting work: a record (queue message) is started only while
//! more than a margin is left before the invocation's deadline, so the records in flight can
//! finish and the partial batch response reaches Lambda before the function times out. Records not
//! started are reported as batch item failures and come back; one slow object no longer turns the
//! whole batch into a timeout.

use std::time::{Duration, SystemTime};

/// Time kept free before the deadline: no record starts with less than this left. It bounds how
/// long the records already started may still take (one object's delivery, the dead-letter
/// forward and the response); the shortest Lambda timeout the stacks allow is 60 s
/// (`ProcessorTimeoutSeconds`), so a batch always gets its first records started.
pub const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_secs(20);

/// Where the current time comes from (a fake clock in tests).
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system's wall clock (Lambda's deadline is wall-clock milliseconds since the epoch).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// An invocation's deadline and the margin kept before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: SystemTime,
    margin: Duration,
}

impl Deadline {
    /// A deadline at `at`, keeping `margin` free before it.
    pub fn new(at: SystemTime, margin: Duration) -> Self {
        Self { at, margin }
    }

    /// From the Lambda context's deadline (milliseconds since the epoch); `None` when the runtime
    /// gave none (0).
    pub fn from_epoch_millis(millis: u64, margin: Duration) -> Option<Self> {
        (millis > 0).then(|| {
            Self::new(
                SystemTime::UNIX_EPOCH + Duration::from_millis(millis),
                margin,
            )
        })
    }

    /// Whether work may start at `now`: more than the margin is left.
    pub fn allows_start(&self, now: SystemTime) -> bool {
        self.at
            .duration_since(now)
            .is_ok_and(|left| left > self.margin)
    }

    /// Time left at `now` (zero once past).
    pub fn left(&self, now: SystemTime) -> Duration {
        self.at.duration_since(now).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_starts_only_while_more_than_the_margin_is_left() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let deadline = Deadline::new(start + Duration::from_secs(60), Duration::from_secs(20));
        assert!(deadline.allows_start(start));
        assert!(deadline.allows_start(start + Duration::from_secs(39)));
        assert!(
            !deadline.allows_start(start + Duration::from_secs(40)),
            "exactly the margin left"
        );
        assert!(
            !deadline.allows_start(start + Duration::from_secs(61)),
            "past the deadline"
        );
        assert_eq!(
            deadline.left(start + Duration::from_secs(61)),
            Duration::ZERO
        );
    }

    #[test]
    fn a_missing_deadline_is_none() {
        assert_eq!(
            Deadline::from_epoch_millis(0, DEFAULT_DEADLINE_MARGIN),
            None
        );
        let deadline =
            Deadline::from_epoch_millis(61_000, Duration::from_secs(1)).expect("deadline");
        assert!(deadline.allows_start(SystemTime::UNIX_EPOCH + Duration::from_secs(59)));
        assert!(!deadline.allows_start(SystemTime::UNIX_EPOCH + Duration::from_secs(60)));
    }
}
