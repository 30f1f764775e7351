//! moto (DynamoDB, SNS, SQS, Step Functions in execute mode) as a child process that is always
//! stopped: killed when [`Moto`] is dropped (also while a panic unwinds), and exiting by itself
//! when this process dies however it dies (a watchdog thread in moto's own Python process ends
//! it when its standard input, a pipe from us, closes).

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::http;

/// Runs `moto_server` (the console script's own entry point) with a watchdog on stdin, and one
/// change to moto's DynamoDB: TransactWriteItems backs up only the items a transaction
/// touches, instead of deep-copying every table it names before each write (O(table size)
/// per call: with the 4,000 items of a 2,000-service night, each transaction took ~0.1 s of
/// moto's single CPU and a night's thousands of transactions ran for many minutes). The
/// outcome is the same: all or nothing. Writes (PutItem, UpdateItem, DeleteItem and
/// TransactWriteItems) are also serialized, as each is atomic in DynamoDB: moto's server is
/// threaded, and a cancelled transaction's rollback must not undo a concurrent write (moto's
/// own whole-table rollback does, which loses the night's counter increments).
const LAUNCHER: &str = r#"
import copy, os, sys, threading

def watch():
    sys.stdin.read()
    os._exit(0)

threading.Thread(target=watch, daemon=True).start()

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table

Table.__deepcopy__ = lambda self, memo: self
_transact = DynamoDBBackend.transact_write_items

def _key(backend, op):
    if "Key" in op:
        return op["Key"]
    table = backend.get_table(op["TableName"])
    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = op["Item"][table.range_key_attr]
    return key

def transact_write_items(self, transact_items):
    saved = []
    for entry in transact_items:
        try:
            _, op = next(iter(entry.items()))
            key = _key(self, op)
            current = self.get_item(op["TableName"], key)
            saved.append((op["TableName"], key, None if current is None else copy.deepcopy(current.to_json()["Attributes"])))
        except Exception:
            pass
    try:
        return _transact(self, transact_items)
    except Exception:
        for table_name, key, attrs in reversed(saved):
            if attrs is None:
                if self.get_item(table_name, key) is not None:
                    self.delete_item(table_name, key)
            else:
                self.put_item(table_name, attrs)
        raise

DynamoDBBackend.transact_write_items = transact_write_items

_writes = threading.RLock()

def _serialized(method):
    def run(self, *args, **kwargs):
        with _writes:
            return method(self, *args, **kwargs)
    return run

for _name in ("put_item", "update_item", "delete_item", "transact_write_items"):
    setattr(DynamoDBBackend, _name, _serialized(getattr(DynamoDBBackend, _name)))

from moto.server import main
main(sys.argv[1:])
"#;

/// A running moto server on a loopback port.
#[derive(Debug)]
pub struct Moto {
    child: Option<Child>,
    /// Held open: moto exits when it closes.
    stdin: Option<ChildStdin>,
    pub port: u16,
    pub log: PathBuf,
}

/// The project's virtual environment: `$VENV`, else the nearest `.venv` above the current
/// directory.
pub fn find_venv() -> anyhow::Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(v) = std::env::var_os("VENV").filter(|v| !v.is_empty()) {
        candidates.push(PathBuf::from(v));
    }
    if let Ok(cwd) = std::env::current_dir() {
        candidates.extend(cwd.ancestors().map(|d| d.join(".venv")));
    }
    candidates
        .iter()
        .find(|v| v.join("bin/moto_server").is_file() && v.join("bin/python").is_file())
        .cloned()
        .ok_or_else(|| {
            anyhow::anyhow!(
                "moto is not installed: no moto_server in {}; run `make tools` (it installs moto \
                 into .venv), or set VENV to a virtual environment that has moto[server]",
                candidates
                    .iter()
                    .map(|c| c.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

impl Moto {
    /// Starts moto on a free port with `MOTO_PORT` = `lambda_port` (its Step Functions
    /// interpreter invokes Lambda through `http://localhost:$MOTO_PORT`) and `TZ=UTC` (its Wait
    /// states compare UTC timestamps with the local time), waits until it answers and turns on
    /// Step Functions' execute mode.
    pub async fn start(venv: &Path, lambda_port: u16) -> anyhow::Result<Moto> {
        let port = http::free_port()?;
        let log = std::env::temp_dir().join(format!("local-stack-moto-{port}.log"));
        let log_file = std::fs::File::create(&log)
            .with_context(|| format!("creating moto's log {}", log.display()))?;
        let mut child = Command::new(venv.join("bin/python"))
            .args(["-c", LAUNCHER, "-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_PORT", lambda_port.to_string())
            .env("TZ", "UTC")
            .stdin(Stdio::piped())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting moto from {}", venv.display()))?;
        let stdin = child.stdin.take();
        let mut moto = Moto {
            child: Some(child),
            stdin,
            port,
            log,
        };
        moto.wait_ready().await?;
        http::post_json(
            &http::client(),
            &format!("{}/moto-api/config", moto.endpoint()),
            &serde_json::json!({
                "stepfunctions": {"execute_state_machine": true},
                "lambda": {"use_docker": false}
            }),
        )
        .await
        .context("turning on moto's Step Functions execute mode")?;
        tracing::info!(endpoint = %moto.endpoint(), log = %moto.log.display(), "moto is serving");
        Ok(moto)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let client = http::client();
        let url = format!("{}/moto-api/data.json", self.endpoint());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                anyhow::bail!(
                    "moto exited ({status}) before it answered on port {}; the end of its log {}:\n{}",
                    self.port,
                    self.log.display(),
                    self.log_tail()
                );
            }
            if http::send(&client, hyper::Method::GET, &url, None)
                .await
                .is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "moto did not answer on port {} within 30 s; the end of its log {}:\n{}",
                    self.port,
                    self.log.display(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines of moto's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stops moto and waits for it.
    pub fn stop(&mut self) {
        self.stdin.take();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            tracing::debug!(port = self.port, "moto stopped");
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}
