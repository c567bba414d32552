//! Acting in the emulated accounts: the central account's identity (moto's default account, or an
//! operator user's keys once IAM is enforced) and sessions in the customer accounts, as SDK
//! configs for the demo's own calls and as environment variables for the processes it starts.

use anyhow::Context;
use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_smithy_types::error::display::DisplayErrorContext;
use logrelay_testkit::{TEST_REGION, static_config, test_credentials};

/// The central (operator) account: moto's default account.
pub const CENTRAL_ACCOUNT_ID: &str = logrelay_testkit::DEFAULT_ACCOUNT_ID;

/// Role assumed to administer a customer account while provisioning (moto maps an assumed
/// role's credentials into the role's account; without IAM enforcement the role need not exist).
pub const CUSTOMER_ADMIN_ROLE: &str = "logrelay-demo-admin";

/// Read-only role the demo creates in each customer account to inspect what was delivered (the
/// tenant's view of its own logs).
pub const INSPECTOR_ROLE: &str = "logrelay-demo-inspector";

/// Session name of the demo's own sessions.
const SESSION_NAME: &str = "logrelay-demo";

/// One identity: keys (and a session token for assumed roles) against one endpoint.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Emulator endpoint.
    pub endpoint: String,
    /// Keys.
    pub credentials: Credentials,
}

impl Identity {
    /// moto's default identity in the central account (only valid while IAM is not enforced).
    pub fn default_central(endpoint: &str) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            credentials: test_credentials(),
        }
    }

    /// An SDK config acting as this identity.
    pub async fn config(&self) -> SdkConfig {
        static_config(&self.endpoint, self.credentials.clone()).await
    }

    /// The environment a child process needs to act as this identity against `endpoint` (which
    /// may be a counting proxy in front of the emulator).
    pub fn env(&self, endpoint: &str) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("AWS_ENDPOINT_URL", endpoint.to_owned()),
            ("AWS_REGION", TEST_REGION.to_owned()),
            (
                "AWS_ACCESS_KEY_ID",
                self.credentials.access_key_id().to_owned(),
            ),
            (
                "AWS_SECRET_ACCESS_KEY",
                self.credentials.secret_access_key().to_owned(),
            ),
        ];
        if let Some(token) = self.credentials.session_token() {
            env.push(("AWS_SESSION_TOKEN", token.to_owned()));
        }
        env
    }

    /// Assumes `role_arn` (one hour) and returns the session's identity.
    pub async fn assume(&self, role_arn: &str) -> anyhow::Result<Identity> {
        let sts = aws_sdk_sts::Client::new(&self.config().await);
        let output = sts
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(SESSION_NAME)
            .duration_seconds(3600)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("sts:AssumeRole {role_arn}: {}", DisplayErrorContext(&e))
            })?;
        let keys = output
            .credentials
            .with_context(|| format!("AssumeRole {role_arn} returned no credentials"))?;
        Ok(Identity {
            endpoint: self.endpoint.clone(),
            credentials: Credentials::from_keys(
                keys.access_key_id,
                keys.secret_access_key,
                Some(keys.session_token),
            ),
        })
    }

    /// A session acting in `account_id` through `role_name` there.
    pub async fn in_account(&self, account_id: &str, role_name: &str) -> anyhow::Result<Identity> {
        self.assume(&format!("arn:aws:iam::{account_id}:role/{role_name}"))
            .await
    }
}
