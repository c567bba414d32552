//! What becomes of one queue message once the handler is done with it, the same for every queue
//! intake (Lambda's SQS event source and the SQS poller): its [`Disposition`] is logged and counted,
//! and a dead-lettered message is forwarded to the DLQ when one is configured.

use crate::intake::dead_letter::DeadLetterQueue;
use crate::intake::message::Disposition;
use crate::telemetry::InternalEvent;
use crate::telemetry::intake::{
    MessageAcknowledged, MessageDeadLettered, MessageRetried, QueueCallFailed,
};

/// One message as the queue delivered it.
#[derive(Debug, Clone, Copy)]
pub struct QueuedMessage<'a> {
    /// The message id for logs and metrics (`""` when the queue gave none).
    pub id: &'a str,
    /// The message id forwarded to the DLQ, when the queue gave one.
    pub source_id: Option<&'a str>,
    /// The message body, forwarded unchanged to the DLQ.
    pub body: &'a str,
}

/// Settles `message` by `disposition`: true when the message is done with (acknowledged, or
/// dead-lettered: forwarded to `dlq`, or dropped when there is none), false when it must be
/// delivered again (a retry, or a DLQ that could not take it).
pub async fn settle(
    disposition: &Disposition,
    dlq: Option<&DeadLetterQueue>,
    message: QueuedMessage<'_>,
) -> bool {
    let id = message.id;
    match disposition {
        Disposition::Acknowledge => {
            MessageAcknowledged { message_id: id }.emit();
            true
        }
        Disposition::Retry { reason } => {
            MessageRetried {
                message_id: id,
                reason,
            }
            .emit();
            false
        }
        Disposition::DeadLetter(cause) => {
            let forwarded = match dlq {
                None => false,
                Some(queue) => match queue.forward(message.body, message.source_id, cause).await {
                    Ok(()) => true,
                    Err(error) => {
                        QueueCallFailed {
                            operation: "dlq_send",
                            message_id: Some(id),
                            error: &error,
                        }
                        .emit();
                        return false;
                    }
                },
            };
            MessageDeadLettered {
                message_id: id,
                reason: cause.reason,
                error: &cause.error,
                forwarded,
            }
            .emit();
            true
        }
    }
}
