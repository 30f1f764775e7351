//! Notices (docs/design.md 3.1-3.5): what service owners are told, and what on-call reads about a night.
//!
//! Pure functions, no I/O:
//! - [`findings`]: the owner-actionable facts of a night, from its records and the catalog;
//! - [`due`]: which of them are told tonight, under the per-owner, per-service, per-kind
//!   cooldown (`NOTICE_COOLDOWN_DAYS`);
//! - [`digest`]: one owner's digest as SNS messages, one account per message, each under
//!   [`MAX_MESSAGE_BYTES`], numbered "part i of n";
//! - [`publish_batches`]: messages grouped into PublishBatch requests (at most
//!   [`MAX_BATCH_ENTRIES`] entries and [`MAX_MESSAGE_BYTES`] together);
//! - [`NightSummary::build`] and [`NightSummary::message`]: the night's summary for the ops
//!   topic.
//!
//! # Splitting and attributes
//!
//! Every digest message carries the attributes `owner`, `kind` (`digest`) and `account_id`.
//! A filter policy matches one value per attribute, so a digest is split by account first: an
//! owner whose services live in three accounts gets (at least) three messages, each about one
//! account. A part that would pass [`PART_BUDGET_BYTES`] is split again. Parts are numbered
//! across the whole digest ("part 2 of 3"), in the subject and in the body, so a reader sees
//! whether anything is missing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::ops::Range;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::catalog::{CatalogRecord, Unreachable};
use crate::eligibility::SkipReason;
use crate::ids::{AccountId, ServiceArn, ServiceId};
use crate::night::{Halt, NightRecord, NightStatus, Pause, PlanSummary};
use crate::outcome::NightState;
use crate::ports::InventoryRun;
use crate::tag::TagStateKind;

/// The most an SNS message may weigh: body and attributes (256 KiB). PublishBatch takes at
/// most this much in all its entries together.
pub const MAX_MESSAGE_BYTES: usize = 262_144;
/// The most entries PublishBatch takes.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// The longest subject SNS accepts: "ASCII text that begins with a letter, number, or
/// punctuation mark; must not include line breaks or control characters; and must be less
/// than 100 characters long" (Publish API), so 99 at most.
pub const MAX_SUBJECT_CHARS: usize = 99;
/// What a digest part aims at (body + subject + attributes), leaving room under the limit.
pub const PART_BUDGET_BYTES: usize = 240 * 1024;
/// The owner that services without one are routed to (docs/design.md 3.2).
pub const UNOWNED: &str = "unowned";
/// The longest `detail` quoted in a notice; longer ones are cut.
const MAX_DETAIL_CHARS: usize = 1_000;

/// What an owner is told about a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The enrollment tag is absent.
    Untagged,
    /// The enrollment tag holds a value the contract does not know (treated as enrolled).
    MalformedTag,
    /// ceil(desired × minimumHealthyPercent / 100) = 0.
    DowntimeRisk,
    /// ECS can neither start nor stop a task with these percentages.
    DeploymentBlocked,
    ControllerCodeDeploy,
    ControllerExternal,
    /// An old-format ARN: the service cannot carry tags.
    NeedsLongArn,
    /// The restart's deployment failed (rolloutState FAILED).
    RestartFailed,
    /// The restart's deployment was rolled back (circuit breaker).
    RestartRolledBack,
    /// The restart did not finish within its timeout.
    RestartTimedOut,
}

impl FindingKind {
    pub const ALL: [FindingKind; 10] = [
        Self::Untagged,
        Self::MalformedTag,
        Self::DowntimeRisk,
        Self::DeploymentBlocked,
        Self::ControllerCodeDeploy,
        Self::ControllerExternal,
        Self::NeedsLongArn,
        Self::RestartFailed,
        Self::RestartRolledBack,
        Self::RestartTimedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Untagged => "untagged",
            Self::MalformedTag => "malformed_tag",
            Self::DowntimeRisk => "downtime_risk",
            Self::DeploymentBlocked => "deployment_blocked",
            Self::ControllerCodeDeploy => "controller_code_deploy",
            Self::ControllerExternal => "controller_external",
            Self::NeedsLongArn => "needs_long_arn",
            Self::RestartFailed => "restart_failed",
            Self::RestartRolledBack => "restart_rolled_back",
            Self::RestartTimedOut => "restart_timed_out",
        }
    }

    /// The finding an owner-actionable skip reason makes.
    pub fn from_skip(reason: SkipReason) -> Option<Self> {
        Some(match reason {
            SkipReason::Untagged => Self::Untagged,
            SkipReason::DowntimeRisk => Self::DowntimeRisk,
            SkipReason::DeploymentBlocked => Self::DeploymentBlocked,
            SkipReason::ControllerCodeDeploy => Self::ControllerCodeDeploy,
            SkipReason::ControllerExternal => Self::ControllerExternal,
            SkipReason::NeedsLongArn => Self::NeedsLongArn,
            _ => return None,
        })
    }

    /// The finding a restart outcome makes.
    pub fn from_outcome(state: NightState) -> Option<Self> {
        match state {
            NightState::Failed => Some(Self::RestartFailed),
            NightState::RolledBack => Some(Self::RestartRolledBack),
            NightState::TimedOut => Some(Self::RestartTimedOut),
            _ => None,
        }
    }

    /// A restart that ran and did not succeed (rather than a reason it was not restarted).
    pub fn is_restart_outcome(self) -> bool {
        matches!(
            self,
            Self::RestartFailed | Self::RestartRolledBack | Self::RestartTimedOut
        )
    }

    /// The section heading in a digest.
    pub fn heading(self) -> &'static str {
        match self {
            Self::Untagged => "Enrollment tag missing",
            Self::MalformedTag => "Enrollment tag not understood",
            Self::DowntimeRisk => "Restart would risk downtime",
            Self::DeploymentBlocked => "Restart cannot make progress",
            Self::ControllerCodeDeploy => "Deployed by CodeDeploy",
            Self::ControllerExternal => "Deployed by an external controller",
            Self::NeedsLongArn => "Old-format service ARN",
            Self::RestartFailed => "Restart failed",
            Self::RestartRolledBack => "Restart rolled back",
            Self::RestartTimedOut => "Restart timed out",
        }
    }

    /// What it means and what to do, with the exact tag where one helps.
    pub fn advice(self, tag_key: &str) -> String {
        match self {
            Self::Untagged => format!(
                "These services do not carry the tag `{tag_key}`, so the nightly restart does not \
                 know whether you want them restarted. To enroll, add the tag \
                 `{tag_key}=enabled`; to opt out and stop these notices, add \
                 `{tag_key}=disabled`; to postpone, add `{tag_key}=skip-until:YYYY-MM-DD`."
            ),
            Self::MalformedTag => format!(
                "The value of `{tag_key}` is none of: empty, `enabled`, `disabled`, \
                 `skip-until:YYYY-MM-DD` or an RFC 3339 UTC time. The services are restarted as \
                 if enrolled. Set the tag to `{tag_key}=enabled`, `{tag_key}=disabled` or \
                 `{tag_key}=skip-until:YYYY-MM-DD`."
            ),
            Self::DowntimeRisk => "With these desired count and minimum healthy percent, ECS may \
                 stop every task before a replacement is healthy, so the service is not \
                 restarted. Raise minimumHealthyPercent (e.g. to 100 with maximumPercent 200) or \
                 run more tasks."
                .to_owned(),
            Self::DeploymentBlocked => "With these desired count, minimum healthy percent and \
                 maximum percent, ECS can neither start an extra task nor stop one, so a \
                 deployment cannot progress and the service is not restarted. Raise \
                 maximumPercent above 100 or lower minimumHealthyPercent."
                .to_owned(),
            Self::ControllerCodeDeploy => format!(
                "A forced rolling deployment does not apply to services deployed by CodeDeploy \
                 (blue/green): they are not restarted. Restart them through your own pipeline, \
                 or add `{tag_key}=disabled` to stop these notices."
            ),
            Self::ControllerExternal => format!(
                "A forced rolling deployment does not apply to services with an external \
                 deployment controller: they are not restarted. Restart them with your own \
                 tooling, or add `{tag_key}=disabled` to stop these notices."
            ),
            Self::NeedsLongArn => "The service has an old-format ARN (without the cluster name), \
                 which cannot carry tags, so it cannot be enrolled. Opt in to the long ARN \
                 format (`aws ecs put-account-setting --name serviceLongArnFormat --value \
                 enabled`) and re-create the service."
                .to_owned(),
            Self::RestartFailed => "The forced deployment failed (rolloutState FAILED). Look at \
                 the service's events and its stopped tasks; the previous tasks keep running \
                 only if the deployment circuit breaker rolled back."
                .to_owned(),
            Self::RestartRolledBack => "The forced deployment was rolled back: the service runs \
                 its previous deployment again. New tasks did not become healthy; look at the \
                 service's events and stopped tasks."
                .to_owned(),
            Self::RestartTimedOut => "The forced deployment did not finish within the restart \
                 timeout. It may still be rolling, or stuck; look at the service's deployments \
                 and events."
                .to_owned(),
        }
    }
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing an owner is told about one service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Finding {
    pub owner: String,
    pub id: ServiceId,
    pub kind: FindingKind,
    pub arn: ServiceArn,
    /// The night the fact was recorded.
    pub night: NaiveDate,
    /// Why a restart failed (restart outcomes), or the tag's value (malformed tag).
    pub detail: Option<String>,
}

fn owner_of(owner: &str) -> String {
    if owner.trim().is_empty() {
        UNOWNED.to_owned()
    } else {
        owner.to_owned()
    }
}

/// `s` in double quotes, for a value quoted in a message: only `"`, `\` and control
/// characters (line breaks included) are escaped; every other character, accents, combining
/// marks, CJK and emoji included, stays as written (unlike `{:?}`, which escapes combining
/// marks and other characters it deems unprintable).
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `s` cut to `max` characters (never inside one), with `…` when something was cut.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

/// The owner-actionable findings of `night`: skipped records whose reason the owner can act
/// on, restart outcomes that did not succeed (of `records`, tonight, and of `previous`, last
/// night's records, whose outcomes came in after last night's digest), and catalog records seen
/// tonight whose tag is malformed, or absent on a service that was not skipped (restarted
/// anyway with `UNTAGGED_POLICY=restart`: still told), or whose discovery judged an
/// owner-actionable risk (told even when `RISK_POLICY=restart` restarts it).
///
/// One finding per service and kind, sorted by owner, service, kind.
pub fn findings(
    night: NaiveDate,
    records: &[NightRecord],
    previous: &[NightRecord],
    catalog: &[CatalogRecord],
) -> Vec<Finding> {
    let mut out: BTreeMap<(String, ServiceId, FindingKind), Finding> = BTreeMap::new();
    let mut add = |f: Finding| {
        out.entry((f.owner.clone(), f.id.clone(), f.kind))
            .or_insert(f);
    };
    for r in records.iter().chain(previous) {
        let kind = match r.state {
            NightState::Skipped if r.night == night => {
                r.skip_reason.and_then(FindingKind::from_skip)
            }
            state => FindingKind::from_outcome(state),
        };
        if let Some(kind) = kind {
            add(Finding {
                owner: owner_of(&r.owner),
                id: r.id.clone(),
                kind,
                arn: r.arn.clone(),
                night: r.night,
                detail: r.detail.as_deref().map(|d| cut(d, MAX_DETAIL_CHARS)),
            });
        }
    }
    // A service skipped tonight was told by its record; a missing tag on it adds nothing (it
    // may not even be taggable).
    let skipped: BTreeSet<&ServiceId> = records
        .iter()
        .filter(|r| r.state == NightState::Skipped)
        .map(|r| &r.id)
        .collect();
    for c in catalog {
        if c.last_seen != night || c.gone_since.is_some() {
            continue;
        }
        let mut kinds = Vec::new();
        match c.tag_state {
            TagStateKind::Malformed => kinds.push(FindingKind::MalformedTag),
            TagStateKind::Untagged if !skipped.contains(&c.id) => {
                kinds.push(FindingKind::Untagged);
            }
            _ => {}
        }
        if let Some(kind) = c
            .skip_reason
            .filter(|r| r.owner_actionable())
            .and_then(FindingKind::from_skip)
        {
            kinds.push(kind);
        }
        for kind in kinds {
            add(Finding {
                owner: owner_of(&c.owner),
                id: c.id.clone(),
                kind,
                arn: c.arn.clone(),
                night,
                detail: (kind == FindingKind::MalformedTag)
                    .then(|| c.tag_value.as_deref().map(|v| cut(v, 256)))
                    .flatten()
                    .map(|v| format!("tag value {}", quoted(&v))),
            });
        }
    }
    out.into_values().collect()
}

/// A notice once sent: the last night `owner` was told `kind` about `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeSent {
    pub owner: String,
    pub id: ServiceId,
    pub kind: FindingKind,
    pub night: NaiveDate,
    pub sent_at: DateTime<Utc>,
}

/// How far one owner's digest of one night went out: `sent` of `parts` messages. Complete
/// when `sent >= parts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestSent {
    pub owner: String,
    pub night: NaiveDate,
    pub parts: u32,
    pub sent: u32,
    pub at: DateTime<Utc>,
}

impl DigestSent {
    pub fn complete(&self) -> bool {
        self.sent >= self.parts
    }
}

/// What the table knows of one owner's notices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerNotices {
    pub notices: Vec<NoticeSent>,
    pub digests: Vec<DigestSent>,
}

impl OwnerNotices {
    /// The digest of `night`, if any part of it went out.
    pub fn digest(&self, night: NaiveDate) -> Option<&DigestSent> {
        self.digests.iter().find(|d| d.night == night)
    }

    /// The last night each (service, kind) was told.
    pub fn last_told(&self) -> BTreeMap<(ServiceId, FindingKind), NaiveDate> {
        let mut out = BTreeMap::new();
        for n in &self.notices {
            let e = out.entry((n.id.clone(), n.kind)).or_insert(n.night);
            *e = (*e).max(n.night);
        }
        out
    }
}

/// Whether a finding is told on `night`: never told before, told this same night (a rerun
/// rebuilds the same digest), or last told at least `cooldown_days` nights ago. A new kind for
/// a service is never held back by another kind's notice.
pub fn is_due(last: Option<NaiveDate>, night: NaiveDate, cooldown_days: u32) -> bool {
    match last {
        None => true,
        Some(last) if last == night => true,
        Some(last) => (night - last).num_days() >= i64::from(cooldown_days),
    }
}

/// The findings told tonight, and how many the cooldown held back.
pub fn due(
    findings: &[Finding],
    last: &BTreeMap<(ServiceId, FindingKind), NaiveDate>,
    night: NaiveDate,
    cooldown_days: u32,
) -> (Vec<Finding>, usize) {
    let (due, held): (Vec<Finding>, Vec<Finding>) = findings.iter().cloned().partition(|f| {
        is_due(
            last.get(&(f.id.clone(), f.kind)).copied(),
            night,
            cooldown_days,
        )
    });
    (due, held.len())
}

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub subject: String,
    pub body: String,
    /// SNS message attributes, all of type String.
    pub attributes: BTreeMap<String, String>,
}

impl Message {
    /// What SNS counts against the 256 KiB limit: the body and every attribute's name, type
    /// and value; the subject is counted too, to be safe.
    pub fn size(&self) -> usize {
        self.body.len()
            + self.subject.len()
            + self
                .attributes
                .iter()
                .map(|(k, v)| k.len() + "String".len() + v.len())
                .sum::<usize>()
    }
}

/// Whether `s` can go into a subject as it is: printable ASCII and spaces only.
fn subject_safe(s: &str) -> bool {
    s.chars().all(|c| c == ' ' || c.is_ascii_graphic())
}

/// Makes a subject SNS and email clients accept: printable ASCII only (anything else, line
/// breaks and other control characters included, becomes `?`), beginning with a letter, number
/// or punctuation mark (leading spaces dropped), at most [`MAX_SUBJECT_CHARS`] characters
/// (longer ones end with `...`).
pub fn subject(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect();
    let clean = clean.trim_start();
    if clean.len() <= MAX_SUBJECT_CHARS {
        clean.to_owned()
    } else {
        // Counted in characters, though `clean` is ASCII (one byte each).
        let head: String = clean.chars().take(MAX_SUBJECT_CHARS - 3).collect();
        format!("{head}...")
    }
}

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
            let _ = writeln!(body, "== {} ({}) ==", kind.heading(), list.len());
            let _ = writeln!(body, "{}", wrap(&kind.advice(self.tag_key), 92));
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

/// Groups messages (given by their [`Message::size`]) into PublishBatch requests: in order, at
/// most [`MAX_BATCH_ENTRIES`] a request and at most [`MAX_MESSAGE_BYTES`] in all.
pub fn publish_batches(sizes: &[usize]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut total = 0;
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && (i - start == MAX_BATCH_ENTRIES || total + size > MAX_MESSAGE_BYTES) {
            out.push(start..i);
            start = i;
            total = 0;
        }
        total += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// The most failures listed in a summary; the rest are counted.
pub const SUMMARY_FAILURES: usize = 20;
/// The slowest restarts listed in a summary.
pub const SUMMARY_SLOWEST: usize = 5;
/// The most opted-out services and unreachable targets listed in a summary.
pub const SUMMARY_LIST: usize = 20;

/// A restart in the summary's lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryRestart {
    pub id: ServiceId,
    pub owner: String,
    pub state: NightState,
    pub duration_seconds: Option<u32>,
    pub detail: Option<String>,
}

/// How a night went, for on-call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NightSummary {
    pub night: NaiveDate,
    /// The plan's summary; `None`: no complete plan was written.
    pub plan: Option<PlanSummary>,
    /// Services with a record tonight.
    pub services: u64,
    /// Records per state (counted from the records).
    pub by_state: BTreeMap<NightState, u64>,
    /// Skipped records per reason.
    pub by_skip_reason: BTreeMap<SkipReason, u64>,
    /// The night's counters (moves; a forced restart counts twice).
    pub counters: BTreeMap<NightState, u64>,
    pub first_start: Option<DateTime<Utc>>,
    pub last_finish: Option<DateTime<Utc>>,
    pub slowest: Vec<SummaryRestart>,
    pub failures: Vec<SummaryRestart>,
    pub failures_total: u64,
    pub opted_out: Vec<ServiceId>,
    pub opted_out_total: u64,
    /// Whether inventory recorded its run.
    pub inventory: bool,
    pub reached: u64,
    pub unreachable: Vec<Unreachable>,
    /// Distinct accounts with at least one unreachable region.
    pub unreachable_accounts: u64,
    /// Account-regions lost during the night (after inventory reached them), with how many of
    /// their services were skipped or timed out because of it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lost_during_night: BTreeMap<String, u64>,
    pub paused: Option<Pause>,
    pub halted: Option<Halt>,
}

impl NightSummary {
    /// Builds the summary from what the table holds.
    pub fn build(
        night: NaiveDate,
        records: &[NightRecord],
        status: &NightStatus,
        run: Option<&InventoryRun>,
        plan: Option<&PlanSummary>,
        paused: Option<&Pause>,
    ) -> Self {
        let mut by_state = BTreeMap::new();
        let mut by_skip_reason = BTreeMap::new();
        for r in records {
            *by_state.entry(r.state).or_insert(0) += 1;
            if let Some(reason) = r.skip_reason.filter(|_| r.state == NightState::Skipped) {
                *by_skip_reason.entry(reason).or_insert(0) += 1;
            }
        }
        let entry = |r: &NightRecord| SummaryRestart {
            id: r.id.clone(),
            // A tag value is at most 256 characters: an owner from tags is never cut.
            owner: cut(&owner_of(&r.owner), 256),
            state: r.state,
            duration_seconds: r.duration_seconds,
            detail: r.detail.as_deref().map(|d| cut(d, 300)),
        };
        let mut slowest: Vec<&NightRecord> = records
            .iter()
            .filter(|r| r.state == NightState::Completed && r.duration_seconds.is_some())
            .collect();
        slowest.sort_by(|a, b| {
            b.duration_seconds
                .cmp(&a.duration_seconds)
                .then(a.id.cmp(&b.id))
        });
        let mut failures: Vec<&NightRecord> = records
            .iter()
            .filter(|r| r.state.is_failure() || r.state == NightState::Vanished)
            .collect();
        failures.sort_by(|a, b| a.id.cmp(&b.id));
        let mut opted_out: Vec<&ServiceId> = records
            .iter()
            .filter(|r| r.skip_reason == Some(SkipReason::OptedOut))
            .map(|r| &r.id)
            .collect();
        opted_out.sort();
        let mut lost_during_night: BTreeMap<String, u64> = BTreeMap::new();
        for r in records.iter().filter(|r| {
            r.skip_reason == Some(SkipReason::AccountUnreachable)
                || (r.state == NightState::TimedOut
                    && r.detail
                        .as_deref()
                        .is_some_and(|d| d.contains("account unreachable")))
        }) {
            *lost_during_night
                .entry(format!("{} {}", r.id.account, r.id.region))
                .or_default() += 1;
        }
        let unreachable = run.map(|r| r.unreachable.clone()).unwrap_or_default();
        let unreachable_accounts = unreachable
            .iter()
            .map(|u| &u.account)
            .collect::<BTreeSet<_>>()
            .len() as u64;
        Self {
            night,
            plan: plan.cloned(),
            services: records.len() as u64,
            by_state,
            by_skip_reason,
            counters: status.counts.clone(),
            first_start: records.iter().filter_map(|r| r.started_at).min(),
            last_finish: records.iter().filter_map(|r| r.finished_at).max(),
            slowest: slowest
                .iter()
                .take(SUMMARY_SLOWEST)
                .map(|r| entry(r))
                .collect(),
            failures_total: failures.len() as u64,
            failures: failures
                .iter()
                .take(SUMMARY_FAILURES)
                .map(|r| entry(r))
                .collect(),
            opted_out_total: opted_out.len() as u64,
            lost_during_night,
            opted_out: opted_out.into_iter().take(SUMMARY_LIST).cloned().collect(),
            inventory: run.is_some(),
            reached: run.map_or(0, |r| r.reached.len() as u64),
            unreachable,
            unreachable_accounts,
            // Cut like every other text of the summary, so that its message stays far under
            // 256 KiB whatever the table holds (`restartctl pause` takes 1,000 characters).
            paused: paused.map(|p| Pause {
                reason: cut(&p.reason, 1_000),
                by: cut(&p.by, 300),
                at: p.at,
            }),
            halted: status.halted.as_ref().map(|h| Halt {
                reason: cut(&h.reason, 1_000),
                at: h.at,
            }),
        }
    }

    pub fn count(&self, state: NightState) -> u64 {
        self.by_state.get(&state).copied().unwrap_or(0)
    }

    /// The metrics of the summary's EMF line, by name (the alarms use these names).
    pub fn metrics(&self) -> [(&'static str, u64); 10] {
        [
            ("RestartsCompleted", self.count(NightState::Completed)),
            ("RestartsFailed", self.count(NightState::Failed)),
            ("RestartsRolledBack", self.count(NightState::RolledBack)),
            ("RestartsSuperseded", self.count(NightState::Superseded)),
            ("RestartsTimedOut", self.count(NightState::TimedOut)),
            ("RestartsVanished", self.count(NightState::Vanished)),
            ("RestartsHalted", self.count(NightState::Halted)),
            ("ServicesSkipped", self.count(NightState::Skipped)),
            ("UnreachableAccounts", self.unreachable_accounts),
            ("NightHalted", u64::from(self.halted.is_some())),
        ]
    }

    /// The message to the ops topic (attribute `kind` = `summary`).
    pub fn message(&self) -> Message {
        let failed = self.failures_total;
        let mut status = if self.halted.is_some() {
            "HALTED".to_owned()
        } else if self.plan.is_none() {
            "NO PLAN".to_owned()
        } else if failed > 0 {
            format!("{failed} failed")
        } else {
            "ok".to_owned()
        };
        if self.paused.is_some() {
            status.push_str(", paused");
        }
        let subject = subject(&format!(
            "ECS nightly restart {}: {status} - {} completed, {} skipped",
            self.night,
            self.count(NightState::Completed),
            self.count(NightState::Skipped)
        ));

        let mut b = String::new();
        let _ = writeln!(
            b,
            "ECS nightly restart - summary of the night {}",
            self.night
        );
        let _ = writeln!(b);
        match &self.plan {
            Some(p) => {
                let _ = writeln!(
                    b,
                    "Plan: {} batches, {} services planned, {} skipped (written {}).",
                    p.batches,
                    p.planned,
                    p.skipped,
                    p.written_at.format("%Y-%m-%dT%H:%M:%SZ")
                );
            }
            None => {
                let _ = writeln!(
                    b,
                    "Plan: MISSING. No complete plan was written for this night (the batcher \
                     failed or did not run); the figures below are what is known."
                );
            }
        }
        if let Some(h) = &self.halted {
            let _ = writeln!(
                b,
                "Halted at {}: {}",
                h.at.format("%Y-%m-%dT%H:%M:%SZ"),
                h.reason
            );
        }
        if let Some(p) = &self.paused {
            let _ = writeln!(
                b,
                "Paused (kill switch on) since {} by {}: {}",
                p.at.format("%Y-%m-%dT%H:%M:%SZ"),
                p.by,
                p.reason
            );
        }
        let fmt_t = |t: Option<DateTime<Utc>>| {
            t.map_or("-".to_owned(), |t| {
                t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
            })
        };
        let _ = writeln!(
            b,
            "Window used: first start {}, last completion {}.",
            fmt_t(self.first_start),
            fmt_t(self.last_finish)
        );
        let _ = writeln!(b);
        let _ = writeln!(b, "Outcomes ({} services with a record):", self.services);
        for state in NightState::ALL {
            let c = self.count(state);
            if c > 0 {
                let _ = writeln!(b, "  {:<24} {c:>7}", state.as_str());
            }
        }
        if !self.by_skip_reason.is_empty() {
            let _ = writeln!(b);
            let _ = writeln!(b, "Skipped, by reason:");
            for (reason, c) in &self.by_skip_reason {
                let _ = writeln!(b, "  {:<24} {c:>7}", reason.as_str());
            }
        }
        let _ = writeln!(b);
        let _ = writeln!(b, "Slowest restarts:");
        if self.slowest.is_empty() {
            let _ = writeln!(b, "  none completed");
        }
        for r in &self.slowest {
            let _ = writeln!(
                b,
                "  {:>6} s  {}  (owner {})",
                r.duration_seconds.unwrap_or(0),
                r.id,
                r.owner
            );
        }
        let _ = writeln!(b);
        let _ = writeln!(b, "Failures ({}):", self.failures_total);
        if self.failures.is_empty() {
            let _ = writeln!(b, "  none");
        }
        for r in &self.failures {
            let _ = writeln!(
                b,
                "  {:<11} {}  (owner {})",
                r.state.as_str(),
                r.id,
                r.owner
            );
            if let Some(d) = &r.detail {
                let _ = writeln!(b, "              {d}");
            }
        }
        if self.failures_total > self.failures.len() as u64 {
            let _ = writeln!(
                b,
                "  ... and {} more",
                self.failures_total - self.failures.len() as u64
            );
        }
        let _ = writeln!(b);
        if self.inventory {
            let _ = writeln!(
                b,
                "Inventory: {} account-regions reached, {} unreachable ({} accounts).",
                self.reached,
                self.unreachable.len(),
                self.unreachable_accounts
            );
        } else {
            let _ = writeln!(b, "Inventory: no run recorded for this night.");
        }
        for u in self.unreachable.iter().take(SUMMARY_LIST) {
            let _ = writeln!(b, "  {} {}: {}", u.account, u.region, cut(&u.error, 300));
        }
        if self.unreachable.len() > SUMMARY_LIST {
            let _ = writeln!(
                b,
                "  ... and {} more",
                self.unreachable.len() - SUMMARY_LIST
            );
        }
        if !self.lost_during_night.is_empty() {
            let _ = writeln!(
                b,
                "Lost during the night (ECS stopped answering after inventory reached them):"
            );
            for (account_region, n) in self.lost_during_night.iter().take(SUMMARY_LIST) {
                let _ = writeln!(
                    b,
                    "  {account_region}: {n} services skipped or timed out (account_unreachable)"
                );
            }
            if self.lost_during_night.len() > SUMMARY_LIST {
                let _ = writeln!(
                    b,
                    "  ... and {} more",
                    self.lost_during_night.len() - SUMMARY_LIST
                );
            }
        }
        if self.opted_out_total > 0 {
            let _ = writeln!(b);
            let _ = writeln!(b, "Opted out ({}):", self.opted_out_total);
            for id in &self.opted_out {
                let _ = writeln!(b, "  {id}");
            }
            if self.opted_out_total > self.opted_out.len() as u64 {
                let _ = writeln!(
                    b,
                    "  ... and {} more",
                    self.opted_out_total - self.opted_out.len() as u64
                );
            }
        }
        let _ = writeln!(b);
        let _ = writeln!(b, "--- machine-readable ---");
        let metrics: serde_json::Map<String, serde_json::Value> = self
            .metrics()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), json!(v)))
            .collect();
        let data = json!({
            "kind": "summary",
            "night": self.night,
            "plan_missing": self.plan.is_none(),
            "metrics": metrics,
            "by_state": self.by_state,
            "by_skip_reason": self.by_skip_reason,
            "counters": self.counters,
            "first_start": self.first_start,
            "last_finish": self.last_finish,
            "failures_total": self.failures_total,
            "halted": self.halted,
            "paused": self.paused,
        });
        let _ = writeln!(b, "{data}");
        Message {
            subject,
            body: b,
            attributes: BTreeMap::from([("kind".to_owned(), "summary".to_owned())]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::owner::OwnerSource;
    use crate::service::{DeploymentController, SchedulingStrategy, ServiceStatus};
    use proptest::prelude::*;

    fn night() -> NaiveDate {
        "2026-11-22".parse().unwrap()
    }

    fn sid(account: &str, cluster: &str, service: &str) -> ServiceId {
        ServiceId {
            account: account.parse().unwrap(),
            region: "eu-west-1".into(),
            cluster: cluster.into(),
            service: service.into(),
        }
    }

    fn catalog(
        id: &ServiceId,
        owner: &str,
        tag: TagStateKind,
        value: Option<&str>,
    ) -> CatalogRecord {
        CatalogRecord {
            id: id.clone(),
            arn: id.arn("aws"),
            owner: owner.into(),
            owner_source: OwnerSource::ServiceTag,
            tag_value: value.map(str::to_owned),
            tag_state: tag,
            status: ServiceStatus::Active,
            desired: 2,
            scheduling: SchedulingStrategy::Replica,
            controller: DeploymentController::Ecs,
            min_healthy_percent: 100,
            max_percent: 200,
            skip_reason: None,
            first_seen: night(),
            last_seen: night(),
            gone_since: None,
            last_restart_seconds: None,
        }
    }

    fn record(
        id: &ServiceId,
        owner: &str,
        state: NightState,
        reason: Option<SkipReason>,
    ) -> NightRecord {
        let c = catalog(id, owner, TagStateKind::Enrolled, None);
        let mut r = match reason {
            Some(reason) => NightRecord::skipped(&c, night(), reason),
            None => NightRecord::planned(&c, night(), 0, "2026-11-22T00:10:00Z".parse().unwrap()),
        };
        r.state = state;
        r
    }

    #[test]
    fn findings_come_from_actionable_skips_failed_outcomes_and_the_catalog() {
        let a = sid("111111111111", "pay", "api");
        let b = sid("111111111111", "pay", "worker");
        let c = sid("222222222222", "search", "idx");
        let d = sid("222222222222", "search", "old");
        let mut failed = record(&b, "payments", NightState::Failed, None);
        failed.detail = Some("rolloutState FAILED".into());
        let records = vec![
            record(
                &a,
                "payments",
                NightState::Skipped,
                Some(SkipReason::Untagged),
            ),
            failed,
            record(&c, "", NightState::Skipped, Some(SkipReason::OptedOut)),
            record(&d, "search", NightState::Completed, None),
        ];
        let cat = vec![
            catalog(&a, "payments", TagStateKind::Untagged, None),
            catalog(&d, "search", TagStateKind::Malformed, Some("yes please")),
        ];
        let f = findings(night(), &records, &[], &cat);
        let got: Vec<(&str, &str, FindingKind)> = f
            .iter()
            .map(|f| (f.owner.as_str(), f.id.service.as_str(), f.kind))
            .collect();
        assert_eq!(
            got,
            [
                ("payments", "api", FindingKind::Untagged),
                ("payments", "worker", FindingKind::RestartFailed),
                ("search", "old", FindingKind::MalformedTag),
            ]
        );
        assert_eq!(f[1].detail.as_deref(), Some("rolloutState FAILED"));
        assert_eq!(f[2].detail.as_deref(), Some("tag value \"yes please\""));
        // An owner-less service goes to `unowned`.
        let unowned = record(&c, " ", NightState::Skipped, Some(SkipReason::NeedsLongArn));
        assert_eq!(findings(night(), &[unowned], &[], &[])[0].owner, UNOWNED);
    }

    #[test]
    fn the_cooldown_holds_repeats_but_not_new_kinds_or_the_same_night() {
        let a = sid("111111111111", "pay", "api");
        let untagged = record(
            &a,
            "payments",
            NightState::Skipped,
            Some(SkipReason::Untagged),
        );
        let f = findings(night(), &[untagged], &[], &[]);
        let told: NaiveDate = "2026-11-21".parse().unwrap();
        let last = BTreeMap::from([((a.clone(), FindingKind::Untagged), told)]);
        assert_eq!(due(&f, &last, night(), 7), (vec![], 1));
        assert_eq!(due(&f, &last, told + chrono::Days::new(7), 7).1, 0);
        assert_eq!(
            due(&f, &last, told, 7).0.len(),
            1,
            "a rerun of the same night"
        );
        let other = BTreeMap::from([((a, FindingKind::DowntimeRisk), told)]);
        assert_eq!(due(&f, &other, night(), 7).0.len(), 1, "a new kind");
        assert!(is_due(Some(told), night(), 0));
    }

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

    #[test]
    fn publish_batches_hold_ten_entries_and_256_kib_at_most() {
        assert_eq!(publish_batches(&[1; 25]), [0..10, 10..20, 20..25]);
        assert_eq!(publish_batches(&[200_000, 200_000, 10]), [0..1, 1..3]);
        assert_eq!(publish_batches(&[]), Vec::<Range<usize>>::new());
        assert_eq!(publish_batches(&[MAX_MESSAGE_BYTES, 1]), [0..1, 1..2]);
    }

    /// Text of a team, a tag value or a failure: anything, printable Unicode, bytes read as
    /// UTF-8, or names with accents, CJK, emoji, full-width digits and combining marks.
    fn text(max: usize) -> impl Strategy<Value = String> {
        prop_oneof![
            prop::collection::vec(any::<char>(), 0..max).prop_map(String::from_iter),
            prop::string::string_regex(&format!("\\PC{{0,{max}}}")).unwrap(),
            prop::collection::vec(any::<u8>(), 0..max)
                .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            prop::sample::select(vec![
                "équipe-paiements",
                "決済チーム",
                "🚀 platform 🚀",
                "ｔｅａｍ１２",
                "e\u{301}quipe",
                "\u{200b}",
                "<script>alert('x')</script>",
                "a\r\nb",
                "\"quoted\"",
                "ok",
            ])
            .prop_map(str::to_owned),
        ]
    }

    /// What SNS takes as a subject (see [`MAX_SUBJECT_CHARS`]).
    fn assert_subject(s: &str) -> Result<(), TestCaseError> {
        prop_assert!(s.len() <= MAX_SUBJECT_CHARS && s.len() < 100, "{s:?}");
        prop_assert!(s.chars().all(|c| c == ' ' || c.is_ascii_graphic()), "{s:?}");
        prop_assert!(
            s.chars().next().is_none_or(|c| c.is_ascii_graphic()),
            "{s:?}"
        );
        Ok(())
    }

    /// A record of tonight for `id`, with an owner-actionable outcome or skip.
    fn any_record(
        id: ServiceId,
        owner: String,
        kind: usize,
        detail: Option<String>,
    ) -> NightRecord {
        let mut r = NightRecord::unbatched(id.clone(), id.arn("aws"), night(), owner);
        let outcomes = [
            NightState::Failed,
            NightState::RolledBack,
            NightState::TimedOut,
        ];
        let skips = [
            SkipReason::Untagged,
            SkipReason::DowntimeRisk,
            SkipReason::DeploymentBlocked,
            SkipReason::ControllerCodeDeploy,
            SkipReason::ControllerExternal,
            SkipReason::NeedsLongArn,
            SkipReason::OptedOut,
        ];
        match outcomes.get(kind) {
            Some(&state) => r.state = state,
            None => r.skip_reason = Some(skips[(kind - outcomes.len()) % skips.len()]),
        }
        r.detail = detail;
        r
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn any_text_makes_a_subject_sns_takes(s in text(300)) {
            assert_subject(&subject(&s))?;
        }

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

        /// The summary of a night whose records carry any owner and detail text.
        #[test]
        fn any_summary_has_a_subject_sns_takes(
            rows in prop::collection::vec((text(64), 0usize..10, prop::option::of(text(400))), 0..30),
            pause in prop::option::of((text(100), text(300))),
            halt in prop::option::of(text(300)),
            huge in prop::bool::weighted(0.1),
        ) {
            // What a table edited by hand could hold: 100,000 characters of 4 bytes each.
            let big = |s: String| if huge { s.repeat(1 + 100_000 / s.len().max(1)) + &"🙁".repeat(100_000) } else { s };
            let pause = pause.map(|(by, reason)| (big(by), big(reason)));
            let halt = halt.map(big);
            let records: Vec<NightRecord> = rows
                .iter()
                .enumerate()
                .map(|(i, (o, k, d))| any_record(sid("111111111111", "c", &format!("s{i}")), o.clone(), *k, d.clone()))
                .collect();
            let at: DateTime<Utc> = "2026-11-22T01:00:00Z".parse().unwrap();
            let status = NightStatus {
                counts: BTreeMap::new(),
                halted: halt.clone().map(|reason| Halt { reason, at }),
            };
            let pause = pause.map(|(by, reason)| Pause { by, reason, at });
            let s = NightSummary::build(night(), &records, &status, None, None, pause.as_ref());
            let m = s.message();
            assert_subject(&m.subject)?;
            prop_assert!(m.size() < MAX_MESSAGE_BYTES);
            if let Some(p) = pause.as_ref().filter(|_| !huge) {
                prop_assert!(m.body.contains(&p.by) && m.body.contains(&p.reason));
            }
            if let Some(h) = halt.as_ref().filter(|_| !huge) {
                prop_assert!(m.body.contains(h.as_str()));
            }
        }

        /// PublishBatch requests: in order, every message once, at most 10 entries and
        /// 256 KiB each (a lone message over it goes alone, and SNS says so).
        #[test]
        fn publish_batches_cover_every_message_within_the_limits(
            sizes in prop::collection::vec(0usize..=MAX_MESSAGE_BYTES * 2, 0..40),
        ) {
            let batches = publish_batches(&sizes);
            let mut next = 0;
            for r in &batches {
                prop_assert_eq!(r.start, next);
                prop_assert!(!r.is_empty() && r.len() <= MAX_BATCH_ENTRIES);
                prop_assert!(r.len() == 1 || sizes[r.clone()].iter().sum::<usize>() <= MAX_MESSAGE_BYTES);
                next = r.end;
            }
            prop_assert_eq!(next, sizes.len());
        }

        #[test]
        fn cutting_keeps_whole_characters(s in text(64), max in 0usize..70) {
            let c = cut(&s, max);
            let kept = if s.chars().count() <= max { c.as_str() } else { c.strip_suffix('…').unwrap() };
            prop_assert!(s.starts_with(kept));
            prop_assert!(kept.chars().count() <= max);
        }
    }

    #[test]
    fn a_malformed_tag_value_is_quoted_as_written() {
        let a = sid("111111111111", "pay", "api");
        for (value, shown) in [
            ("e\u{301}quipe", "tag value \"e\u{301}quipe\""),
            ("決済", "tag value \"決済\""),
            ("say \"yes\"", "tag value \"say \\\"yes\\\"\""),
            ("a\nb", "tag value \"a\\nb\""),
        ] {
            let c = catalog(&a, "payments", TagStateKind::Malformed, Some(value));
            let f = findings(night(), &[], &[], &[c]);
            assert_eq!(f[0].detail.as_deref(), Some(shown));
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

    #[test]
    fn subjects_are_ascii_and_short() {
        let s = subject(&format!("équipe {}", "x".repeat(200)));
        assert!(s.is_ascii() && s.len() == MAX_SUBJECT_CHARS && s.ends_with("..."));
    }

    #[test]
    fn the_summary_counts_records_caps_failures_and_says_when_the_plan_is_missing() {
        let mut records = Vec::new();
        for i in 0..30 {
            let mut r = record(
                &sid("111111111111", "c", &format!("f{i:02}")),
                "o",
                NightState::Failed,
                None,
            );
            r.detail = Some("boom".into());
            records.push(r);
        }
        for i in 0..7u32 {
            let mut r = record(
                &sid("111111111111", "c", &format!("ok{i}")),
                "o",
                NightState::Completed,
                None,
            );
            r.duration_seconds = Some(100 + i);
            r.started_at = Some("2026-11-22T00:10:00Z".parse().unwrap());
            r.finished_at = Some(format!("2026-11-22T00:1{i}:00Z").parse().unwrap());
            records.push(r);
        }
        records.push(record(
            &sid("111111111111", "c", "out"),
            "o",
            NightState::Skipped,
            Some(SkipReason::OptedOut),
        ));
        let status = NightStatus {
            counts: BTreeMap::new(),
            halted: Some(Halt {
                reason: "too many failures".into(),
                at: "2026-11-22T01:00:00Z".parse().unwrap(),
            }),
        };
        let s = NightSummary::build(night(), &records, &status, None, None, None);
        assert_eq!(s.count(NightState::Failed), 30);
        assert_eq!(s.failures.len(), SUMMARY_FAILURES);
        assert_eq!(
            s.slowest
                .iter()
                .map(|r| r.duration_seconds.unwrap())
                .collect::<Vec<_>>(),
            [106, 105, 104, 103, 102]
        );
        assert_eq!(s.by_skip_reason[&SkipReason::OptedOut], 1);
        let m = s.message();
        assert!(m.body.contains("Plan: MISSING"));
        assert!(m.body.contains("... and 10 more"));
        assert!(m.body.contains("too many failures"));
        assert!(m.body.contains("last completion 2026-11-22T00:16:00Z"));
        assert_eq!(m.attributes["kind"], "summary");
        assert!(m.subject.contains("HALTED"));
        let metrics: BTreeMap<_, _> = s.metrics().into_iter().collect();
        assert_eq!(metrics["RestartsFailed"], 30);
        assert_eq!(metrics["NightHalted"], 1);
        assert_eq!(metrics["ServicesSkipped"], 1);
    }
}
