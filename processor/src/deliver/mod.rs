//! Delivery into tenants' accounts: [`cloudwatch`] (PutLogEvents under every limit) and [`s3`]
//! (CopyObject), with [`TenantPermits`] keeping one tenant from using every connection. Both retry
//! through [`crate::retry`].

pub mod cloudwatch;
#[cfg(test)]
pub(crate) mod fake_http;
pub mod s3;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Default bound on PutLogEvents requests in flight per tenant, over all its objects (CloudWatch
/// allows 5,000 PutLogEvents per second per account; this keeps one busy tenant from taking every
/// connection while others wait).
pub const DEFAULT_MAX_PARALLEL_PUTS_PER_TENANT: usize = 8;

/// Per-tenant bounds on parallel requests.
#[derive(Debug, Clone)]
pub struct TenantPermits {
    per_tenant: usize,
    tenants: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl TenantPermits {
    /// At most `per_tenant` requests in flight per tenant.
    pub fn new(per_tenant: usize) -> Self {
        Self {
            per_tenant: per_tenant.max(1),
            tenants: Arc::default(),
        }
    }

    /// The tenant's semaphore (only configured tenants reach delivery, so the map stays small).
    pub fn for_tenant(&self, tenant_id: &str) -> Arc<Semaphore> {
        let mut tenants = self
            .tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tenants
            .entry(tenant_id.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_get_separate_bounded_permits() {
        let permits = TenantPermits::new(2);
        let a = permits.for_tenant("a");
        let _held = (a.try_acquire().ok(), a.try_acquire().ok());
        assert!(a.try_acquire().is_err(), "third request of tenant a waits");
        assert!(
            permits.for_tenant("b").try_acquire().is_ok(),
            "tenant b is unaffected"
        );
        assert!(Arc::ptr_eq(&a, &permits.for_tenant("a")));
    }
}
