//! The `start` mode, and the pass over a batch's planned records that `poll` shares: cluster by
//! cluster, within the invocation's time budget ([`START_BUDGET`](crate::START_BUDGET)), each
//! eligible service started (see `claim`), what cannot start now deferred, and a cluster whose
//! account cannot be reached handled alone.

use std::collections::{BTreeMap, BTreeSet};
use tokio::time::Instant;

use chrono::NaiveDate;
use futures::stream::{self, StreamExt};
use tracing::Instrument;

use restart_core::eligibility::{self, SkipReason, Tonight};
use restart_core::guard::{self, AlarmQuery, AlarmScope, FiringAlarm};
use restart_core::ids::ServiceId;
use restart_core::night::NightRecord;
use restart_core::outcome::NightState;
use restart_core::ports::{ControlError, FleetControl};
use restart_core::service::ServiceSnapshot;
use restart_core::tag::TagState;
use restart_core::window::NightWindow;
use restart_core::{ErrorType, HandlerError};

use crate::claim::{Begun, CLAIM_LEASE};
use crate::cluster::{CLUSTER_CONCURRENCY, Tally, account_span, by_cluster, ids_cluster, sum};
use crate::guards::Holds;
use crate::{Restarter, StartOutput, Store, journal};

impl<F, S> Restarter<F, S>
where
    F: FleetControl,
    S: Store,
{
    /// `start`: see the crate documentation.
    #[tracing::instrument(skip(self))]
    pub async fn start(
        &self,
        night: NaiveDate,
        batch: u32,
        outside_window: bool,
    ) -> Result<StartOutput, HandlerError> {
        self.check_batch(night, batch).await?;
        let read_at = self.clock.now();
        let records = self.store.read_batch_guarded(night, batch).await?;
        let (out, after) = journal::noting(
            &records,
            self.start_records(night, batch, &records, outside_window),
        )
        .await;
        self.keep_counts(night, batch, read_at, &after).await;
        out
    }

    /// `start` of the records read.
    async fn start_records(
        &self,
        night: NaiveDate,
        batch: u32,
        records: &[NightRecord],
        outside_window: bool,
    ) -> Result<StartOutput, HandlerError> {
        // Past the window nothing starts, paused or not: what is left ends `window_closed`, so
        // the batch ends instead of waiting for a resume that cannot start anything.
        let closed = self.close_window(night, records, outside_window).await?;
        let records = journal::now(records);
        // Once the window has closed nothing can start, and a pause holds nothing back: the
        // batch goes on to judge what is in flight and ends, instead of waiting on a resume.
        let window_closed = !outside_window && self.clock.now() >= self.window(night).end;
        if !window_closed {
            self.refuse_if_paused().await?;
        }
        if let Some(halt) = self.store.night_tally(night).await?.halted {
            let halted = self.halt_planned(&records, &halt).await?;
            tracing::warn!(night = %night, batch, halted, reason = %halt.reason, "night halted");
            return Err(HandlerError::new(
                ErrorType::Halted,
                format!(
                    "night {night} was halted at {}: {}; batch {batch}'s {halted} planned \
                     services are recorded halted",
                    halt.at, halt.reason
                ),
            ));
        }
        let pass = self.pass(night, outside_window, true);
        let mut tally = self.advance(records, &pass).await?;
        tally.skipped += closed;
        self.emit(night, Some(batch), "start", &tally);
        Ok(StartOutput {
            night,
            batch,
            started: tally.started,
            deferred: tally.deferred,
            skipped: tally.skipped,
            refused: tally.refused,
            dry_run: self.config.dry_run,
            wait_seconds: self.wait_seconds(),
        })
    }

    /// How one invocation works through records.
    pub(crate) fn pass(&self, night: NaiveDate, outside_window: bool, may_deploy: bool) -> Pass {
        Pass {
            window: self.window(night),
            deadline: Instant::now() + self.budget,
            outside_window,
            may_deploy,
        }
    }

    /// Starts what can start among planned records (and settles claimed starts that have no
    /// deployment yet), cluster by cluster, until the pass's deadline. A cluster whose account
    /// cannot be reached or answers with errors is handled alone: every other cluster goes on.
    pub(crate) async fn advance(
        &self,
        records: Vec<NightRecord>,
        pass: &Pass,
    ) -> Result<Tally, HandlerError> {
        let todo: Vec<NightRecord> = records
            .into_iter()
            .filter(|r| {
                r.state == NightState::Planned
                    || (r.state == NightState::Started && r.deployment_id.is_none())
            })
            .collect();
        // Claims may send UpdateService too (a lapsed one with nothing since its claim): the
        // guards hold them like planned restarts.
        let waiting: Vec<&NightRecord> = todo.iter().collect();
        let holds = if pass.may_deploy {
            self.holds(&waiting).await?
        } else {
            Holds::default()
        };
        let mut frozen = 0;
        let todo = match &holds.frozen {
            None => todo,
            Some(detail) => {
                // A change freeze: no planned restart starts, and each ends `change_freeze`.
                // Claims still settle (their UpdateService may have run before the freeze).
                let (claims, planned): (Vec<_>, Vec<_>) = todo
                    .into_iter()
                    .partition(|r| r.state == NightState::Started);
                for r in &planned {
                    let to = NightRecord {
                        detail: Some(detail.clone()),
                        ..r.now_skipped(SkipReason::ChangeFreeze)
                    };
                    if self.moves().move_record(r, &to).await? {
                        frozen += 1;
                    }
                }
                claims
            }
        };
        let mut tally = sum(stream::iter(by_cluster(todo))
            .map(|group| {
                let span = account_span(&group);
                self.advance_cluster(pass, &holds, group).instrument(span)
            })
            .buffer_unordered(CLUSTER_CONCURRENCY)
            .collect()
            .await)?;
        tally.skipped += frozen;
        Ok(tally)
    }

    async fn advance_cluster(
        &self,
        pass: &Pass,
        holds: &Holds,
        group: Vec<NightRecord>,
    ) -> Result<Tally, HandlerError> {
        let mut tally = Tally::default();
        let now = self.clock.now();
        // Claims still under their lease are left to the invocation that holds them (see
        // `claim`). Lapsed ones are settled here, after one look at ECS: `expired` ones (no
        // deployment within the timeout) end unless a deployment since the claim says
        // otherwise.
        let mut todo = Vec::with_capacity(group.len());
        for r in group {
            if r.state != NightState::Started {
                todo.push((r, false));
                continue;
            }
            let claimed_at = r.started_at.unwrap_or(now);
            let leased_at = r.lease_at.unwrap_or(claimed_at);
            if now - leased_at >= CLAIM_LEASE {
                let expired = now - claimed_at >= self.config.restart_timeout;
                todo.push((r, expired));
            }
        }
        let planned = |records: &[(NightRecord, bool)]| {
            records
                .iter()
                .filter(|(r, _)| r.state == NightState::Planned)
                .count() as u64
        };
        if crate::out_of_time() {
            // The invocation's time is spent: what is left is the next poll's.
            tally.deferred += planned(&todo);
            return Ok(tally);
        }
        if Instant::now() >= pass.deadline {
            // Out of start budget: nothing starts, and no claim is sent UpdateService; lapsed
            // claims are still settled.
            tally.deferred += planned(&todo);
            todo.retain(|(r, _)| r.state == NightState::Started);
        }
        // Planned restarts a blocking alarm holds wait for a later poll: their cluster is not
        // described for them.
        todo.retain(|(r, _)| {
            let held = r.state == NightState::Planned && holds.firing(&r.id);
            if held {
                tally.deferred += 1;
                tally.held += 1;
            }
            !held
        });
        if todo.is_empty() {
            return Ok(tally);
        }
        let ids: Vec<ServiceId> = todo.iter().map(|(r, _)| r.id.clone()).collect();
        let live = match self.fleet.describe(&ids).await {
            Ok(live) => live,
            Err(e) => {
                let why = match &e {
                    ControlError::AccessDenied(m) => format!("account unreachable: {m}"),
                    other => format!("ECS could not be asked: {other}"),
                };
                let (claims, planned_records): (Vec<_>, Vec<_>) = todo
                    .into_iter()
                    .partition(|(r, _)| r.state == NightState::Started);
                let planned_records: Vec<NightRecord> =
                    planned_records.into_iter().map(|(r, _)| r).collect();
                if let ControlError::AccessDenied(m) = &e {
                    // The account was lost: its planned restarts end here; claims time out.
                    tally.skipped += self.skip_unreachable(&planned_records, m).await?;
                    tracing::warn!(cluster = %ids_cluster(&ids), error = %m, "account unreachable");
                } else {
                    // Throttled, a 5xx, an answer not understood: the next poll looks again.
                    tally.deferred += planned_records.len() as u64;
                    tracing::warn!(cluster = %ids_cluster(&ids), error = %e, "describe failed; deferred");
                }
                for (r, _) in claims.iter().filter(|(_, expired)| *expired) {
                    if let Some(held) = self.take_over(r).await? {
                        let lost = matches!(e, ControlError::AccessDenied(_));
                        tally.add(self.expire_claim(&held, &why, lost).await?);
                    }
                }
                return Ok(tally);
            }
        };
        let live: BTreeMap<&str, &ServiceSnapshot> =
            live.iter().map(|s| (s.id.service.as_str(), s)).collect();
        let service_alarms = self.service_alarms(&ids[0], &todo, &live).await;
        let window = pass.window;
        let not_after = (!pass.outside_window).then_some(window.end);
        let mut full = false;
        for (r, expired) in &todo {
            let observed = live.get(r.id.service.as_str()).copied();
            // The window is read from the clock for each service: a pass that waited on its
            // account's pace must not start what the window's end has closed.
            let closed = not_after.is_some_and(|end| self.clock.now() >= end);
            if let Some(m) = &tally.unreachable {
                if r.state == NightState::Planned {
                    let m = m.clone();
                    tally.skipped += self.skip_unreachable(std::slice::from_ref(r), &m).await?;
                }
                continue;
            }
            if r.state == NightState::Started {
                let may_deploy = pass.may_deploy
                    && !closed
                    && Instant::now() < pass.deadline
                    && holds.frozen.is_none()
                    && holds.of(&r.id).is_none();
                tally.add(
                    self.settle_claim(r, observed, *expired, may_deploy, not_after)
                        .await?,
                );
                continue;
            }
            if full || Instant::now() >= pass.deadline || !pass.may_deploy || closed {
                tally.deferred += 1;
                continue;
            }
            if holds.of(&r.id).is_some() {
                // Its account's alarms could not be read, though ECS answers: it waits.
                tally.deferred += 1;
                tally.held += 1;
                continue;
            }
            let tag = observed.map_or(TagState::Untagged, |s| {
                TagState::from_tags(&s.tags, &self.config.tag_key, window.start.date_naive())
            });
            let tonight = Tonight {
                window_start: window.start,
                restarted_tonight: false,
            };
            if let Err(reason) = eligibility::check(observed, &tag, &tonight, &self.config.policy) {
                if self.moves().move_record(r, &r.now_skipped(reason)).await? {
                    tracing::info!(service = %r.id, %reason, "skipped at the live check");
                    tally.skipped += 1;
                }
                continue;
            }
            let Some(observed) = observed else { continue };
            let within = self.config.skip_if_deployed_within;
            if let Some(d) =
                eligibility::recent_deployment(observed, &tag, self.clock.now(), within)
            {
                let to = NightRecord {
                    detail: Some(eligibility::recent_deployment_detail(d, within)),
                    ..r.now_skipped(SkipReason::RecentlyDeployed)
                };
                if self.moves().move_record(r, &to).await? {
                    tracing::info!(service = %r.id, deployment = %d.id, "skipped: recently deployed");
                    tally.skipped += 1;
                }
                continue;
            }
            match service_alarms.check(observed) {
                AlarmCheck::Firing(mine) => {
                    let to = NightRecord {
                        detail: Some(guard::service_alarm_detail(&mine)),
                        ..r.now_skipped(SkipReason::AlarmFiring)
                    };
                    if self.moves().move_record(r, &to).await? {
                        tracing::info!(service = %r.id, "skipped: a deployment alarm is firing");
                        tally.skipped += 1;
                    }
                    continue;
                }
                AlarmCheck::Unknown => {
                    // Its deployment alarms could not be read: it waits for a later poll.
                    tally.deferred += 1;
                    tally.held += 1;
                    continue;
                }
                AlarmCheck::Clear => {}
            }
            // Only on-call's explicit `outside_window` gets here after the window's end: the
            // record says so.
            let base = if self.clock.now() >= window.end {
                NightRecord {
                    detail: Some(
                        "started after the window's end at on-call's request (outside_window)"
                            .into(),
                    ),
                    ..r.clone()
                }
            } else {
                r.clone()
            };
            let begun = self.begin(Some(r), base, observed, not_after).await?;
            full = begun == Begun::ClusterFull;
            tally.begun(begun);
        }
        Ok(tally)
    }

    /// With `BLOCK_ON_SERVICE_ALARMS`, which of the deployment alarms of the planned services
    /// among `todo` are in ALARM: one DescribeAlarms for the cluster.
    async fn service_alarms(
        &self,
        cluster: &ServiceId,
        todo: &[(NightRecord, bool)],
        live: &BTreeMap<&str, &ServiceSnapshot>,
    ) -> DeploymentAlarms {
        if !self.config.block_on_service_alarms {
            return DeploymentAlarms::NotAsked;
        }
        let names: BTreeSet<String> = todo
            .iter()
            .filter(|(r, _)| r.state == NightState::Planned)
            .filter_map(|(r, _)| live.get(r.id.service.as_str()))
            .flat_map(|s| s.deployment_alarms.iter().cloned())
            .collect();
        if names.is_empty() {
            return DeploymentAlarms::NotAsked;
        }
        let scope = AlarmScope::Member {
            account: cluster.account.clone(),
            region: cluster.region.clone(),
        };
        let query = AlarmQuery::Names(names.into_iter().collect());
        match self.guards.firing_alarms(&scope, &query).await {
            Ok(firing) => DeploymentAlarms::Read(firing),
            Err(e) => {
                tracing::warn!(cluster = %cluster.cluster_key(), error = %e, "deployment alarms not read; their services wait");
                DeploymentAlarms::Unreadable
            }
        }
    }

    /// Moves the planned records among `records` to `skipped/account_unreachable`, with the
    /// denial in their detail. How many moved.
    async fn skip_unreachable(
        &self,
        records: &[NightRecord],
        denial: &str,
    ) -> Result<u64, HandlerError> {
        let mut skipped = 0;
        for r in records.iter().filter(|r| r.state == NightState::Planned) {
            let to = NightRecord {
                detail: Some(denial.to_owned()),
                ..r.now_skipped(SkipReason::AccountUnreachable)
            };
            if self.moves().move_record(r, &to).await? {
                skipped += 1;
            }
        }
        Ok(skipped)
    }
}

/// How one invocation works through a batch's records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pass {
    window: NightWindow,
    /// Nothing new starts after this (the invocation's time budget).
    deadline: Instant,
    /// On-call asked to start restarts after the window's end.
    outside_window: bool,
    /// False once the night is halted: claims are settled from what ECS shows, never by
    /// sending UpdateService.
    may_deploy: bool,
}

/// What `BLOCK_ON_SERVICE_ALARMS` read of a cluster's deployment alarms.
#[derive(Debug)]
enum DeploymentAlarms {
    /// Off, or no planned service of the cluster has a deployment alarm.
    NotAsked,
    /// Those in ALARM.
    Read(Vec<FiringAlarm>),
    /// DescribeAlarms failed: the services that have deployment alarms wait.
    Unreadable,
}

/// One service's deployment alarms, as far as they were read.
#[derive(Debug)]
enum AlarmCheck {
    /// None of its own is in ALARM, or it has none, or none were asked for.
    Clear,
    /// Its own in ALARM: it is skipped `alarm_firing`.
    Firing(Vec<FiringAlarm>),
    /// It has some and they could not be read: it waits for a later poll.
    Unknown,
}

impl DeploymentAlarms {
    /// What the alarms read say of `observed`: only its own deployment alarms count.
    fn check(&self, observed: &ServiceSnapshot) -> AlarmCheck {
        if observed.deployment_alarms.is_empty() {
            return AlarmCheck::Clear;
        }
        match self {
            Self::NotAsked => AlarmCheck::Clear,
            Self::Unreadable => AlarmCheck::Unknown,
            Self::Read(firing) => {
                let mine: Vec<FiringAlarm> = firing
                    .iter()
                    .filter(|a| observed.deployment_alarms.contains(&a.name))
                    .cloned()
                    .collect();
                if mine.is_empty() {
                    AlarmCheck::Clear
                } else {
                    AlarmCheck::Firing(mine)
                }
            }
        }
    }
}
