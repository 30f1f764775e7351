//! `report --html`: the page is self-contained, tells the night, and renders in headless
//! Chromium (Debian's `chromium`, installed by `make chromium`, a prerequisite of `make test`).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{A, Fixture, arn, fails, json, ok};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(testkit::unique_name(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Debian's chromium: `CHROMIUM`, else /usr/bin/chromium.
fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.is_file(),
        "{} is missing: run `make chromium` (apt-get install chromium), or set CHROMIUM",
        path.display()
    );
    path
}

/// Renders `page` in headless Chromium and returns the screenshot's path.
fn screenshot(page: &Path, dir: &Path) -> PathBuf {
    let shot = dir.join("shot.png");
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--window-size=1200,900",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium failed: {status}");
            break;
        }
        if started.elapsed() > Duration::from_secs(90) {
            child.kill().unwrap();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(shot.is_file(), "chromium wrote no screenshot");
    shot
}

/// (width, height, RGB pixels) of a PNG.
fn pixels(png_path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    let px = buf[..info.buffer_size()]
        .chunks(step)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    (info.width, info.height, px)
}

#[tokio::test]
async fn the_report_is_self_contained_and_renders_in_chromium() {
    let f = Fixture::new().await;
    let dir = scratch("restartctl-report");
    let page = dir.join("night.html");
    let out = ok(f
        .cmd()
        .args(["report", "--night", "2026-11-22", "--html"])
        .arg(&page));
    assert!(
        out.starts_with("Wrote night 2026-11-22's report to "),
        "{out}"
    );

    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<style>"));
    assert!(html.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    // Self-contained: nothing fetched, nothing run.
    for outside in ["<script", "src=", "href=", "url(", "@import", "<link"] {
        assert!(!html.contains(outside), "{outside}");
    }
    // Batches on the timeline, outcomes, failures and skips with their reasons.
    assert!(html.contains(">batch 1</text>") && html.contains(">batch 2</text>"));
    assert!(html.contains("<title>batch 1: 1 failed</title>"));
    assert!(html.contains(&arn(A, "app", "web")));
    assert!(html.contains("deployment ecs-svc/2001 FAILED: tasks failed to start (exit code 1)"));
    assert!(html.contains("rolled back by the circuit breaker"));
    assert!(html.contains("<td>untagged</td>") && html.contains("<td>opted_out</td>"));

    let (width, height, px) = pixels(&screenshot(&page, &dir));
    assert_eq!((width, height), (1200, 900));
    let white = px.iter().filter(|p| p.iter().all(|c| *c > 245)).count();
    assert!(
        white < px.len() * 98 / 100,
        "the screenshot is (nearly) blank"
    );
    let mut colours: Vec<[u8; 3]> = px.clone();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 20, "only {} colours", colours.len());
    // The timeline's failed segment (#d64545) and completed one (#2e9d5b) are painted.
    let near = |want: [u8; 3]| {
        px.iter().any(|p| {
            p.iter()
                .zip(want)
                .all(|(have, want)| have.abs_diff(want) < 24)
        })
    };
    assert!(
        near([0xd6, 0x45, 0x45]),
        "no failed (red) segment on screen"
    );
    assert!(
        near([0x2e, 0x9d, 0x5b]),
        "no completed (green) segment on screen"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn report_json_and_bad_input() {
    let f = Fixture::new().await;
    let dir = scratch("restartctl-report-json");
    let page = dir.join("r.html");
    let v = json(&ok(f
        .cmd()
        .args([
            "report",
            "--night",
            "2026-11-22",
            "--output",
            "json",
            "--html",
        ])
        .arg(&page)));
    assert_eq!(v["night"], "2026-11-22");
    assert_eq!(
        v["bytes"].as_u64().unwrap(),
        std::fs::metadata(&page).unwrap().len()
    );

    let err = fails(
        f.cmd()
            .args(["report", "--night", "2026-12-01", "--html"])
            .arg(&page),
    );
    assert!(err.contains("night 2026-12-01 has no plan"), "{err}");
    let err = fails(
        f.cmd()
            .args(["report", "--night", "2026-11-22", "--html"])
            .arg(dir.join("no/such/folder/r.html")),
    );
    assert!(err.contains("check that its folder exists"), "{err}");
    let err = fails(f.cmd().args(["report", "--night", "2026-11-22"]));
    assert!(err.contains("--html"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
