//! `report [--night D] --html FILE`: one self-contained HTML page of a night (inline CSS, no
//! scripts, no external references): a summary, an SVG timeline of the batches across the
//! window, outcomes per batch, failures and skips with their reasons. With the night's traces
//! ([`TimeSpent`], which the local stack reads from the X-Ray documents the functions sent), the
//! page also shows where the night's time went, per account.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;
use restart_core::eligibility::SkipReason;
use restart_core::guard::{HoldSeen, NightHolds};
use restart_core::night::{Halt, NightRecord, Pause, PlanSummary};
use restart_core::outcome::NightState;
use restart_core::planner::PlannedBatch;
use restart_core::window::NightWindow;
use serde::Serialize;

use crate::cli::ReportArgs;
use crate::night::NightData;
use crate::render::{duration, has_local_time, local, print_json, utc_seconds};
use crate::settings::Settings;

/// What the page is made of.
#[derive(Debug, Clone)]
pub struct Night {
    pub night: NaiveDate,
    pub window: NightWindow,
    pub tz: Tz,
    pub window_label: String,
    pub plan: Option<PlanSummary>,
    pub batches: Vec<PlannedBatch>,
    pub records: Vec<NightRecord>,
    pub halted: Option<Halt>,
    pub paused: Option<Pause>,
    /// The holds the restarter met (blocking alarms, unreadable guards).
    pub holds: Vec<HoldSeen>,
    pub generated_at: DateTime<Utc>,
}

/// Where a night's time went, per account, from its X-Ray traces: the view "Where the night's
/// time went". Built by whoever holds the traces (the local stack, from the documents its
/// X-Ray listener received); the page only renders it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TimeSpent {
    /// Traces read (one per execution).
    pub traces: u64,
    /// Segment documents read.
    pub documents: u64,
    /// One row per account, slowest first (time in AWS calls plus time in pace waits).
    pub accounts: Vec<AccountTime>,
}

/// One account's share of the night, summed over its subsegments (concurrent calls each count
/// their own time, so the sum can pass the night's wall-clock time).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AccountTime {
    /// The account's id, or what stands for work of no member account (the hub's table).
    pub account: String,
    /// AWS calls (one subsegment each, retries included).
    pub calls: u64,
    /// Seconds in AWS calls.
    pub call_seconds: f64,
    /// Waits for the account's pace (token buckets, UpdateService slots).
    pub pace_waits: u64,
    /// Seconds in pace waits.
    pub pace_seconds: f64,
    /// Attempts the SDK retried (`aws.retries` summed).
    pub retries: u64,
    /// Seconds in calls that were retried at least once.
    pub retried_seconds: f64,
    /// Calls answered with throttling at least once.
    pub throttled: u64,
    /// Calls that ended in an error or fault.
    pub errors: u64,
    /// The operations that took the most time, slowest first (at most a few).
    pub slowest: Vec<OperationTime>,
}

impl AccountTime {
    /// Time in calls and in pace waits: the order of the view.
    pub fn total_seconds(&self) -> f64 {
        finite(self.call_seconds) + finite(self.pace_seconds)
    }
}

/// One operation of one account (e.g. ECS DescribeServices).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OperationTime {
    /// The service, as the subsegment names it (`ECS`, `DynamoDB`, `STS`, ...).
    pub service: String,
    pub operation: String,
    pub calls: u64,
    pub seconds: f64,
    /// The longest single call.
    pub max_seconds: f64,
    pub retries: u64,
    pub throttled: u64,
}

/// A time that came from data: anything but a finite, non-negative number counts as none.
fn finite(s: f64) -> f64 {
    if s.is_finite() && s > 0.0 { s } else { 0.0 }
}

/// Seconds for people: milliseconds under a second, tenths under a minute, then minutes.
pub fn seconds(s: f64) -> String {
    let s = finite(s);
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else {
        duration(u32::try_from(s.round() as u64).unwrap_or(u32::MAX))
    }
}

/// The colour of each state, on the timeline and in the tables.
fn colour(s: NightState) -> &'static str {
    match s {
        NightState::Completed => "#2e9d5b",
        NightState::Failed => "#d64545",
        NightState::RolledBack => "#e8833a",
        NightState::Superseded => "#5fa8a0",
        NightState::TimedOut => "#9b59b6",
        NightState::Vanished => "#7f8c8d",
        NightState::Halted => "#34495e",
        NightState::Started => "#3b82c4",
        NightState::Planned => "#c8d0d8",
        NightState::Skipped => "#b0a48a",
    }
}

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem;color:#1f2933;background:#fff}
h1{font-size:1.6rem;margin:0 0 .3rem}h2{font-size:1.2rem;margin:2rem 0 .6rem}
.sub{color:#52606d;margin:0 0 1rem}
.cards{display:flex;gap:1rem;flex-wrap:wrap}
.card{border:1px solid #d9e2ec;border-radius:8px;padding:.7rem 1rem;min-width:7rem}
.card b{display:block;font-size:1.6rem}
.banner{padding:.7rem 1rem;border-radius:8px;margin:1rem 0;font-weight:600}
.paused{background:#fff4d6;border:1px solid #f0b429}.halted{background:#fde8e8;border:1px solid #d64545}
table{border-collapse:collapse;margin:.3rem 0;font-size:.9rem}
th,td{border:1px solid #d9e2ec;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f0f4f8}td.n{text-align:right}
.dot{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;margin-right:.3rem;vertical-align:middle}
.legend span{margin-right:1rem;font-size:.85rem}
ul.ops{margin:0;padding-left:1rem}
svg text{font-family:system-ui,sans-serif;font-size:11px;fill:#334e68}
";

impl Night {
    fn counts(&self) -> BTreeMap<NightState, u64> {
        let mut c = BTreeMap::new();
        for r in &self.records {
            *c.entry(r.state).or_insert(0) += 1;
        }
        c
    }

    fn batch_records(&self, batch: u32) -> impl Iterator<Item = &NightRecord> {
        self.records.iter().filter(move |r| r.batch == Some(batch))
    }

    /// When a batch's last restart finished (or its start, plus its longest run so far); at
    /// least two minutes after its start (a thirtieth of the window in a window shorter than an
    /// hour), so that every batch shows.
    fn batch_end(&self, b: &PlannedBatch) -> DateTime<Utc> {
        let least = TimeDelta::minutes(2).min((self.window.end - self.window.start) / 30);
        self.batch_records(b.batch)
            .filter_map(|r| r.finished_at.or(r.started_at))
            .max()
            .unwrap_or(b.start_at)
            .max(b.start_at.checked_add_signed(least).unwrap_or(b.start_at))
    }

    /// The page.
    pub fn html(&self) -> String {
        self.page(None)
    }

    /// The page with the view of where the night's time went, from its traces.
    pub fn html_with_time(&self, time: &TimeSpent) -> String {
        self.page(Some(time))
    }

    fn page(&self, time: Option<&TimeSpent>) -> String {
        let mut h = String::new();
        let title = format!("Nightly ECS restarts: night {}", self.night);
        let _ = writeln!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{}</title><style>{CSS}</style></head><body>",
            esc(&title)
        );
        let _ = writeln!(
            h,
            "<h1>{}</h1><p class=\"sub\">Window {} ({} to {}). Generated {}.</p>",
            esc(&title),
            esc(&self.window_label),
            esc(&local(self.window.start, self.tz)),
            esc(&local(self.window.end, self.tz)),
            esc(&utc_seconds(self.generated_at)),
        );
        if let Some(p) = &self.paused {
            let _ = writeln!(
                h,
                "<div class=\"banner paused\">Paused since {} by {}: {}</div>",
                esc(&utc_seconds(p.at)),
                esc(&p.by),
                esc(&p.reason)
            );
        }
        if let Some(x) = &self.halted {
            let _ = writeln!(
                h,
                "<div class=\"banner halted\">Halted at {}: {}</div>",
                esc(&utc_seconds(x.at)),
                esc(&x.reason)
            );
        }
        self.cards(&mut h);
        h.push_str("<h2>Timeline</h2>\n");
        self.timeline(&mut h);
        self.legend(&mut h);
        self.per_batch(&mut h);
        if let Some(time) = time {
            time_spent(time, &mut h);
        }
        self.failures(&mut h);
        self.skips(&mut h);
        h.push_str("</body></html>\n");
        h
    }

    fn cards(&self, h: &mut String) {
        let c = self.counts();
        let get = |s: NightState| c.get(&s).copied().unwrap_or(0);
        let failures: u64 = NightState::ALL
            .into_iter()
            .filter(|s| s.is_failure())
            .map(get)
            .sum();
        let planned_total: u64 = self.batches.iter().map(|b| u64::from(b.size)).sum();
        let cards = [
            ("batches", self.batches.len() as u64),
            ("planned", planned_total),
            ("completed", get(NightState::Completed)),
            ("failed, rolled back, timed out", failures),
            (
                "in flight or waiting",
                get(NightState::Started) + get(NightState::Planned),
            ),
            (
                "vanished or halted",
                get(NightState::Vanished) + get(NightState::Halted),
            ),
            ("skipped", get(NightState::Skipped)),
        ];
        h.push_str("<div class=\"cards\">");
        for (label, n) in cards {
            let _ = write!(h, "<div class=\"card\"><b>{n}</b>{}</div>", esc(label));
        }
        h.push_str("</div>\n");
    }

    fn timeline(&self, h: &mut String) {
        let (left, right, top, row) = (90.0_f64, 20.0_f64, 30.0_f64, 22.0_f64);
        let width = 1000.0_f64;
        let start = self
            .batches
            .iter()
            .map(|b| b.start_at)
            .min()
            .map_or(self.window.start, |s| s.min(self.window.start));
        let end = self
            .batches
            .iter()
            .map(|b| self.batch_end(b))
            .max()
            .map_or(self.window.end, |e| e.max(self.window.end));
        let span = (end - start).num_seconds().max(1) as f64;
        let x = |t: DateTime<Utc>| {
            left + (t - start).num_seconds() as f64 / span * (width - left - right)
        };
        let height = top + row * self.batches.len().max(1) as f64 + 20.0;
        let _ = writeln!(
            h,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
             viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"batches across the window\">"
        );
        // The window, shaded.
        let _ = writeln!(
            h,
            "<rect x=\"{:.1}\" y=\"{}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#f0f4f8\"/>",
            x(self.window.start),
            top - 8.0,
            x(self.window.end) - x(self.window.start),
            height - top - 4.0
        );
        // Hour ticks in the window's timezone; every few hours when records span days (at
        // most about 48 ticks), so that a record with a time far off cannot make the page huge.
        // A night shorter than an hour (the local stack's compressed nights) gets minute ticks
        // instead, at most about 12.
        let (step, minutes) = tick_step(end - start);
        let mut tick = if has_local_time(start, self.tz) {
            let local = start.with_timezone(&self.tz);
            local
                .with_minute(local.minute() / minutes * minutes)
                .and_then(|t| t.with_second(0))
                .and_then(|t| t.with_nanosecond(0))
                .map_or(start, |t| t.with_timezone(&Utc))
        } else {
            start
        };
        if tick < start {
            tick = tick.checked_add_signed(step).unwrap_or(start);
        }
        while tick <= end && has_local_time(tick, self.tz) {
            let tx = x(tick);
            let _ = writeln!(
                h,
                "<line x1=\"{tx:.1}\" y1=\"{}\" x2=\"{tx:.1}\" y2=\"{:.1}\" stroke=\"#bcccdc\"/>\
                 <text x=\"{tx:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                top - 8.0,
                height - 12.0,
                top - 14.0,
                tick.with_timezone(&self.tz).format("%H:%M")
            );
            match tick.checked_add_signed(step) {
                Some(next) => tick = next,
                None => break,
            }
        }
        for (i, b) in self.batches.iter().enumerate() {
            let y = top + row * i as f64;
            let (x0, x1) = (x(b.start_at), x(self.batch_end(b)).max(x(b.start_at) + 3.0));
            let _ = writeln!(
                h,
                "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">batch {}</text>",
                left - 8.0,
                y + 11.0,
                b.batch
            );
            // One segment per state, in proportion to its services.
            let mut counts: BTreeMap<NightState, u64> = BTreeMap::new();
            for r in self.batch_records(b.batch) {
                *counts.entry(r.state).or_insert(0) += 1;
            }
            let total: u64 = counts.values().sum();
            let mut at = x0;
            for (state, n) in &counts {
                let w = (x1 - x0) * *n as f64 / total.max(1) as f64;
                let _ = writeln!(
                    h,
                    "<rect x=\"{at:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"14\" fill=\"{}\">\
                     <title>batch {}: {n} {state}</title></rect>",
                    colour(*state),
                    b.batch
                );
                at += w;
            }
            if total == 0 {
                let _ = writeln!(
                    h,
                    "<rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"14\" fill=\"{}\"/>",
                    x1 - x0,
                    colour(NightState::Planned)
                );
            }
        }
        h.push_str("</svg>\n");
    }

    /// A batch's start: to the minute, or to the second when some batch of the night starts
    /// between minutes (the local stack's sub-minute intervals).
    fn start_label(&self, t: DateTime<Utc>) -> String {
        let seconds = self.batches.iter().any(|b| b.start_at.second() != 0);
        if seconds && has_local_time(t, self.tz) {
            t.with_timezone(&self.tz)
                .format("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        } else {
            local(t, self.tz)
        }
    }

    fn legend(&self, h: &mut String) {
        h.push_str("<p class=\"legend\">");
        for s in NightState::ALL {
            if s == NightState::Skipped {
                continue;
            }
            let _ = write!(
                h,
                "<span><i class=\"dot\" style=\"background:{}\"></i>{s}</span>",
                colour(s)
            );
        }
        h.push_str("</p>\n");
    }

    fn per_batch(&self, h: &mut String) {
        h.push_str(
            "<h2>Outcomes per batch</h2>\n<table><tr><th>batch</th><th>start</th><th>size</th>",
        );
        let shown: Vec<NightState> = NightState::ALL
            .into_iter()
            .filter(|s| *s != NightState::Skipped)
            .collect();
        for s in &shown {
            let _ = write!(
                h,
                "<th><i class=\"dot\" style=\"background:{}\"></i>{s}</th>",
                colour(*s)
            );
        }
        h.push_str("</tr>\n");
        for b in &self.batches {
            let _ = write!(
                h,
                "<tr><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td>",
                b.batch,
                esc(&self.start_label(b.start_at)),
                b.size
            );
            for s in &shown {
                let n = self
                    .batch_records(b.batch)
                    .filter(|r| r.state == *s)
                    .count();
                let _ = write!(h, "<td class=\"n\">{n}</td>");
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n");
    }

    fn failures(&self, h: &mut String) {
        let mut rows: Vec<&NightRecord> = self
            .records
            .iter()
            .filter(|r| {
                r.state.is_failure() || matches!(r.state, NightState::Vanished | NightState::Halted)
            })
            .collect();
        rows.sort_by_key(|r| (r.batch, r.arn.to_string()));
        h.push_str("<h2>Failures</h2>\n");
        if rows.is_empty() {
            h.push_str("<p>None.</p>\n");
            return;
        }
        h.push_str(
            "<table><tr><th>batch</th><th>service</th><th>owner</th><th>outcome</th>\
             <th>deployment</th><th>ran</th><th>reason</th></tr>\n",
        );
        for r in rows {
            let ran = match (r.started_at, r.finished_at) {
                (Some(s), Some(f)) => duration(u32::try_from((f - s).num_seconds()).unwrap_or(0)),
                _ => "-".into(),
            };
            let _ = writeln!(
                h,
                "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>\
                 <i class=\"dot\" style=\"background:{}\"></i>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                r.batch.map_or("-".into(), |b| b.to_string()),
                esc(&r.arn.to_string()),
                esc(&r.owner),
                colour(r.state),
                r.state,
                esc(r.deployment_id.as_deref().unwrap_or("-")),
                esc(&ran),
                esc(r.detail.as_deref().unwrap_or("-")),
            );
        }
        h.push_str("</table>\n");
    }

    fn skips(&self, h: &mut String) {
        let mut rows: Vec<&NightRecord> = self
            .records
            .iter()
            .filter(|r| r.state == NightState::Skipped)
            .collect();
        rows.sort_by_key(|r| (r.skip_reason, r.arn.to_string()));
        h.push_str("<h2>Skipped</h2>\n");
        let holds = NightHolds::of(rows.iter().copied()).with_seen(self.holds.clone());
        if !holds.is_empty() {
            h.push_str("<ul class=\"holds\">\n");
            for line in holds.lines(20) {
                let _ = writeln!(h, "<li>{}</li>", esc(line.trim()));
            }
            h.push_str("</ul>\n");
        }
        if rows.is_empty() {
            h.push_str("<p>None.</p>\n");
            return;
        }
        let saved = rows
            .iter()
            .filter(|r| r.skip_reason == Some(SkipReason::RecentlyDeployed))
            .count();
        if saved > 0 {
            let _ = writeln!(
                h,
                "<p>{saved} restart(s) saved: their owners deployed them within \
                 SKIP_IF_DEPLOYED_WITHIN_HOURS before the live check (recently_deployed), so \
                 they already ran fresh tasks.</p>"
            );
        }
        h.push_str(
            "<table><tr><th>service</th><th>owner</th><th>reason</th><th>detail</th></tr>\n",
        );
        for r in rows {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.arn.to_string()),
                esc(&r.owner),
                r.skip_reason.map_or("-".into(), |s| s.to_string()),
                esc(r.detail.as_deref().unwrap_or("-")),
            );
        }
        h.push_str("</table>\n");
    }
}

/// The rows of the view shown at most: a fleet of hundreds of accounts keeps the page small,
/// and the slowest are the ones to look at.
const TIME_ROWS: usize = 50;

/// "Where the night's time went": one row per account, slowest first, with its slowest
/// operations.
fn time_spent(time: &TimeSpent, h: &mut String) {
    h.push_str("<h2>Where the night&#39;s time went</h2>\n");
    let _ = writeln!(
        h,
        "<p class=\"sub\">From {} trace(s), {} segment document(s): per account, the time in AWS \
         calls and in pace waits, summed over calls (concurrent calls each count), slowest \
         first. In X-Ray, the same work is found with the filter expression annotation.account = \
         &quot;ACCOUNT&quot; (docs/runbook.md, The night ran late).</p>",
        time.traces, time.documents
    );
    if time.accounts.is_empty() {
        h.push_str("<p>No traced work.</p>\n");
        return;
    }
    let mut rows: Vec<&AccountTime> = time.accounts.iter().collect();
    rows.sort_by(|a, b| {
        b.total_seconds()
            .total_cmp(&a.total_seconds())
            .then_with(|| a.account.cmp(&b.account))
    });
    h.push_str(
        "<table><tr><th>account</th><th>total</th><th>AWS calls</th><th>in calls</th>\
         <th>pace waits</th><th>in pace waits</th><th>retries</th><th>in retried calls</th>\
         <th>throttled</th><th>errors</th><th>slowest operations</th></tr>\n",
    );
    for a in rows.iter().take(TIME_ROWS) {
        let slowest: Vec<String> = a
            .slowest
            .iter()
            .take(3)
            .map(|o| {
                let mut line = format!(
                    "{} {}: {} call(s), {} (longest {})",
                    o.service,
                    o.operation,
                    o.calls,
                    seconds(o.seconds),
                    seconds(o.max_seconds)
                );
                if o.throttled > 0 {
                    let _ = write!(line, ", {} throttled", o.throttled);
                }
                if o.retries > 0 {
                    let _ = write!(line, ", {} retries", o.retries);
                }
                esc(&line)
            })
            .collect();
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(&a.account),
            esc(&seconds(a.total_seconds())),
            a.calls,
            esc(&seconds(a.call_seconds)),
            a.pace_waits,
            esc(&seconds(a.pace_seconds)),
            a.retries,
            esc(&seconds(a.retried_seconds)),
            a.throttled,
            a.errors,
            if slowest.is_empty() {
                "-".to_owned()
            } else {
                format!(
                    "<ul class=\"ops\"><li>{}</li></ul>",
                    slowest.join("</li><li>")
                )
            }
        );
    }
    h.push_str("</table>\n");
    if rows.len() > TIME_ROWS {
        let _ = writeln!(
            h,
            "<p>{} more account(s), each faster than those above.</p>",
            rows.len() - TIME_ROWS
        );
    }
}

/// The timeline's tick step for a span, and its length in minutes (a divisor of 60, or 60):
/// hours for an hour or more, else the shortest of 1, 2, 5, 10, 15 and 30 minutes that makes
/// at most 12 ticks.
fn tick_step(span: TimeDelta) -> (TimeDelta, u32) {
    if span >= TimeDelta::hours(1) {
        return (TimeDelta::hours((span.num_hours() / 48).max(1)), 60);
    }
    let minutes = [1, 2, 5, 10, 15, 30]
        .into_iter()
        .find(|m| span <= TimeDelta::minutes(12 * i64::from(*m)))
        .unwrap_or(30);
    (TimeDelta::minutes(minutes.into()), minutes)
}

/// What `--output json` prints.
#[derive(Debug, Serialize)]
pub struct Written {
    pub night: NaiveDate,
    pub path: String,
    pub bytes: usize,
}

pub async fn run(settings: &Settings, args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let night = settings.night(args.night);
    let store = settings.store()?;
    let data = NightData::read(&store, night).await?;
    if data.is_empty() {
        anyhow::bail!(
            "night {night} has no plan in table {}: there is nothing to report. Pick another \
             night with --night",
            store.table()
        );
    }
    let page = Night {
        night,
        window: settings.window.night(night),
        tz: settings.window.timezone(),
        window_label: settings.window.to_string(),
        plan: data.plan.summary,
        batches: data.plan.batches,
        records: data.records,
        halted: data.status.halted,
        paused: data.paused,
        holds: data.holds,
        generated_at: Utc::now(),
    }
    .html();
    std::fs::write(&args.html, &page).with_context(|| {
        format!(
            "writing {}: check that its folder exists and is writable",
            args.html.display()
        )
    })?;
    let written = Written {
        night,
        path: args.html.display().to_string(),
        bytes: page.len(),
    };
    if settings.json() {
        print_json(&written)?;
    } else {
        println!(
            "Wrote night {night}'s report to {} ({} bytes)",
            written.path, written.bytes
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_nights_get_minute_ticks_and_long_ones_hours() {
        assert_eq!(tick_step(TimeDelta::hours(6)), (TimeDelta::hours(1), 60));
        assert_eq!(tick_step(TimeDelta::hours(1)), (TimeDelta::hours(1), 60));
        assert_eq!(tick_step(TimeDelta::hours(100)), (TimeDelta::hours(2), 60));
        assert_eq!(tick_step(TimeDelta::minutes(6)), (TimeDelta::minutes(1), 1));
        assert_eq!(
            tick_step(TimeDelta::minutes(13)),
            (TimeDelta::minutes(2), 2)
        );
        assert_eq!(
            tick_step(TimeDelta::minutes(59)),
            (TimeDelta::minutes(5), 5)
        );
    }

    #[test]
    fn batch_starts_show_seconds_only_when_a_batch_starts_between_minutes() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let batch = |k: u32, start: &str| PlannedBatch {
            batch: k,
            start_at: at(start),
            size: 1,
        };
        let mut night = Night {
            night: NaiveDate::from_ymd_opt(2026, 12, 3).unwrap(),
            window: NightWindow {
                night: NaiveDate::from_ymd_opt(2026, 12, 3).unwrap(),
                start: at("2026-12-03T14:06:00Z"),
                end: at("2026-12-03T14:10:00Z"),
            },
            tz: chrono_tz::UTC,
            window_label: "14:06-14:10 UTC".into(),
            plan: None,
            batches: vec![
                batch(0, "2026-12-03T14:06:00Z"),
                batch(1, "2026-12-03T14:07:00Z"),
            ],
            records: Vec::new(),
            halted: None,
            paused: None,
            holds: Vec::new(),
            generated_at: at("2026-12-03T14:12:00Z"),
        };
        let page = night.html();
        assert!(page.contains("<td>2026-12-03 14:07 UTC</td>"), "{page}");
        // Minute ticks on a night of minutes.
        assert!(page.contains(">14:08</text>"), "{page}");
        night.batches[1] = batch(1, "2026-12-03T14:06:15Z");
        let page = night.html();
        assert!(page.contains("<td>2026-12-03 14:06:15 UTC</td>"), "{page}");
        assert!(page.contains("<td>2026-12-03 14:06:00 UTC</td>"), "{page}");
    }

    fn empty_night() -> Night {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        Night {
            night: NaiveDate::from_ymd_opt(2026, 12, 3).unwrap(),
            window: NightWindow {
                night: NaiveDate::from_ymd_opt(2026, 12, 3).unwrap(),
                start: at("2026-12-03T14:06:00Z"),
                end: at("2026-12-03T14:10:00Z"),
            },
            tz: chrono_tz::UTC,
            window_label: "14:06-14:10 UTC".into(),
            plan: None,
            batches: Vec::new(),
            records: Vec::new(),
            halted: None,
            paused: None,
            holds: Vec::new(),
            generated_at: at("2026-12-03T14:12:00Z"),
        }
    }

    fn account(id: &str, calls: f64, pace: f64) -> AccountTime {
        AccountTime {
            account: id.into(),
            calls: 3,
            call_seconds: calls,
            pace_waits: 2,
            pace_seconds: pace,
            ..AccountTime::default()
        }
    }

    #[test]
    fn the_time_view_lists_accounts_slowest_first_with_their_slowest_operations() {
        let mut slow = account("222222222222", 4.0, 30.0);
        slow.retries = 5;
        slow.throttled = 2;
        slow.slowest = vec![OperationTime {
            service: "ECS".into(),
            operation: "DescribeServices".into(),
            calls: 12,
            seconds: 3.5,
            max_seconds: 1.25,
            retries: 5,
            throttled: 2,
        }];
        let time = TimeSpent {
            traces: 1,
            documents: 40,
            accounts: vec![
                account("111111111111", 2.0, 0.5),
                slow,
                account("333333333333", 0.25, 0.0),
            ],
        };
        let night = empty_night();
        assert!(!night.html().contains("time went"));
        let page = night.html_with_time(&time);
        assert!(page.contains("Where the night&#39;s time went"), "{page}");
        let at = |id: &str| page.find(&format!("<tr><td>{id}</td>")).unwrap();
        assert!(at("222222222222") < at("111111111111"));
        assert!(at("111111111111") < at("333333333333"));
        assert!(
            page.contains(
                "<tr><td>222222222222</td><td class=\"n\">34.0 s</td><td class=\"n\">3</td>"
            ),
            "{page}"
        );
        assert!(page.contains("<li>ECS DescribeServices: 12 call(s), 3.5 s (longest 1.2 s), 2 throttled, 5 retries</li>"), "{page}");
        assert!(page.contains("<td class=\"n\">250 ms</td>"), "{page}");
    }

    #[test]
    fn the_time_view_escapes_names_and_survives_any_number() {
        let mut odd = account("<script>alert('x')</script>", f64::NAN, f64::INFINITY);
        odd.slowest = vec![OperationTime {
            service: "決済</td>".into(),
            operation: "Describe\"Ø\"".into(),
            calls: 1,
            seconds: -3.0,
            max_seconds: f64::NEG_INFINITY,
            ..OperationTime::default()
        }];
        let page = empty_night().html_with_time(&TimeSpent {
            traces: 1,
            documents: 1,
            accounts: vec![odd, account("111111111111", 1e300, 0.0)],
        });
        assert!(!page.contains("<script"));
        assert!(page.contains("<td>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</td>"));
        assert!(
            page.contains("決済&lt;/td&gt; Describe&quot;Ø&quot;: 1 call(s), 0 ms (longest 0 ms)"),
            "{page}"
        );
        // The huge one first; nothing in the page says NaN or inf.
        assert!(page.find("111111111111").unwrap() < page.find("&lt;script").unwrap());
        assert!(!page.contains("NaN") && !page.contains("inf"), "{page}");
    }

    #[test]
    fn a_night_without_traced_work_says_so() {
        let page = empty_night().html_with_time(&TimeSpent::default());
        assert!(page.contains("<p>No traced work.</p>"), "{page}");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<b a=\"1\">&'</b>"),
            "&lt;b a=&quot;1&quot;&gt;&amp;&#39;&lt;/b&gt;"
        );
    }
}
