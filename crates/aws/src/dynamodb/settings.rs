//! Configuration items (the [`SettingsStore`] port): settings kept in the table rather than in
//! the functions' environment, whose 4 KB limit a large fleet outgrows. Their keys are in
//! [`keys`].
//!
//! | item | `pk` | `sk` | `kind` | TTL |
//! |---|---|---|---|---|
//! | an account's default owner (docs/design.md 3.2) | `CONFIG` | `OWNER#<account>` | `account_owner` | none |
//!
//! An account owner item holds `account` (the 12 digits, as in its key) and `owner` (an
//! [`AccountOwner`]: trimmed, not empty, at most 256 characters, no control character; any
//! script). One item per account, so 10,000 accounts are 10,000 small items, far from the
//! 400 KB limit of one item; reading them is one paginated Query on `CONFIG` with
//! `begins_with(sk, "OWNER#")`. They are written with BatchWriteItem (25 a request,
//! unprocessed items retried; not atomic across requests, and writing the same owners again is
//! harmless) and deleted with DeleteItem.
//!
//! `CONFIG` is a partition of its own so that on-call's role can be allowed to write it (and
//! `CONTROL`, the kill switch) and nothing else, with `dynamodb:LeadingKeys`. The inventory and
//! the restarter's `service` mode read the owners once per invocation; where an account is
//! also in `ACCOUNT_OWNERS`, the table wins.
//!
//! An item that cannot be read (a hand edit: `owner` missing, empty or holding a line break,
//! `account` not 12 digits or not the account of its key) makes the read fail as
//! [`StoreError::Corrupt`], naming the item: `restartctl config set owner` or `unset owner`
//! repairs it.
//!
//! [`AccountOwner`]: restart_core::owner::AccountOwner

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, ReturnValue, WriteRequest};

use super::DynamoStore;
use super::codec::{Item, ItemError, Reader, s};
use super::errors::{build_error, store_error};
use super::keys::{self, kind, schema};
use restart_core::ids::AccountId;
use restart_core::owner::AccountOwner;
use restart_core::ports::{SettingsStore, StoreError};

/// The item of an account's default owner.
pub fn account_owner_item(account: &AccountId, owner: &AccountOwner) -> Item {
    Item::from([
        (schema::PK.to_owned(), s(keys::CONFIG_PK)),
        (schema::SK.to_owned(), s(keys::owner_sk(account))),
        (schema::KIND.to_owned(), s(kind::ACCOUNT_OWNER)),
        ("account".to_owned(), s(account.as_str())),
        ("owner".to_owned(), s(owner.as_str())),
    ])
}

/// An account owner item read back, checked as when it was written.
pub fn account_owner(item: &Item) -> Result<(AccountId, AccountOwner), ItemError> {
    let r = Reader::new(item);
    r.expect_kind(kind::ACCOUNT_OWNER)?;
    let account: AccountId = r.parse("account")?;
    let sk = match item.get(schema::SK) {
        Some(AttributeValue::S(sk)) => sk.as_str(),
        _ => "",
    };
    if sk != keys::owner_sk(&account) {
        return Err(r.err(
            "account",
            format!("is {account}, not the account of its key"),
        ));
    }
    let owner = r.parse("owner")?;
    Ok((account, owner))
}

fn put(item: Item) -> Result<WriteRequest, StoreError> {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(|e| build_error("to write an account owner", e))?;
    Ok(WriteRequest::builder().put_request(put).build())
}

impl SettingsStore for DynamoStore {
    async fn account_owners(&self) -> Result<BTreeMap<AccountId, AccountOwner>, StoreError> {
        let items = self
            .query_partition(keys::CONFIG_PK.to_owned(), Some(keys::OWNER_SK_PREFIX))
            .await?;
        items
            .iter()
            .map(|item| account_owner(item).map_err(|e| self.corrupt(e)))
            .collect()
    }

    async fn put_account_owners(
        &self,
        owners: &BTreeMap<AccountId, AccountOwner>,
    ) -> Result<(), StoreError> {
        let requests = owners
            .iter()
            .map(|(account, owner)| put(account_owner_item(account, owner)))
            .collect::<Result<Vec<_>, _>>()?;
        self.write_all(requests).await
    }

    async fn delete_account_owner(&self, account: &AccountId) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(schema::PK, s(keys::CONFIG_PK))
            .key(schema::SK, s(keys::owner_sk(account)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| store_error(&self.table, "DeleteItem", &e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> AccountId {
        "111111111111".parse().unwrap()
    }

    #[test]
    fn an_owner_round_trips_under_the_config_partition() {
        let owner: AccountOwner = "e\u{301}quipe 決済 🚀".parse().unwrap();
        let item = account_owner_item(&account(), &owner);
        assert_eq!(item[schema::PK], s("CONFIG"));
        assert_eq!(item[schema::SK], s("OWNER#111111111111"));
        assert_eq!(item[schema::KIND], s("account_owner"));
        assert_eq!(item["owner"], s("e\u{301}quipe 決済 🚀"));
        assert_eq!(account_owner(&item).unwrap(), (account(), owner));
    }

    #[test]
    fn hand_edited_items_are_refused_naming_the_attribute() {
        let good = account_owner_item(&account(), &"payments".parse().unwrap());
        let with = |name: &str, v: &str| {
            let mut item = good.clone();
            item.insert(name.to_owned(), s(v));
            item
        };
        for (item, field) in [
            (with("owner", "a\nb"), "owner"),
            (with("owner", "  "), "owner"),
            (with("account", "1234"), "account"),
            (with("account", "222222222222"), "account"),
            (with("kind", "pause"), "kind"),
        ] {
            let e = account_owner(&item).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert_eq!(e.sk, "OWNER#111111111111");
        }
        let mut missing = good;
        missing.remove("owner");
        assert_eq!(account_owner(&missing).unwrap_err().field, "owner");
    }
}
