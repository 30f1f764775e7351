//! `restart-local`, the local stack's binary, as a person runs it: its flags, and its input
//! checked before anything starts.

use std::process::{Command, Output};

fn restart_local(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_restart-local"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("restart-local runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn run_takes_a_fleet_a_window_and_a_report_file() {
    let out = restart_local(&["run", "--help"]);
    assert!(out.status.success(), "{}", text(&out));
    let help = text(&out);
    for flag in [
        "--fleet <FILE>",
        "--window-seconds <N>",
        "--report-json <FILE>",
        "--change-calendar <NAME>",
        "--blocking-alarm-prefix <PREFIX>",
    ] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
}

#[test]
fn a_change_calendar_the_functions_would_refuse_is_refused_before_anything_starts() {
    let fleet =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo-fleet.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_restart-local"))
        .args(["run", "--fleet"])
        .arg(&fleet)
        .args(["--change-calendar", "no spaces allowed"])
        .env("RUST_LOG", "error")
        .output()
        .expect("restart-local runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = text(&out);
    assert!(err.contains("--change-calendar:"), "{err}");
    assert!(err.contains("is not a change calendar"), "{err}");
    assert!(!err.contains("starting moto"), "{err}");
}

#[test]
fn a_missing_fleet_file_is_refused_before_anything_starts() {
    let out = restart_local(&["run", "--fleet", "/nonexistent/fleet.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = text(&out);
    assert!(
        err.contains("reading the fleet file /nonexistent/fleet.yaml"),
        "{err}"
    );
}

#[test]
fn outside_a_checkout_it_says_where_infra_is_looked_for() {
    let dir = std::env::temp_dir();
    let fleet =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo-fleet.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_restart-local"))
        .args(["run", "--fleet"])
        .arg(&fleet)
        .current_dir(&dir)
        .env_remove("INFRA_DIR")
        .env("RUST_LOG", "error")
        .output()
        .expect("restart-local runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = text(&out);
    assert!(err.contains("no infra/template.yaml in"), "{err}");
    assert!(err.contains("set INFRA_DIR"), "{err}");
}
