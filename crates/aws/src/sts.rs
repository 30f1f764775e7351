//! `AccountSessions` with STS: AssumeRole into each member account, credentials cached per
//! account and renewed before they expire (role chaining caps sessions at one hour). And who
//! the caller is ([`caller_identity`], GetCallerIdentity).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, error::CredentialsError};
use aws_types::SdkConfig;
use chrono::TimeDelta;
use tokio::sync::Mutex;

use restart_core::clock::Clock;
use restart_core::ids::AccountId;
use restart_core::ports::DiscoveryError;

use super::sdk::{discovery_error, sdk_message, to_chrono};

/// Credentials are renewed when they have less than this left.
pub const RENEW_BEFORE: TimeDelta = TimeDelta::minutes(5);

/// The session length asked of STS (the role-chaining maximum).
pub const SESSION_SECONDS: i32 = 3600;

/// How the hub enters member accounts.
#[derive(Debug, Clone)]
pub struct MemberRole {
    pub partition: String,
    pub role_name: String,
    pub external_id: Option<String>,
    pub session_name: String,
}

impl MemberRole {
    pub fn arn(&self, account: &AccountId) -> String {
        format!(
            "arn:{}:iam::{}:role/{}",
            self.partition, account, self.role_name
        )
    }
}

#[derive(Debug)]
struct Cached {
    credentials: Credentials,
    expires: chrono::DateTime<chrono::Utc>,
}

/// Member-account sessions: one cache entry per account, shared by every client of that
/// account. Concurrent callers for one account wait for a single AssumeRole.
#[derive(Debug, Clone)]
pub struct AccountSessions {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sts: aws_sdk_sts::Client,
    role: MemberRole,
    clock: Arc<dyn Clock>,
    cache: std::sync::Mutex<HashMap<AccountId, Arc<Mutex<Option<Cached>>>>>,
    calls: Arc<restart_core::telemetry::ApiCalls>,
}

impl AccountSessions {
    pub fn new(
        sts: aws_sdk_sts::Client,
        role: MemberRole,
        clock: Arc<dyn Clock>,
        calls: Arc<restart_core::telemetry::ApiCalls>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                sts,
                role,
                clock,
                cache: std::sync::Mutex::new(HashMap::new()),
                calls,
            }),
        }
    }

    /// Credentials for `account`, from the cache while they have more than [`RENEW_BEFORE`]
    /// left, else from a new AssumeRole.
    pub async fn credentials(&self, account: &AccountId) -> Result<Credentials, DiscoveryError> {
        let slot = {
            let mut cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.entry(account.clone()).or_default().clone()
        };
        let mut slot = slot.lock().await;
        let now = self.inner.clock.now();
        if let Some(c) = slot.as_ref()
            && c.expires - now > RENEW_BEFORE
        {
            return Ok(c.credentials.clone());
        }
        let fresh = self.assume(account).await?;
        let credentials = fresh.credentials.clone();
        *slot = Some(fresh);
        Ok(credentials)
    }

    /// Drops `account`'s cached session, so that the next call assumes the role again (the
    /// session was answered `ExpiredToken`: revoked, or outlived on a skewed clock).
    pub async fn forget(&self, account: &AccountId) {
        let slot = {
            let cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.get(account).cloned()
        };
        if let Some(slot) = slot {
            slot.lock().await.take();
        }
    }

    async fn assume(&self, account: &AccountId) -> Result<Cached, DiscoveryError> {
        let role = &self.inner.role;
        let arn = role.arn(account);
        self.inner.calls.record("AssumeRole");
        let out = self
            .inner
            .sts
            .assume_role()
            .role_arn(&arn)
            .role_session_name(&role.session_name)
            .set_external_id(role.external_id.clone())
            .duration_seconds(SESSION_SECONDS)
            .send()
            .await
            .map_err(|e| discovery_error(&format!("AssumeRole {arn}"), &e))?;
        let c = out.credentials().ok_or_else(|| {
            DiscoveryError::Unexpected(format!("AssumeRole {arn} returned no credentials"))
        })?;
        let expires = to_chrono(c.expiration()).ok_or_else(|| {
            DiscoveryError::Unexpected(format!("AssumeRole {arn} returned a bad expiration"))
        })?;
        let credentials = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            Some(SystemTime::from(expires)),
            "member-account",
        );
        Ok(Cached {
            credentials,
            expires,
        })
    }

    /// A credentials provider for SDK clients working in `account`.
    pub fn provider(&self, account: &AccountId) -> AccountCredentials {
        AccountCredentials {
            sessions: self.clone(),
            account: account.clone(),
        }
    }
}

/// The SDK-facing credentials provider of one member account.
#[derive(Debug, Clone)]
pub struct AccountCredentials {
    sessions: AccountSessions,
    account: AccountId,
}

impl ProvideCredentials for AccountCredentials {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            self.sessions
                .credentials(&self.account)
                .await
                .map_err(CredentialsError::provider_error)
        })
    }
}

/// Who the caller is, as STS GetCallerIdentity tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// The IAM identity's ARN (a user, or an assumed role's session).
    pub arn: String,
    /// The caller's account, when STS said.
    pub account: Option<String>,
}

/// Why STS could not say who the caller is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallerIdentityError {
    /// The call failed (no credentials, invalid or expired ones, no network): the SDK's words.
    #[error("GetCallerIdentity failed: {0}")]
    Failed(String),
    /// STS answered without an ARN.
    #[error("GetCallerIdentity returned no ARN")]
    NoArn,
}

/// The caller's identity from STS GetCallerIdentity, with the hub's SDK settings.
pub async fn caller_identity(sdk: &SdkConfig) -> Result<CallerIdentity, CallerIdentityError> {
    let out = super::sts_client(sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| CallerIdentityError::Failed(sdk_message(&e)))?;
    let arn = out.arn.ok_or(CallerIdentityError::NoArn)?;
    Ok(CallerIdentity {
        arn,
        account: out.account,
    })
}
