//! `restart-local up` and `restart-local down`, the binaries as on-call runs them: `up` writes
//! the env file (with its process id), starts the night and serves; `down` stops it mid-night
//! and waits until it is gone, and then nothing listens on the stack's ports and the env file
//! is removed.
//! `tools/with-moto` provides the venv (`VENV`); the stack starts its own moto.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use local_stack::up::{PID_VAR, read_env_file};

const FLEET: &str = r#"
accounts:
  - id: "111111111111"
    regions: [eu-west-1]
    clusters:
      - name: app
        services:
          - {name: api, tags: {ecs_task_daily_restart: enabled}}
"#;

struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "local-stack-{what}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `up` process, killed if the test fails before `down` stopped it.
struct UpProcess(Option<Child>);

impl Drop for UpProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn restart_local() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_restart-local"));
    cmd.env("RUST_LOG", "error");
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

/// Waits (at most `limit`) until `path` holds the line naming up's process.
fn wait_for_env_file(path: &Path, up: &mut Child, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains(&format!("export {PID_VAR}="))) {
            return;
        }
        if let Ok(Some(status)) = up.try_wait() {
            panic!(
                "restart-local up exited ({status}) before writing {}",
                path.display()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no env file {} within {} s",
            path.display(),
            limit.as_secs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn up_writes_the_env_file_and_down_stops_everything_mid_night() {
    let dir = TempDir::new("up-down");
    let fleet = dir.0.join("fleet.yaml");
    std::fs::write(&fleet, FLEET).unwrap();
    let env_file = dir.0.join("nested/local.env");
    let mut child = restart_local()
        .arg("up")
        .arg("--fleet")
        .arg(&fleet)
        .args(["--window-seconds", "60", "--start-night"])
        .arg("--env-file")
        .arg(&env_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_env_file(&env_file, &mut child, Duration::from_secs(60));
    let mut up = UpProcess(Some(child));

    let vars = read_env_file(&env_file).unwrap();
    let pid: u32 = vars[PID_VAR].parse().unwrap();
    assert_eq!(pid, up.0.as_ref().unwrap().id());
    assert_eq!(vars["AWS_REGION"], "us-east-1");
    // fleet-sim serves ECS, STS, Config, Organizations, SSM and CloudWatch: one endpoint.
    for service in [
        "STS",
        "CONFIG_SERVICE",
        "ORGANIZATIONS",
        "SSM",
        "CLOUDWATCH",
    ] {
        assert_eq!(
            vars["AWS_ENDPOINT_URL_ECS"],
            vars[&format!("AWS_ENDPOINT_URL_{service}")],
            "{service}"
        );
    }
    assert!(vars["STATE_MACHINE_ARN"].starts_with("arn:aws:states:us-east-1:"));
    assert!(!vars["TABLE_NAME"].is_empty());
    let ports: Vec<u16> = [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_ECS",
        "RESTART_LOCAL_LAMBDA_HOST",
    ]
    .iter()
    .map(|v| port_of(&vars[*v]))
    .collect();
    assert!(ports.iter().all(|p| listening(*p)), "{ports:?}");

    // A second `up` with the same env file is refused: the first one is still up.
    let again = restart_local()
        .arg("up")
        .arg("--fleet")
        .arg(&fleet)
        .arg("--env-file")
        .arg(&env_file)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        text(&again).contains("a local stack is already up"),
        "{}",
        text(&again)
    );

    let down = restart_local()
        .arg("down")
        .arg("--env-file")
        .arg(&env_file)
        .output()
        .unwrap();
    assert!(down.status.success(), "{}", text(&down));
    assert!(
        text(&down).contains(&format!("Stopped the local stack (process {pid})")),
        "{}",
        text(&down)
    );
    let out = up.0.take().unwrap().wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("export TABLE_NAME="), "{printed}");
    assert!(
        printed.contains(&format!(
            "# Night started: {}:",
            vars["STATE_MACHINE_ARN"].replace(":stateMachine:", ":execution:")
        )),
        "{printed}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SIGTERM: stopping the local stack"),
        "{}",
        text(&out)
    );
    assert!(!env_file.exists(), "up removes its env file on the way out");
    let open: Vec<u16> = ports.iter().copied().filter(|p| listening(*p)).collect();
    assert!(open.is_empty(), "still listening after down: {open:?}");
}

#[test]
fn down_without_a_stack_says_so() {
    let dir = TempDir::new("down-none");
    let out = restart_local()
        .arg("down")
        .arg("--env-file")
        .arg(dir.0.join("local.env"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("is a stack up?"), "{}", text(&out));
}

#[test]
fn up_takes_a_fleet_a_window_an_env_file_and_start_night() {
    let out = restart_local().args(["up", "--help"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let help = text(&out);
    for flag in [
        "--fleet <FILE>",
        "--window-seconds <N>",
        "--env-file <PATH>",
        "--start-night",
        "target/local.env",
        "--change-calendar <NAME>",
        "--blocking-alarm-prefix <PREFIX>",
    ] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
}
