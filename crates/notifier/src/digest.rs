//! One owner's digest for one night (docs/design.md 3.1-3.5): the findings told tonight as SNS
//! messages, with a readable body (the exact tag to add) and a JSON section.
//!
//! # Splitting and attributes
//!
//! Every digest message carries the attributes `owner`, `kind` (`digest`) and `account_id`.
//! A filter policy matches one value per attribute, so a digest is split by account first: an
//! owner whose services live in three accounts gets (at least) three messages, each about one
//! account. A part that would pass [`PART_BUDGET_BYTES`] is split again. Parts are numbered
//! across the whole digest ("part 2 of 3"), in the subject and in the body, so a reader sees
//! whether anything is missing.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::NaiveDate;
use serde_json::json;

use restart_core::ids::{AccountId, ServiceId};
use restart_core::notice::MAX_SUBJECT_CHARS;
use restart_core::notice::{Finding, FindingKind, Message};

use crate::text::{subject, subject_safe};

/// What a digest part aims at (body + subject + attributes), leaving room under SNS's limit
/// on a message (`restart_aws::sns::MAX_MESSAGE_BYTES`, 256 KiB).
pub const PART_BUDGET_BYTES: usize = 240 * 1024;

/// One owner's digest for one night: messages, one account each, each at most
/// [`PART_BUDGET_BYTES`], numbered "part i of n" across the digest when there is more than one.
/// `due` holds this owner's findings; empty gives no message.
pub fn digest(
    owner: &str,
    night: NaiveDate,
    due: &[Finding],
    tag_key: &str,
    cooldown_days: u32,
) -> Vec<Message> {
    let mut by_account: BTreeMap<&AccountId, Vec<&Finding>> = BTreeMap::new();
    for f in due {
        by_account.entry(&f.id.account).or_default().push(f);
    }
    // Pack each account's findings into chunks that fit, with a conservative reserve for the
    // headings, advice and framing; then render, and split again anything that still does not.
    let ctx = DigestContext {
        owner,
        night,
        tag_key,
        cooldown_days,
    };
    let mut chunks: Vec<(&AccountId, Vec<&Finding>)> = Vec::new();
    for (account, list) in by_account {
        let reserve = ctx.render(account, 99_999, 99_999, &[], true).size();
        let budget = PART_BUDGET_BYTES.saturating_sub(reserve);
        let mut current: Vec<&Finding> = Vec::new();
        let mut used = 0;
        for f in list {
            let cost = line(f).len() + finding_json(f).to_string().len() + 8;
            if !current.is_empty() && used + cost > budget {
                chunks.push((account, std::mem::take(&mut current)));
                used = 0;
            }
            used += cost;
            current.push(f);
        }
        if !current.is_empty() {
            chunks.push((account, current));
        }
    }
    // A rendered chunk over the budget (it should not happen) is halved until it fits.
    let mut fitted: Vec<(&AccountId, Vec<&Finding>)> = Vec::new();
    let mut stack: Vec<(&AccountId, Vec<&Finding>)> = chunks.into_iter().rev().collect();
    while let Some((account, chunk)) = stack.pop() {
        if chunk.len() > 1
            && ctx.render(account, 99_999, 99_999, &chunk, false).size() > PART_BUDGET_BYTES
        {
            let mut first = chunk;
            let second = first.split_off(first.len() / 2);
            stack.push((account, second));
            stack.push((account, first));
        } else {
            fitted.push((account, chunk));
        }
    }
    let n = fitted.len();
    fitted
        .iter()
        .enumerate()
        .map(|(i, (account, chunk))| ctx.render(account, i + 1, n, chunk, false))
        .collect()
}

struct DigestContext<'a> {
    owner: &'a str,
    night: NaiveDate,
    tag_key: &'a str,
    cooldown_days: u32,
}

fn location(id: &ServiceId) -> String {
    format!(
        "account {} / {} / cluster {} / service {}",
        id.account, id.region, id.cluster, id.service
    )
}

fn line(f: &Finding) -> String {
    let mut s = format!("  - {}", location(&f.id));
    if f.kind.is_restart_outcome() {
        let _ = write!(s, " (night {})", f.night);
    }
    if let Some(d) = &f.detail {
        let _ = write!(s, "\n    {d}");
    }
    s
}

fn finding_json(f: &Finding) -> serde_json::Value {
    json!({
        "kind": f.kind,
        "account_id": f.id.account,
        "region": f.id.region,
        "cluster": f.id.cluster,
        "service": f.id.service,
        "arn": f.arn.to_string(),
        "night": f.night,
        "detail": f.detail,
    })
}

impl DigestContext<'_> {
    /// Renders one part. `all_headings` renders every kind's heading and advice with no
    /// service (to measure the framing).
    fn render(
        &self,
        account: &AccountId,
        part: usize,
        parts: usize,
        chunk: &[&Finding],
        all_headings: bool,
    ) -> Message {
        let part_note = if parts > 1 {
            format!(" (part {part} of {parts})")
        } else {
            String::new()
        };
        let count = chunk.len();
        let services = if count == 1 { "service" } else { "services" };
        let subject = subject(&format!(
            "ECS nightly restart {}: {count} {services} need attention, account {account}{part_note}",
            self.night
        ));
        // Prefix the owner when it fits and SNS takes it as it is (printable ASCII): a shared
        // mailbox sees whose notice it is. Any other owner is named in the body and the
        // `owner` attribute only, intact.
        let owner = self.owner.trim();
        let with_owner = format!("[{owner}] {subject}");
        let subject =
            if !owner.is_empty() && subject_safe(owner) && with_owner.len() <= MAX_SUBJECT_CHARS {
                with_owner
            } else {
                subject
            };

        let mut body = String::new();
        let _ = writeln!(
            body,
            "ECS nightly restart - notice for {} - night {}",
            self.owner, self.night
        );
        let _ = writeln!(body, "Account {account}{part_note}");
        let _ = writeln!(body);
        let _ = writeln!(
            body,
            "{count} {services} in this message need your attention. Each section says what \
             was found and what to do."
        );
        let mut by_kind: BTreeMap<FindingKind, Vec<&Finding>> = BTreeMap::new();
        for f in chunk {
            by_kind.entry(f.kind).or_default().push(f);
        }
        if all_headings {
            for k in FindingKind::ALL {
                by_kind.entry(k).or_default();
            }
        }
        for (kind, list) in &by_kind {
            let _ = writeln!(body);
            let _ = writeln!(body, "== {} ({}) ==", heading(*kind), list.len());
            let _ = writeln!(body, "{}", wrap(&advice(*kind, self.tag_key), 92));
            for f in list {
                let _ = writeln!(body, "{}", line(f));
            }
        }
        let _ = writeln!(body);
        let _ = writeln!(
            body,
            "A finding is repeated for the same service at most every {} days; a new kind of \
             finding is told at once. Subscribe with a filter policy on `owner` to receive \
             only your team's notices.",
            self.cooldown_days
        );
        let _ = writeln!(body);
        let _ = writeln!(body, "--- machine-readable ---");
        let data = json!({
            "kind": "digest",
            "owner": self.owner,
            "night": self.night,
            "account_id": account,
            "part": part,
            "parts": parts,
            "findings": chunk.iter().map(|f| finding_json(f)).collect::<Vec<_>>(),
        });
        let _ = writeln!(body, "{data}");
        Message {
            subject,
            body,
            attributes: BTreeMap::from([
                ("owner".to_owned(), self.owner.to_owned()),
                ("kind".to_owned(), "digest".to_owned()),
                ("account_id".to_owned(), account.to_string()),
            ]),
        }
    }
}

/// Wraps words at `width` columns.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut col = 0;
    for word in text.split_whitespace() {
        if col > 0 && col + 1 + word.len() > width {
            out.push('\n');
            col = 0;
        } else if col > 0 {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += word.len();
    }
    out
}

/// The section heading in a digest.
fn heading(kind: FindingKind) -> &'static str {
    match kind {
        FindingKind::Untagged => "Enrollment tag missing",
        FindingKind::MalformedTag => "Enrollment tag not understood",
        FindingKind::DowntimeRisk => "Restart would risk downtime",
        FindingKind::DeploymentBlocked => "Restart cannot make progress",
        FindingKind::ControllerCodeDeploy => "Deployed by CodeDeploy",
        FindingKind::ControllerExternal => "Deployed by an external controller",
        FindingKind::NeedsLongArn => "Old-format service ARN",
        FindingKind::RestartFailed => "Restart failed",
        FindingKind::RestartRolledBack => "Restart rolled back",
        FindingKind::RestartTimedOut => "Restart timed out",
        FindingKind::AlarmFiring => "Not restarted: a deployment alarm was firing",
    }
}

/// What it means and what to do, with the exact tag where one helps.
fn advice(kind: FindingKind, tag_key: &str) -> String {
    match kind {
        FindingKind::Untagged => format!(
            "These services do not carry the tag `{tag_key}`, so the nightly restart does not \
             know whether you want them restarted. To enroll, add the tag \
             `{tag_key}=enabled`; to opt out and stop these notices, add \
             `{tag_key}=disabled`; to postpone, add `{tag_key}=skip-until:YYYY-MM-DD`."
        ),
        FindingKind::MalformedTag => format!(
            "The value of `{tag_key}` is none of: empty, `enabled`, `disabled`, \
             `skip-until:YYYY-MM-DD` or an RFC 3339 UTC time. The services are restarted as \
             if enrolled. Set the tag to `{tag_key}=enabled`, `{tag_key}=disabled` or \
             `{tag_key}=skip-until:YYYY-MM-DD`."
        ),
        FindingKind::DowntimeRisk => "With these desired count and minimum healthy percent, \
             ECS may stop every task before a replacement is healthy, so the service is not \
             restarted. Raise minimumHealthyPercent (e.g. to 100 with maximumPercent 200) or \
             run more tasks."
            .to_owned(),
        FindingKind::DeploymentBlocked => "With these desired count, minimum healthy percent and \
             maximum percent, ECS can neither start an extra task nor stop one, so a \
             deployment cannot progress and the service is not restarted. Raise \
             maximumPercent above 100 or lower minimumHealthyPercent."
            .to_owned(),
        FindingKind::ControllerCodeDeploy => format!(
            "A forced rolling deployment does not apply to services deployed by CodeDeploy \
             (blue/green): they are not restarted. Restart them through your own pipeline, \
             or add `{tag_key}=disabled` to stop these notices."
        ),
        FindingKind::ControllerExternal => format!(
            "A forced rolling deployment does not apply to services with an external \
             deployment controller: they are not restarted. Restart them with your own \
             tooling, or add `{tag_key}=disabled` to stop these notices."
        ),
        FindingKind::NeedsLongArn => "The service has an old-format ARN (without the cluster \
             name), which cannot carry tags, so it cannot be enrolled. Opt in to the long ARN \
             format (`aws ecs put-account-setting --name serviceLongArnFormat --value \
             enabled`) and re-create the service."
            .to_owned(),
        FindingKind::RestartFailed => "The forced deployment failed (rolloutState FAILED). \
             Look at the service's events and its stopped tasks; the previous tasks keep \
             running only if the deployment circuit breaker rolled back."
            .to_owned(),
        FindingKind::RestartRolledBack => "The forced deployment was rolled back: the \
             service runs its previous deployment again. New tasks did not become healthy; \
             look at the service's events and stopped tasks."
            .to_owned(),
        FindingKind::RestartTimedOut => "The forced deployment did not finish within the restart \
             timeout. It may still be rolling, or stuck; look at the service's deployments \
             and events."
            .to_owned(),
        FindingKind::AlarmFiring => "One of the CloudWatch alarms of the service's deployment \
             configuration was in ALARM when its restart was due, so it was not restarted \
             tonight (restarting into an incident adds risk). Look at the alarm named below; \
             the next night tries again."
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{any_record, assert_subject, catalog, night, record, sid, text};
    use proptest::prelude::*;
    use restart_aws::sns::{MAX_MESSAGE_BYTES, publish_batches};
    use restart_core::notice::{MAX_DETAIL_CHARS, UNOWNED, findings};
    use restart_core::outcome::NightState;
    use restart_core::tag::TagStateKind;

    #[test]
    fn a_digest_is_split_by_account_and_size_with_parts_numbered() {
        let mut f = Vec::new();
        for i in 0..5_000 {
            let account = if i % 2 == 0 {
                "111111111111"
            } else {
                "222222222222"
            };
            let id = sid(
                account,
                &format!("cluster-{i:04}"),
                &format!("service-{i:04}"),
            );
            let mut r = record(&id, "payments", NightState::TimedOut, None);
            r.detail = Some("x".repeat(200));
            f.push(r);
        }
        let f = findings(night(), &f, &[], &[]);
        let messages = digest("payments", night(), &f, "ecs_task_daily_restart", 7);
        let n = messages.len();
        assert!(n >= 4, "{n} parts");
        let mut seen = 0;
        for (i, m) in messages.iter().enumerate() {
            assert!(m.size() <= PART_BUDGET_BYTES, "part {i}: {}", m.size());
            assert!(m.subject.len() <= MAX_SUBJECT_CHARS && m.subject.is_ascii());
            let part = format!("part {} of {n}", i + 1);
            assert!(m.subject.contains(&part), "{}", m.subject);
            assert!(m.body.contains(&part));
            assert_eq!(m.attributes["owner"], "payments");
            assert_eq!(m.attributes["kind"], "digest");
            let json = m.body.split("--- machine-readable ---\n").nth(1).unwrap();
            let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
            for x in v["findings"].as_array().unwrap() {
                assert_eq!(x["account_id"], m.attributes["account_id"].as_str());
                seen += 1;
            }
        }
        assert_eq!(seen, 5_000);
        let one = digest("p", night(), &f[..1], "ecs_task_daily_restart", 7);
        assert_eq!(one.len(), 1);
        assert!(!one[0].subject.contains("part"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Digests of owners, tag values and failure details in any script: subjects SNS
        /// takes, each message within the budget, the owner intact in the `owner` attribute,
        /// the body and its JSON, and every quoted detail a whole-character prefix of what was
        /// recorded.
        #[test]
        fn digests_of_unicode_owners_and_details_are_intact_and_fit(
            owner in text(256),
            services in prop::collection::vec(
                (0usize..3, "[A-Za-z0-9_-]{1,32}", "[A-Za-z0-9_-]{1,255}", 0usize..10,
                 prop::option::of(text(1_500))),
                1..12,
            ),
            tag_values in prop::collection::vec(text(300), 0..4),
        ) {
            let accounts = ["111111111111", "222222222222", "333333333333"];
            let mut records = Vec::new();
            let mut catalog_records = Vec::new();
            for (a, cluster, service, kind, detail) in &services {
                let id = sid(accounts[*a], cluster, service);
                records.push(any_record(id, owner.clone(), *kind, detail.clone()));
            }
            for (i, v) in tag_values.iter().enumerate() {
                let id = sid(accounts[i % 3], "tags", &format!("svc-{i}"));
                catalog_records.push(catalog(&id, &owner, TagStateKind::Malformed, Some(v)));
            }
            let found = findings(night(), &records, &[], &catalog_records);
            let expected_owner = if owner.trim().is_empty() { UNOWNED } else { owner.as_str() };
            for f in &found {
                prop_assert_eq!(&f.owner, expected_owner);
                if let Some(d) = &f.detail {
                    prop_assert!(d.chars().count() <= MAX_DETAIL_CHARS + 300);
                }
            }
            for r in &records {
                if let (Some(d), Some(f)) = (&r.detail, found.iter().find(|f| f.id == r.id && f.kind.is_restart_outcome())) {
                    let got = f.detail.as_deref().unwrap();
                    let kept = got.strip_suffix('…').unwrap_or(got);
                    prop_assert!(d.starts_with(kept), "{got:?} is not a prefix of {d:?}");
                }
            }
            let messages = digest(expected_owner, night(), &found, "ecs_task_daily_restart", 7);
            prop_assert_eq!(messages.is_empty(), found.is_empty());
            let mut told = 0;
            for m in &messages {
                assert_subject(&m.subject)?;
                prop_assert!(m.size() <= PART_BUDGET_BYTES && m.size() < MAX_MESSAGE_BYTES);
                prop_assert_eq!(m.attributes["owner"].as_str(), expected_owner);
                prop_assert!(m.body.contains(expected_owner));
                let json = m.body.split("--- machine-readable ---\n").nth(1).unwrap();
                let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
                prop_assert_eq!(v["owner"].as_str(), Some(expected_owner));
                for x in v["findings"].as_array().unwrap() {
                    prop_assert_eq!(x["account_id"].as_str(), Some(m.attributes["account_id"].as_str()));
                    if let Some(d) = x["detail"].as_str() {
                        prop_assert!(found.iter().any(|f| f.detail.as_deref() == Some(d)));
                    }
                    told += 1;
                }
            }
            prop_assert_eq!(told, found.len());
            let sizes: Vec<usize> = messages.iter().map(Message::size).collect();
            let batches = publish_batches(&sizes);
            prop_assert_eq!(batches.iter().map(|r| r.len()).sum::<usize>(), sizes.len());
        }

    }

    #[test]
    fn an_owner_prefixes_the_subject_only_when_sns_takes_it_as_it_is() {
        let a = sid("111111111111", "pay", "api");
        let r = record(&a, "x", NightState::Failed, None);
        let f = findings(night(), &[r], &[], &[]);
        let subject_for = |owner: &str| digest(owner, night(), &f, "t", 7)[0].subject.clone();
        assert!(subject_for("payments").starts_with("[payments] ECS nightly restart"));
        for owner in [
            "決済チーム",
            "équipe",
            "a\nb",
            "tab\tbed",
            "x".repeat(60).as_str(),
        ] {
            let s = subject_for(owner);
            assert!(
                s.starts_with("ECS nightly restart 2026-11-22"),
                "{owner:?}: {s}"
            );
        }
    }
}
