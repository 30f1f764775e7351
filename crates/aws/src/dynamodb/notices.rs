//! The notifier's items (the [`NoticeStore`] port): one partition per owner; their keys are in
//! [`keys`].
//!
//! | item | `pk` | `sk` | `kind` | TTL |
//! |---|---|---|---|---|
//! | the last notice of one kind about one service | `NOTICE#<owner>` | `SVC#<account>#<region>#<cluster>#<service>#<finding kind>` | `notice` | night told + `ttl_days` |
//! | how far one night's digest went out | `NOTICE#<owner>` | `DIGEST#<YYYY-MM-DD>` | `digest` | night + `ttl_days` |
//!
//! A notice item holds `owner`, `account`, `region`, `cluster`, `service`, `finding`
//! (the [`FindingKind`] name, e.g. `untagged`), `night` (the last night it was told) and
//! `sent_at` (RFC 3339). A digest item holds `owner`, `night`, `parts`, `sent` (N: messages
//! published so far; the digest is complete when `sent >= parts`) and `at`.
//!
//! Everything an owner's run needs is one Query on `NOTICE#<owner>`. Items are upserted with
//! BatchWriteItem (unprocessed items retried): a notice item is rewritten each night it is
//! told, a digest item after each PublishBatch request. The cooldown (`NOTICE_COOLDOWN_DAYS`)
//! is decided by the notifier from `night`; an item expires `ttl_days` after the night it was
//! last told, so a cooldown longer than the TTL ends when its item expires.
//!
//! [`FindingKind`]: restart_core::notice::FindingKind

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};

use super::DynamoStore;
use super::codec::{Item, ItemError, Reader, date, expires_at, n, name, read_service_id, s, time};
use super::errors::build_error;
use super::keys::{self, kind, schema};
use restart_core::notice::{DigestSent, NoticeSent, OwnerNotices};
use restart_core::ports::{NoticeStore, StoreError};

/// The item of a last notice.
pub fn notice_item(x: &NoticeSent, ttl_days: u32) -> Item {
    Item::from([
        (schema::PK.to_owned(), s(keys::owner_pk(&x.owner))),
        (schema::SK.to_owned(), s(keys::notice_sk(&x.id, x.kind))),
        (schema::KIND.to_owned(), s(kind::NOTICE)),
        ("owner".to_owned(), s(&x.owner)),
        ("account".to_owned(), s(x.id.account.as_str())),
        ("region".to_owned(), s(&x.id.region)),
        ("cluster".to_owned(), s(&x.id.cluster)),
        ("service".to_owned(), s(&x.id.service)),
        ("finding".to_owned(), name(&x.kind)),
        ("night".to_owned(), date(x.night)),
        ("sent_at".to_owned(), time(x.sent_at)),
        (
            schema::TTL_ATTRIBUTE.to_owned(),
            n(expires_at(x.night, ttl_days)),
        ),
    ])
}

/// The item of a digest's progress.
pub fn digest_item(d: &DigestSent, ttl_days: u32) -> Item {
    Item::from([
        (schema::PK.to_owned(), s(keys::owner_pk(&d.owner))),
        (schema::SK.to_owned(), s(keys::digest_sk(d.night))),
        (schema::KIND.to_owned(), s(kind::DIGEST)),
        ("owner".to_owned(), s(&d.owner)),
        ("night".to_owned(), date(d.night)),
        ("parts".to_owned(), n(d.parts)),
        ("sent".to_owned(), n(d.sent)),
        ("at".to_owned(), time(d.at)),
        (
            schema::TTL_ATTRIBUTE.to_owned(),
            n(expires_at(d.night, ttl_days)),
        ),
    ])
}

pub fn notice_sent(item: &Item) -> Result<NoticeSent, ItemError> {
    let r = Reader::new(item);
    r.expect_kind(kind::NOTICE)?;
    Ok(NoticeSent {
        owner: r.s("owner")?.to_owned(),
        id: read_service_id(&r)?,
        kind: r.name("finding")?,
        night: r.parse("night")?,
        sent_at: r.parse("sent_at")?,
    })
}

pub fn digest_sent(item: &Item) -> Result<DigestSent, ItemError> {
    let r = Reader::new(item);
    r.expect_kind(kind::DIGEST)?;
    Ok(DigestSent {
        owner: r.s("owner")?.to_owned(),
        night: r.parse("night")?,
        parts: r.n("parts")?,
        sent: r.n("sent")?,
        at: r.parse("at")?,
    })
}

fn put(item: Item) -> Result<WriteRequest, StoreError> {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(|e| build_error("to write a notice", e))?;
    Ok(WriteRequest::builder().put_request(put).build())
}

impl NoticeStore for DynamoStore {
    async fn owner_notices(&self, owner: &str) -> Result<OwnerNotices, StoreError> {
        let items = self.query_partition(keys::owner_pk(owner), None).await?;
        let mut out = OwnerNotices::default();
        for item in &items {
            let sk = match item.get(schema::SK) {
                Some(AttributeValue::S(sk)) => sk.as_str(),
                _ => "",
            };
            if sk.starts_with(keys::DIGEST_SK_PREFIX) {
                out.digests
                    .push(digest_sent(item).map_err(|e| self.corrupt(e))?);
            } else if sk.starts_with(keys::NOTICE_SK_PREFIX) {
                out.notices
                    .push(notice_sent(item).map_err(|e| self.corrupt(e))?);
            }
        }
        Ok(out)
    }

    async fn put_notices(&self, notices: &[NoticeSent]) -> Result<(), StoreError> {
        let requests = notices
            .iter()
            .map(|x| put(notice_item(x, self.ttl_days)))
            .collect::<Result<Vec<_>, _>>()?;
        self.write_all(requests).await
    }

    async fn put_digests(&self, digests: &[DigestSent]) -> Result<(), StoreError> {
        let requests = digests
            .iter()
            .map(|d| put(digest_item(d, self.ttl_days)))
            .collect::<Result<Vec<_>, _>>()?;
        self.write_all(requests).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use restart_core::ids::ServiceId;
    use restart_core::notice::FindingKind;

    fn id() -> ServiceId {
        ServiceId {
            account: "111111111111".parse().unwrap(),
            region: "eu-west-1".into(),
            cluster: "payments".into(),
            service: "api".into(),
        }
    }

    #[test]
    fn notices_and_digests_round_trip_under_the_owners_partition() {
        let x = NoticeSent {
            owner: "payments".into(),
            id: id(),
            kind: FindingKind::MalformedTag,
            night: "2026-11-22".parse().unwrap(),
            sent_at: "2026-11-22T00:04:00Z".parse().unwrap(),
        };
        let item = notice_item(&x, 90);
        assert_eq!(item[schema::PK], s("NOTICE#payments"));
        assert_eq!(
            item[schema::SK],
            s("SVC#111111111111#eu-west-1#payments#api#malformed_tag")
        );
        assert_eq!(item["finding"], s("malformed_tag"));
        assert_eq!(notice_sent(&item).unwrap(), x);

        let d = DigestSent {
            owner: "payments".into(),
            night: x.night,
            parts: 3,
            sent: 2,
            at: x.sent_at,
        };
        let item = digest_item(&d, 90);
        assert_eq!(item[schema::SK], s("DIGEST#2026-11-22"));
        assert_eq!(digest_sent(&item).unwrap(), d);
        assert!(notice_sent(&item).is_err());
    }
}
