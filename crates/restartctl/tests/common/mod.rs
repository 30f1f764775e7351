//! A night in a moto table, written through the store, and `restartctl` aimed at it.
//!
//! Night 2026-11-22, two batches (00:00Z and 00:10Z):
//! - batch 1: app/api completed, app/web failed, data/etl rolled back;
//! - batch 2: app/worker started, data/reports planned;
//! - skipped: app/batch-job opted out, 222222222222 ops/legacy untagged.
//!
//! app/api also has a record of night 2026-11-21 (completed), for its history.

#![allow(dead_code)]

use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use restart_aws::dynamodb::DynamoStore;
use restart_core::catalog::CatalogRecord;
use restart_core::eligibility::SkipReason;
use restart_core::ids::ServiceId;
use restart_core::night::{NightRecord, PlanSummary};
use restart_core::outcome::NightState;
use restart_core::planner::PlannedBatch;
use restart_core::ports::{CatalogStore, NightStore, RestartStore};
use restart_core::tag::TagStateKind;

pub const A: &str = "111111111111";
pub const B: &str = "222222222222";
pub const NIGHT: &str = "2026-11-22";

pub fn night() -> NaiveDate {
    NIGHT.parse().unwrap()
}

pub fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

pub fn sid(account: &str, cluster: &str, service: &str) -> ServiceId {
    testkit::fixtures::service_id(account, cluster, service)
}

pub fn arn(account: &str, cluster: &str, service: &str) -> String {
    sid(account, cluster, service).arn("aws").to_string()
}

fn catalog(id: &ServiceId, tag: Option<&str>, state: TagStateKind) -> CatalogRecord {
    let owner = if id.cluster == "data" {
        "analytics"
    } else {
        "payments"
    };
    CatalogRecord {
        tag_value: tag.map(str::to_owned),
        tag_state: state,
        first_seen: "2026-11-01".parse().unwrap(),
        ..testkit::fixtures::enrolled_record(id.clone(), owner, night())
    }
}

fn planned(c: &CatalogRecord, night: NaiveDate, batch: u32) -> NightRecord {
    let start = night.and_hms_opt(0, 0, 0).unwrap().and_utc()
        + TimeDelta::minutes(10 * i64::from(batch - 1));
    NightRecord::planned(c, night, batch, start)
}

/// A table in moto holding the night described above.
pub struct Fixture {
    pub table: String,
    pub store: DynamoStore,
}

impl Fixture {
    pub async fn new() -> Self {
        let f = Self::empty().await;
        f.fill().await;
        f
    }

    /// A table with nothing in it yet: [`Fixture::fill`] writes the night.
    pub async fn empty() -> Self {
        let client = testkit::dynamodb_client();
        let table = testkit::create_table(&client).await;
        let store = DynamoStore::new(client, table.clone(), 90);
        Fixture { table, store }
    }

    /// Writes the catalog and the night described at the top of this file.
    pub async fn fill(&self) {
        let tagged = |a: &str, c: &str, s: &str| {
            catalog(
                &sid(a, c, s),
                Some("2026-11-21T00:07:00Z"),
                TagStateKind::Enrolled,
            )
        };
        let api = tagged(A, "app", "api");
        let web = tagged(A, "app", "web");
        let etl = tagged(A, "data", "etl");
        let worker = tagged(A, "app", "worker");
        let reports = tagged(A, "data", "reports");
        let batch_job = catalog(
            &sid(A, "app", "batch-job"),
            Some("disabled"),
            TagStateKind::OptedOut,
        );
        let legacy = catalog(&sid(B, "ops", "legacy"), None, TagStateKind::Untagged);
        let all = [&api, &web, &etl, &worker, &reports, &batch_job, &legacy];
        self.store
            .put_catalog(&all.iter().map(|c| (*c).clone()).collect::<Vec<_>>())
            .await
            .unwrap();

        let n = night();
        let batches = [
            PlannedBatch {
                batch: 1,
                start_at: t("2026-11-22T00:00:00Z"),
                size: 3,
            },
            PlannedBatch {
                batch: 2,
                start_at: t("2026-11-22T00:10:00Z"),
                size: 2,
            },
        ];
        self.store.put_batches(n, &batches).await.unwrap();
        let records = vec![
            planned(&api, n, 1),
            planned(&web, n, 1),
            planned(&etl, n, 1),
            planned(&worker, n, 2),
            planned(&reports, n, 2),
            NightRecord::skipped(&batch_job, n, SkipReason::OptedOut),
            NightRecord::skipped(&legacy, n, SkipReason::Untagged),
        ];
        self.store.create_records(&records).await.unwrap();

        self.restart(
            &records[0],
            "00:00:05",
            1000,
            Some(("00:07:10", NightState::Completed, None)),
        )
        .await;
        self.restart(
            &records[1],
            "00:00:06",
            2000,
            Some((
                "00:12:40",
                NightState::Failed,
                Some("deployment ecs-svc/2001 FAILED: tasks failed to start (exit code 1)"),
            )),
        )
        .await;
        self.restart(
            &records[2],
            "00:00:07",
            3000,
            Some((
                "00:09:30",
                NightState::RolledBack,
                Some("the PRIMARY deployment is ecs-svc/3000, not ours (ecs-svc/3001): rolled back by the circuit breaker"),
            )),
        )
        .await;
        self.restart(&records[3], "00:10:04", 4000, None).await;

        self.store
            .put_plan_summary(&PlanSummary {
                night: n,
                batches: 2,
                planned: 5,
                skipped: 2,
                written_at: t("2026-11-22T00:00:02Z"),
            })
            .await
            .unwrap();

        // The night before: api completed.
        let before: NaiveDate = "2026-11-21".parse().unwrap();
        let old = planned(&api, before, 1);
        self.store
            .create_records(std::slice::from_ref(&old))
            .await
            .unwrap();
        let started = NightRecord {
            state: NightState::Started,
            started_at: Some(t("2026-11-21T00:00:04Z")),
            previous_deployment: Some("ecs-svc/0900".into()),
            deployment_id: Some("ecs-svc/1000".into()),
            ..old.clone()
        };
        self.store.claim(Some(&old), &started, 10).await.unwrap();
        let done = NightRecord {
            state: NightState::Completed,
            finished_at: Some(t("2026-11-21T00:06:58Z")),
            duration_seconds: Some(414),
            ..started.clone()
        };
        assert!(self.store.finish(&started, &done).await.unwrap());
    }

    /// Starts `planned` at `at` (UTC time of the night) with deployment ecs-svc/<dep+1>, and
    /// finishes it when `end` says so.
    pub async fn restart(
        &self,
        planned: &NightRecord,
        at: &str,
        dep: u32,
        end: Option<(&str, NightState, Option<&str>)>,
    ) {
        let on = |hms: &str| t(&format!("{NIGHT}T{hms}Z"));
        let started = NightRecord {
            state: NightState::Started,
            started_at: Some(on(at)),
            previous_deployment: Some(format!("ecs-svc/{dep}")),
            deployment_id: Some(format!("ecs-svc/{}", dep + 1)),
            ..planned.clone()
        };
        let claim = self.store.claim(Some(planned), &started, 10).await.unwrap();
        assert_eq!(claim, restart_core::ports::Claim::Claimed);
        if let Some((when, state, detail)) = end {
            let finished = on(when);
            let to = NightRecord {
                state,
                finished_at: Some(finished),
                duration_seconds: (state == NightState::Completed)
                    .then(|| u32::try_from((finished - on(at)).num_seconds()).unwrap()),
                detail: detail.map(str::to_owned),
                ..started.clone()
            };
            assert!(self.store.finish(&started, &to).await.unwrap());
        }
    }

    /// Finishes the rest of the night: worker completes, reports starts and completes.
    pub async fn finish_the_night(&self) {
        let n = night();
        let worker = self
            .store
            .find_record(n, &sid(A, "app", "worker"))
            .await
            .unwrap()
            .unwrap();
        let done = NightRecord {
            state: NightState::Completed,
            finished_at: Some(t("2026-11-22T00:16:00Z")),
            duration_seconds: Some(356),
            ..worker.clone()
        };
        assert!(self.store.finish(&worker, &done).await.unwrap());
        let reports = self
            .store
            .find_record(n, &sid(A, "data", "reports"))
            .await
            .unwrap()
            .unwrap();
        self.restart(
            &reports,
            "00:10:05",
            5000,
            Some(("00:15:00", NightState::Completed, None)),
        )
        .await;
    }

    /// `restartctl` aimed at moto and this table, with no AWS configuration from the machine.
    pub fn cmd(&self) -> Command {
        let mut cmd = restartctl();
        cmd.env("TABLE_NAME", &self.table);
        cmd
    }
}

/// `restartctl` aimed at moto (`--region`, `--endpoint-url`), with fake credentials and no
/// table.
pub fn restartctl() -> Command {
    let mut cmd = bare();
    cmd.args([
        "--region",
        testkit::REGION,
        "--endpoint-url",
        &testkit::moto_endpoint(),
    ]);
    cmd
}

/// `restartctl` with fake credentials and no AWS configuration from the machine: no region,
/// no endpoint, no table.
pub fn bare() -> Command {
    let mut cmd = Command::cargo_bin("restartctl").unwrap();
    for var in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "TABLE_NAME",
        "STATE_MACHINE_ARN",
        "TIMEZONE",
        "WINDOW_START",
        "WINDOW_END",
        "MEMBER_ROLE_NAME",
        "EXTERNAL_ID",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_ACCESS_KEY_ID", testkit::ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", testkit::SECRET_ACCESS_KEY)
        .env("AWS_CONFIG_FILE", "/nonexistent/restartctl-test-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/restartctl-test-credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("USER", "oncall");
    cmd
}

/// Runs `cmd` and returns (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Runs `cmd`, expects success, returns stdout.
pub fn ok(cmd: &mut Command) -> String {
    let (code, stdout, stderr) = run(cmd);
    assert_eq!(code, 0, "exit {code}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    stdout
}

/// Runs `cmd`, expects failure, returns stderr.
pub fn fails(cmd: &mut Command) -> String {
    let (code, stdout, stderr) = run(cmd);
    assert_ne!(
        code, 0,
        "expected a failure\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stderr
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}):\n{s}"))
}

/// A running `restartctl` whose standard error is read line by line as it comes.
pub struct Watched {
    pub child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    pub stderr: Vec<String>,
}

impl Watched {
    pub fn spawn(cmd: &mut Command) -> Self {
        use std::io::BufRead;
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            stderr: Vec::new(),
        }
    }

    /// Waits (at most a minute) for a line of standard error containing `text`.
    pub fn wait_for(&mut self, text: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(text);
                    self.stderr.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no line with {text:?} within a minute; stderr so far:\n{}",
            self.stderr.join("\n")
        );
    }

    /// Waits for the end: (exit code, stdout, all of stderr).
    pub fn finish(mut self) -> (Option<i32>, String, String) {
        let out = self.child.wait_with_output().unwrap();
        self.stderr.extend(self.lines.iter());
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            self.stderr.join("\n"),
        )
    }
}
