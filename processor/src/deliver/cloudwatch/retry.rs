//! What to do when a CloudWatch Logs call has failed for good: create the missing group or stream,
//! bisect the batch (invalid events), accept (already stored), or give up (access denied, retries
//! used up, other client errors). Throttling, 5xx and timeouts were already retried with backoff by
//! [`crate::retry::with_retries`] before a failure gets here.

use crate::retry::Classified;

/// AWS code: the log group or stream does not exist.
pub const RESOURCE_NOT_FOUND: &str = "ResourceNotFoundException";
/// AWS code: the group or stream already exists (harmless when creating).
pub const RESOURCE_ALREADY_EXISTS: &str = "ResourceAlreadyExistsException";
/// AWS code: the request is malformed (e.g. unsorted or out-of-range events).
pub const INVALID_PARAMETER: &str = "InvalidParameterException";
/// AWS code: the batch was already accepted (a retried request that had succeeded).
pub const DATA_ALREADY_ACCEPTED: &str = "DataAlreadyAcceptedException";

/// The next step after a failed CloudWatch Logs call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The group or stream is missing: create it, then send again.
    CreateResources(Classified),
    /// Something in the batch is invalid: split it to find the offending events.
    Bisect(Classified),
    /// The batch is already stored: treat as accepted.
    AlreadyAccepted,
    /// Give up on this config: access denied, another error a retry cannot fix, or a retryable
    /// error whose retries are used up (then transient).
    Fail(Classified),
}

/// Decides what to do about a classified, already retried failure.
pub fn decide(failure: Classified) -> Next {
    if failure.has_code(RESOURCE_NOT_FOUND) {
        Next::CreateResources(failure)
    } else if failure.has_code(INVALID_PARAMETER) {
        Next::Bisect(failure)
    } else if failure.has_code(DATA_ALREADY_ACCEPTED) {
        Next::AlreadyAccepted
    } else {
        Next::Fail(failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logrelay_common::aws::ErrorClass;

    fn failure(class: ErrorClass, code: &str) -> Classified {
        Classified {
            operation: "logs:PutLogEvents".into(),
            class,
            code: Some(code.into()),
            message: code.into(),
            request_id: None,
            attempts: 1,
        }
    }

    #[test]
    fn each_cloudwatch_error_has_one_next_step() {
        assert!(matches!(
            decide(failure(ErrorClass::NotFound, RESOURCE_NOT_FOUND)),
            Next::CreateResources(_)
        ));
        assert!(matches!(
            decide(failure(ErrorClass::Permanent, INVALID_PARAMETER)),
            Next::Bisect(_)
        ));
        assert_eq!(
            decide(failure(ErrorClass::Permanent, DATA_ALREADY_ACCEPTED)),
            Next::AlreadyAccepted
        );
        assert!(matches!(
            decide(failure(ErrorClass::Throttling, "ThrottlingException")),
            Next::Fail(f) if f.is_retryable()
        ));
        assert!(matches!(
            decide(failure(ErrorClass::AccessDenied, "AccessDeniedException")),
            Next::Fail(_)
        ));
    }
}
