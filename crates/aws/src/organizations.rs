//! The member accounts from AWS Organizations (`ACCOUNTS_SOURCE=organizations`): the ACTIVE
//! accounts of the whole organization (ListAccounts), or of the configured roots and OUs and
//! every OU below them (ListAccountsForParent, ListOrganizationalUnitsForParent), each listed
//! once.
//!
//! Organizations answers only its management account and delegated administrators: the hub
//! lists with its own credentials when it is one of them, else as `ORGANIZATIONS_ROLE_ARN` (a
//! role of the management account, assumed through [`AccountSessions`], so its session is cached
//! and renewed like a member account's).
//!
//! An account counts when it is ACTIVE: by its `State` when the answer has one (the field that
//! replaces `Status`, which AWS retires in September 2026), else by its `Status`. The management
//! account never counts (DescribeOrganization names it): AWS advises against workloads there,
//! and the member-role StackSet cannot deploy to it, so listing it would make it unreachable
//! every night.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_organizations::config::IdentityCache;
use aws_sdk_organizations::types::{Account, AccountState, AccountStatus};
use aws_smithy_types::retry::RetryConfig;
use aws_types::SdkConfig;

use restart_core::clock::Clock;
use restart_core::config::{OrgParent, RoleArn};
use restart_core::ids::AccountId;
use restart_core::ports::{AccountDirectory, DiscoveryError};
use restart_core::telemetry::ApiCalls;

use super::sdk::{discovery_error, error_code, sdk_message};
use super::sts::{AccountSessions, MemberRole};

/// The largest page Organizations returns (MaxResults 1..=20).
pub const PAGE_LIMIT: i32 = 20;

/// The session name the hub uses in the management account.
pub const SESSION_NAME: &str = "ecs-nightly-restart-organizations";

/// The role the listing runs as: its sessions and its account.
#[derive(Debug, Clone)]
struct Listing {
    sessions: AccountSessions,
    account: AccountId,
    arn: String,
}

/// [`AccountDirectory`] over AWS Organizations.
#[derive(Debug, Clone)]
pub struct OrganizationAccounts {
    client: aws_sdk_organizations::Client,
    parents: Vec<OrgParent>,
    role: Option<Listing>,
    calls: Arc<ApiCalls>,
}

/// Whether Organizations says the account is ACTIVE: `State` when given, else `Status`.
pub fn is_active(account: &Account) -> bool {
    match (account.state(), account.status()) {
        (Some(state), _) => *state == AccountState::Active,
        (None, Some(status)) => *status == AccountStatus::Active,
        (None, None) => false,
    }
}

impl OrganizationAccounts {
    /// The directory of `parents` (empty: the whole organization), listed as `role` when given,
    /// else with the hub's own credentials. Built from the hub's SDK settings (`Timeouts::HUB`),
    /// with patient retries: Organizations throttles at a few calls a second per account.
    pub fn new(
        sdk: &SdkConfig,
        parents: Vec<OrgParent>,
        role: Option<&RoleArn>,
        clock: Arc<dyn Clock>,
        calls: Arc<ApiCalls>,
    ) -> Self {
        let mut config = aws_sdk_organizations::config::Builder::from(&super::hub(sdk))
            .interceptor(crate::xray::XrayCalls::hub())
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(8)
                    .with_max_backoff(Duration::from_secs(20)),
            );
        let role = role.map(|role| {
            let sessions = AccountSessions::new(
                super::sts_client(sdk),
                MemberRole {
                    partition: role.partition.clone(),
                    role_name: role.name.clone(),
                    external_id: None,
                    session_name: SESSION_NAME.into(),
                },
                clock,
                calls.clone(),
            );
            Listing {
                sessions,
                account: role.account.clone(),
                arn: role.to_string(),
            }
        });
        if let Some(listing) = &role {
            config = config
                .credentials_provider(listing.sessions.provider(&listing.account))
                // The sessions cache the role's credentials already.
                .identity_cache(IdentityCache::no_cache());
        }
        Self {
            client: aws_sdk_organizations::Client::from_conf(config.build()),
            parents,
            role,
            calls,
        }
    }

    /// Every account of the organization, page by page.
    async fn whole_organization(
        &self,
        found: &mut BTreeSet<AccountId>,
    ) -> Result<(), DiscoveryError> {
        let mut token = None;
        loop {
            self.calls.record("ListAccounts");
            let page = self
                .client
                .list_accounts()
                .max_results(PAGE_LIMIT)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| discovery_error("ListAccounts", &e))?;
            keep_active(page.accounts(), found)?;
            token = page.next_token;
            if token.is_none() {
                return Ok(());
            }
        }
    }

    /// The accounts directly under `parent`, page by page.
    async fn accounts_of(
        &self,
        parent: &str,
        configured: bool,
        found: &mut BTreeSet<AccountId>,
    ) -> Result<(), DiscoveryError> {
        let mut token = None;
        loop {
            self.calls.record("ListAccountsForParent");
            let page = self
                .client
                .list_accounts_for_parent()
                .parent_id(parent)
                .max_results(PAGE_LIMIT)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| parent_error("ListAccountsForParent", parent, configured, &e))?;
            keep_active(page.accounts(), found)?;
            token = page.next_token;
            if token.is_none() {
                return Ok(());
            }
        }
    }

    /// `found` without the organization's management account, sorted.
    async fn without_management(
        &self,
        mut found: BTreeSet<AccountId>,
    ) -> Result<Vec<AccountId>, DiscoveryError> {
        self.calls.record("DescribeOrganization");
        let org = self
            .client
            .describe_organization()
            .send()
            .await
            .map_err(|e| discovery_error("DescribeOrganization", &e))?;
        if let Some(id) = org.organization().and_then(|o| o.master_account_id()) {
            found.retain(|a| a.as_str() != id);
        }
        Ok(found.into_iter().collect())
    }

    /// The OUs directly under `parent`, page by page.
    async fn units_of(
        &self,
        parent: &str,
        configured: bool,
    ) -> Result<Vec<String>, DiscoveryError> {
        let mut units = Vec::new();
        let mut token = None;
        loop {
            self.calls.record("ListOrganizationalUnitsForParent");
            let page = self
                .client
                .list_organizational_units_for_parent()
                .parent_id(parent)
                .max_results(PAGE_LIMIT)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| {
                    parent_error("ListOrganizationalUnitsForParent", parent, configured, &e)
                })?;
            units.extend(
                page.organizational_units()
                    .iter()
                    .filter_map(|u| u.id().map(str::to_owned)),
            );
            token = page.next_token;
            if token.is_none() {
                return Ok(units);
            }
        }
    }
}

/// The ACTIVE accounts of a page added to `found`.
fn keep_active(
    accounts: &[Account],
    found: &mut BTreeSet<AccountId>,
) -> Result<(), DiscoveryError> {
    for a in accounts.iter().filter(|a| is_active(a)) {
        let id = a.id().unwrap_or_default();
        let id = id.parse::<AccountId>().map_err(|e| {
            DiscoveryError::Unexpected(format!("Organizations listed an account: {e}"))
        })?;
        found.insert(id);
    }
    Ok(())
}

/// An error of a call on `parent`: a configured parent the organization does not have is said
/// in the configuration's words; everything else goes through the one classification.
fn parent_error<E>(
    what: &str,
    parent: &str,
    configured: bool,
    err: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> DiscoveryError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    if configured && error_code(err) == Some("ParentNotFoundException") {
        return DiscoveryError::Unexpected(format!(
            "ORGANIZATION_UNITS names {parent}, which is not a root or OU of the organization \
             ({what}: {})",
            sdk_message(err)
        ));
    }
    discovery_error(&format!("{what} {parent}"), err)
}

impl AccountDirectory for OrganizationAccounts {
    /// The ACTIVE accounts of the organization, or of the configured parents and every OU
    /// below them, sorted, each once.
    async fn accounts(&self) -> Result<Vec<AccountId>, DiscoveryError> {
        if let Some(listing) = &self.role {
            // AssumeRole first, so that a refused role is an error of its own (AccessDenied)
            // rather than a credentials failure inside the first listing.
            listing
                .sessions
                .credentials(&listing.account)
                .await
                .map_err(|e| match e {
                    DiscoveryError::AccessDenied(m) => DiscoveryError::AccessDenied(format!(
                        "ORGANIZATIONS_ROLE_ARN {}: {m}",
                        listing.arn
                    )),
                    other => other,
                })?;
        }
        let mut found = BTreeSet::new();
        if self.parents.is_empty() {
            self.whole_organization(&mut found).await?;
            return self.without_management(found).await;
        }
        let configured: HashSet<&str> = self.parents.iter().map(OrgParent::as_str).collect();
        let mut queue: VecDeque<String> =
            self.parents.iter().map(|p| p.as_str().to_owned()).collect();
        let mut seen = HashSet::new();
        while let Some(parent) = queue.pop_front() {
            if !seen.insert(parent.clone()) {
                continue;
            }
            let is_configured = configured.contains(parent.as_str());
            self.accounts_of(&parent, is_configured, &mut found).await?;
            queue.extend(self.units_of(&parent, is_configured).await?);
        }
        self.without_management(found).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(state: Option<AccountState>, status: Option<AccountStatus>) -> Account {
        Account::builder()
            .id("111111111111")
            .set_state(state)
            .set_status(status)
            .build()
    }

    #[test]
    fn state_wins_over_status() {
        assert!(is_active(&account(None, Some(AccountStatus::Active))));
        assert!(!is_active(&account(None, Some(AccountStatus::Suspended))));
        assert!(is_active(&account(Some(AccountState::Active), None)));
        assert!(!is_active(&account(
            Some(AccountState::Closed),
            Some(AccountStatus::Active)
        )));
        assert!(!is_active(&account(
            Some(AccountState::PendingActivation),
            None
        )));
        assert!(!is_active(&account(None, None)));
    }

    #[test]
    fn accounts_are_kept_once_and_checked() {
        let mut found = BTreeSet::new();
        let a = account(None, Some(AccountStatus::Active));
        keep_active(&[a.clone(), a], &mut found).unwrap();
        assert_eq!(found.len(), 1);
        let bad = Account::builder()
            .id("12")
            .status(AccountStatus::Active)
            .build();
        assert!(matches!(
            keep_active(&[bad], &mut found),
            Err(DiscoveryError::Unexpected(_))
        ));
    }
}
