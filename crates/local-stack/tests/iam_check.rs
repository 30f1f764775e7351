//! `iam-check` passes on the shipped templates, and fails, naming the principal, the action and
//! the resource, when one action a night or on-call needs is dropped from one role: one test
//! per role of infra/template.yaml and infra/member-role.yaml.
//!
//! The check's night and commands are played once per build of `iam-check` (the first test
//! to get here runs it; the others wait on a file lock and read its trace); each test then
//! replays that trace against the templates with its one action dropped from the text, which
//! decides every request again as the local stack's enforcement did.
//!
//! `tools/with-moto` provides the venv; the stack starts its own moto.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::UNIX_EPOCH;

use local_stack::iam::check::{Trace, replay};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The check's trace, recorded by `iam-check` once for this build of it.
fn trace() -> Trace {
    let exe = Path::new(env!("CARGO_BIN_EXE_iam-check"));
    let meta = std::fs::metadata(exe).expect("iam-check is built");
    let stamp = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let dir = root().join("target/iam-check");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("test-trace-{stamp}-{}.json", meta.len()));
    let lock = std::fs::File::create(dir.join("test-trace.lock")).unwrap();
    // Held while the trace is made: tests in other processes (nextest) wait, then read it.
    lock.lock().unwrap();
    if !path.exists() {
        let out = Command::new(exe)
            .arg("--trace-out")
            .arg(&path)
            .current_dir(root())
            .env("RUST_LOG", "error")
            .output()
            .expect("iam-check runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::File::create(path.with_extension("out"))
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .unwrap();
        assert!(
            out.status.success(),
            "iam-check fails on the shipped templates:\n{text}"
        );
    }
    lock.unlock().unwrap();
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// Where an action sits in a role: its identity policies, or its trust policy.
#[derive(Clone, Copy, PartialEq, Eq)]
enum In {
    Policies,
    Trust,
}

/// `text` with `action` dropped from role `role`'s identity policies (or trust policy): taken
/// out of an inline list `[a, b]` or a list item `- a`, or, as a statement's only action, the
/// whole statement taken out.
fn drop_action(text: &str, role: &str, action: &str, place: In) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_end() == format!("  {role}:"))
        .unwrap_or_else(|| panic!("no role {role}"));
    let end = lines[start + 1..]
        .iter()
        .position(|l| {
            l.starts_with("  ") && !l.starts_with("   ") && !l.trim_start().starts_with('#')
        })
        .map_or(lines.len(), |p| start + 1 + p);
    let section = lines[start..end]
        .iter()
        .position(|l| l.trim() == "Policies:")
        .map(|p| start + p)
        .unwrap_or(end);
    let (from, to) = match place {
        In::Policies => (section, end),
        In::Trust => (start, section),
    };
    let at = (from..to)
        .find(|&i| {
            let t = lines[i].trim();
            t == format!("- {action}")
                || t.ends_with(&format!("Action: {action}"))
                || (t.starts_with("Action: [") && t.contains(action))
        })
        .unwrap_or_else(|| panic!("{role} grants no {action} there"));
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    let t = lines[at].trim();
    if t.starts_with("Action: [") && t.contains(',') {
        let inner = t.trim_start_matches("Action: [").trim_end_matches(']');
        let kept: Vec<&str> = inner
            .split(',')
            .map(str::trim)
            .filter(|a| *a != action)
            .collect();
        let indent = &lines[at][..lines[at].len() - lines[at].trim_start().len()];
        out[at] = format!("{indent}Action: [{}]", kept.join(", "));
    } else if t.starts_with("- ") {
        out.remove(at);
    } else {
        // The statement's only action: the statement goes, from its `- Sid:` line (or the
        // `- !If` holding it: `- !If`, `- CONDITION`, the statement, `- !Ref AWS::NoValue`) to
        // the next item of the same list.
        let mut first = (from..at)
            .rev()
            .find(|&i| lines[i].trim_start().starts_with("- "))
            .unwrap();
        if first >= from + 2 {
            let condition = lines[first - 1].trim();
            if condition.starts_with("- ")
                && !condition.contains(':')
                && lines[first - 2].trim() == "- !If"
            {
                first -= 2;
            }
        }
        let indent = lines[first].len() - lines[first].trim_start().len();
        let last = (at..to)
            .find(|&i| {
                let l = lines[i];
                let ind = l.len() - l.trim_start().len();
                ind <= indent && !l.trim().is_empty()
            })
            .unwrap_or(to);
        out.drain(first..last);
    }
    out.join("\n") + "\n"
}

/// Replays the check's trace with `action` dropped from `role` in `file`; expects a denial
/// naming a principal of `who`, the action, and a resource.
fn dropping_fails_the_check(file: &str, role: &str, action: &str, place: In, who: &str) {
    let trace = trace();
    let dir = std::env::temp_dir().join(format!(
        "iam-check-drop-{}-{role}-{}",
        std::process::id(),
        action.replace(':', "-")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for f in [
        "template.yaml",
        "member-role.yaml",
        "samconfig.example.toml",
    ] {
        let text = std::fs::read_to_string(root().join("infra").join(f)).unwrap();
        let text = if f == file {
            drop_action(&text, role, action, place)
        } else {
            text
        };
        std::fs::write(dir.join(f), text).unwrap();
    }
    let shipped = replay(&root().join("infra"), &trace).unwrap();
    assert!(shipped.denied.is_empty(), "{:?}", shipped.denied);
    let dropped = replay(&dir, &trace).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(!dropped.passes(), "{role} without {action} still passes");
    let named = dropped
        .denied
        .iter()
        .find(|d| d.action == action && d.principal.contains(who))
        .unwrap_or_else(|| panic!("no denial of {action} by {who}: {:#?}", dropped.denied));
    assert!(
        named.message.contains(&format!(
            "is not authorized to perform: {action} on resource: {}",
            named.resource
        )),
        "{}",
        named.message
    );
    // An ARN, or `*` for an action without a resource-level permission (ListTasks).
    assert!(
        named.resource == "*" || named.resource.starts_with("arn:aws:"),
        "{}",
        named.resource
    );
}

/// Taking the night's lock (a conditional PutItem) is in every night. Its release (DeleteItem)
/// runs only on a failed night's way out, which a successful check night may not take:
/// `tests/lock.rs` plays it under enforcement.
#[test]
fn the_inventory_without_put_item_cannot_take_the_nights_lock() {
    dropping_fails_the_check(
        "template.yaml",
        "InventoryRole",
        "dynamodb:PutItem",
        In::Policies,
        "InventoryRole/inventory",
    );
}

#[test]
fn the_batcher_without_put_item_cannot_plan() {
    dropping_fails_the_check(
        "template.yaml",
        "BatcherRole",
        "dynamodb:PutItem",
        In::Policies,
        "BatcherRole/batcher",
    );
}

#[test]
fn the_restarter_without_update_item_cannot_claim_a_restart() {
    dropping_fails_the_check(
        "template.yaml",
        "RestarterRole",
        "dynamodb:UpdateItem",
        In::Policies,
        "RestarterRole/restarter",
    );
}

#[test]
fn the_notifier_without_publish_cannot_tell_anyone() {
    dropping_fails_the_check(
        "template.yaml",
        "NotifierRole",
        "sns:Publish",
        In::Policies,
        "NotifierRole/notifier",
    );
}

#[test]
fn on_call_without_describe_stacks_cannot_start_the_runbook() {
    dropping_fails_the_check(
        "template.yaml",
        "OnCallRole",
        "cloudformation:DescribeStacks",
        In::Policies,
        "OnCallRole/oncall",
    );
}

#[test]
fn on_call_without_set_source_identity_cannot_connect() {
    dropping_fails_the_check(
        "template.yaml",
        "OnCallRole",
        "sts:SetSourceIdentity",
        In::Policies,
        "OnCallRole/oncall",
    );
}

#[test]
fn the_state_machine_without_invoke_runs_no_function() {
    dropping_fails_the_check(
        "template.yaml",
        "StateMachineRole",
        "lambda:InvokeFunction",
        In::Policies,
        "StateMachineRole",
    );
}

#[test]
fn the_scheduler_without_start_execution_starts_no_night() {
    dropping_fails_the_check(
        "template.yaml",
        "SchedulerRole",
        "states:StartExecution",
        In::Policies,
        "SchedulerRole/scheduler",
    );
}

#[test]
fn the_member_role_without_update_service_restarts_nothing() {
    dropping_fails_the_check(
        "member-role.yaml",
        "MemberRole",
        "ecs:UpdateService",
        In::Policies,
        "ecs-nightly-restart-member",
    );
}

#[test]
fn the_member_role_trusting_no_assume_role_is_never_entered() {
    dropping_fails_the_check(
        "member-role.yaml",
        "MemberRole",
        "sts:AssumeRole",
        In::Trust,
        "InventoryRole/inventory",
    );
}

#[test]
fn the_member_on_call_role_without_list_tasks_finds_no_task() {
    dropping_fails_the_check(
        "member-role.yaml",
        "OnCallRole",
        "ecs:ListTasks",
        In::Policies,
        "ecs-nightly-restart-oncall",
    );
}

#[test]
fn the_member_on_call_role_trusting_no_source_identity_refuses_connect() {
    dropping_fails_the_check(
        "member-role.yaml",
        "OnCallRole",
        "sts:SetSourceIdentity",
        In::Trust,
        "OnCallRole/oncall",
    );
}

#[test]
fn the_restarter_without_get_calendar_state_cannot_read_the_change_freeze() {
    dropping_fails_the_check(
        "template.yaml",
        "RestarterRole",
        "ssm:GetCalendarState",
        In::Policies,
        "RestarterRole/restarter",
    );
}

#[test]
fn the_restarter_without_describe_alarms_cannot_read_the_hubs_blocking_alarms() {
    dropping_fails_the_check(
        "template.yaml",
        "RestarterRole",
        "cloudwatch:DescribeAlarms",
        In::Policies,
        "RestarterRole/restarter",
    );
}

#[test]
fn the_member_role_without_describe_alarms_cannot_read_an_accounts_blocking_alarms() {
    dropping_fails_the_check(
        "member-role.yaml",
        "MemberRole",
        "cloudwatch:DescribeAlarms",
        In::Policies,
        "ecs-nightly-restart-member",
    );
}

#[test]
fn a_dropped_action_is_taken_out_of_the_text() {
    let text = "Resources:\n  R:\n    Type: AWS::IAM::Role\n    Properties:\n      AssumeRolePolicyDocument:\n        Statement:\n          - Effect: Allow\n            Action: [sts:AssumeRole, sts:TagSession]\n      Policies:\n        - PolicyDocument:\n            Statement:\n              - Sid: A\n                Action: [a:X, a:Y]\n                Resource: \"*\"\n              - Sid: B\n                Action: b:Z\n                Resource: \"*\"\n              - Sid: C\n                Action:\n                  - c:W\n                  - c:V\n  S:\n    Type: X\n";
    let out = drop_action(text, "R", "a:X", In::Policies);
    assert!(out.contains("Action: [a:Y]"), "{out}");
    let out = drop_action(text, "R", "b:Z", In::Policies);
    assert!(
        !out.contains("Sid: B") && out.contains("Sid: C") && out.contains("Sid: A"),
        "{out}"
    );
    let out = drop_action(text, "R", "c:W", In::Policies);
    assert!(!out.contains("c:W") && out.contains("- c:V"), "{out}");
    let out = drop_action(text, "R", "sts:TagSession", In::Trust);
    assert!(out.contains("Action: [sts:AssumeRole]"), "{out}");
    // A statement inside `!If [Cond, statement, !Ref AWS::NoValue]` goes with its `!If`.
    let text = "Resources:\n  R:\n    Type: AWS::IAM::Role\n    Properties:\n      Policies:\n        - PolicyDocument:\n            Statement:\n              - Sid: A\n                Action: a:X\n                Resource: \"*\"\n              # Why.\n              - !If\n                - HasD\n                - Sid: D\n                  Action: d:Y\n                  Resource: !If\n                    - IsArn\n                    - !Ref P\n                    - \"*\"\n                - !Ref AWS::NoValue\n              - Sid: E\n                Action: e:Z\n                Resource: \"*\"\n  S:\n    Type: X\n";
    let out = drop_action(text, "R", "d:Y", In::Policies);
    assert!(
        !out.contains("Sid: D")
            && !out.contains("!If")
            && !out.contains("HasD")
            && !out.contains("AWS::NoValue")
            && out.contains("Sid: A")
            && out.contains("Sid: E"),
        "{out}"
    );
}
