//! Spec parsing never panics: arbitrary text, and structurally plausible documents with wild
//! field values. A spec that is accepted also builds a simulator.

use fleet_sim::{FleetSpec, SimHandle};
use proptest::prelude::*;

/// Every entry point on one text: each returns Ok or Err; an accepted small spec also builds.
fn parse_all(text: &str) {
    let results = [
        FleetSpec::from_str_auto(text),
        FleetSpec::from_yaml_str(text),
        FleetSpec::from_json_str(text),
    ];
    for spec in results.into_iter().flatten() {
        if spec.service_count() <= 5_000 {
            let sim = SimHandle::new(spec).expect("an accepted spec validates again");
            let _ = sim.stats();
        }
    }
}

/// Scalars that break naive parsers: out-of-range and negative numbers, YAML special floats,
/// huge integers, Unicode (accents, CJK, full-width digits, RTL, emoji), empty and odd types.
const WILD: &[&str] = &[
    "0",
    "1",
    "-1",
    "-0",
    "0.5",
    "1.5",
    "100",
    "101",
    "5001",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999999",
    "-9223372036854775809",
    "1e308",
    "1e309",
    "-1e308",
    ".nan",
    ".NaN",
    ".inf",
    "-.inf",
    "NaN",
    "~",
    "null",
    "true",
    "false",
    "''",
    "\"\"",
    "[]",
    "{}",
    "[1, 2]",
    "[600, 240]",
    "[1, 2, 3]",
    "[-1, 5]",
    "[.nan, 1]",
    "\"２０２６-11-22T00:00:00Z\"",
    "\"2026-11-22T00:00:00Z\"",
    "\"0000-01-01T00:00:00Z\"",
    "\"+262142-12-31T23:59:59Z\"",
    "\"-262143-01-01T00:00:00Z\"",
    "\"1969-12-31T23:59:59Z\"",
    "\"9999-12-31T23:59:59Z\"",
    "\"équipe-paiements\"",
    "\"決済チーム\"",
    "\"pas-de-redémarrage\"",
    "\"١٢٣٤٥٦٧٨٩٠١٢\"",
    "\"１１１１１１１１１１１１\"",
    "\"111111111111\"",
    "\"222222222222\"",
    "\"eu-west-1\"",
    "\"🚀\"",
    "\"a\\u0000b\"",
    "\"\\u202e\"",
    "complete",
    "superseded",
    "reject",
    "explode",
    "REPLICA",
    "DAEMON",
    "CODE_DEPLOY",
    "EC2",
    "&a 1",
    "*a",
    "!!binary aGVsbG8=",
    "!custom 1",
];

fn wild() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(WILD).prop_map(str::to_owned),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|f| format!("{f:?}")),
        1 => "\\PC{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
    ]
}

/// The fields of the plausible document: indentation and key, and a valid default value.
const FIELDS: &[(&str, &str)] = &[
    ("seed", "7"),
    ("time_scale", "120"),
    ("latency_ms", "0"),
    ("throttling", "false"),
    ("start_time", "\"2026-11-22T00:00:00Z\""),
    ("hub_account", "\"000000000000\""),
    ("aggregators", "[org]"),
    ("accounts:\n  - id", "\"111111111111\""),
    ("    regions", "[eu-west-1]"),
    ("    deny_assume_role", "false"),
    ("    external_id", "~"),
    ("    deny_ecs_after_restarts", "3"),
    ("    server_error_rate", "0.05"),
    ("    clusters:\n      - name", "payments"),
    ("        region", "eu-west-1"),
    ("        tags", "{team: \"決済チーム\"}"),
    ("        services:\n          - name", "api"),
    ("            desired", "3"),
    ("            scheduling", "REPLICA"),
    ("            controller", "ECS"),
    ("            launch_type", "FARGATE"),
    ("            min_healthy_percent", "100"),
    ("            max_percent", "200"),
    (
        "            tags",
        "{ecs_task_daily_restart: \"pas-de-redémarrage\", owner: \"équipe-paiements\"}",
    ),
    ("            deploy_seconds", "420"),
    ("            on_restart", "superseded"),
    ("            old_arn_format", "false"),
    ("            enable_execute_command", "false"),
    ("            readonly_root_filesystem", "false"),
    ("generate:\n  accounts", "2"),
    ("  regions", "[eu-west-1]"),
    ("  clusters_per_account", "2"),
    ("  services_per_cluster", "3"),
    ("  tagged_percent", "90"),
    ("  tag_key", "ecs_task_daily_restart"),
    ("  deploy_seconds", "[240, 600]"),
    ("  desired", "[1, 4]"),
    ("  fail_percent", "1"),
    ("  stuck_percent", "0.5"),
    ("  vanish_percent", "0"),
    ("  code_deploy_percent", "0"),
    ("  external_percent", "0"),
    ("  daemon_percent", "0"),
    ("  old_arn_percent", "0"),
    ("  owner_percent", "50"),
    ("  cluster_team_percent", "50"),
    ("  exec_percent", "50"),
];

/// The plausible document with the given values (`None`: the field's valid default).
fn render(values: &[Option<String>]) -> String {
    let mut out = String::new();
    for (i, (key, default)) in FIELDS.iter().enumerate() {
        let value = values.get(i).cloned().flatten();
        out.push_str(key);
        out.push_str(": ");
        out.push_str(value.as_deref().unwrap_or(default));
        out.push('\n');
    }
    out
}

/// A spec with every field present, each either its valid default or a wild value.
fn plausible_yaml() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::option::weighted(0.3, wild()), FIELDS.len())
        .prop_map(|v| render(&v))
}

#[test]
fn the_defaults_of_the_plausible_document_are_valid() {
    // Guards the generator: with no wild value the document is a valid spec, so each case
    // tests its wild values, not a typo in the template.
    let spec = FleetSpec::from_yaml_str(&render(&[])).expect("valid");
    assert_eq!(spec.service_count(), 13);
    assert_eq!(
        spec.account_faults["111111111111"].deny_ecs_after_restarts,
        Some(3)
    );
}

#[test]
fn pathological_documents_are_refused_without_panicking() {
    let deep_seq = "[".repeat(100_000);
    let deep_map = "{a: ".repeat(20_000);
    let deep_json = "{\"a\":".repeat(100_000);
    let laughs = {
        let mut s = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for (i, prev) in ["a", "b", "c", "d", "e", "f", "g", "h"].iter().enumerate() {
            let name = ["b", "c", "d", "e", "f", "g", "h", "i"][i];
            s.push_str(&format!(
                "{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
            ));
        }
        s
    };
    // Refused, and without a panic.
    for text in [
        deep_seq.as_str(),
        deep_map.as_str(),
        deep_json.as_str(),
        "{",
        "}",
        "generate: {accounts: 10000, clusters_per_account: 4294967295, services_per_cluster: 4294967295}",
        "start_time: \"+262142-12-31T23:59:59Z\"",
        "start_time: \"-262143-01-01T00:00:00Z\"",
        "accounts: [{id: \"111111111111\", server_error_rate: .nan}]",
        "accounts: [{id: \"111111111111\", server_error_rate: 1.01}]",
        "accounts: [{id: \"111111111111\", server_error_rate: -0.5}]",
        "accounts: [{id: \"111111111111\", deny_ecs_after_restarts: -1}]",
        "accounts: [{id: \"111111111111\", deny_ecs_after_restarts: 1.5}]",
        "accounts: [{id: \"111111111111\", deny_ecs_after_restarts: 99999999999999999999999}]",
    ] {
        parse_all(text);
        assert!(
            FleetSpec::from_str_auto(text).is_err(),
            "{:?} was accepted",
            text.get(..80).unwrap_or(text)
        );
    }
    // Whatever they give, without a panic.
    for text in [
        laughs.as_str(),
        "\u{feff}seed: 1",
        "---\n---\n",
        "%YAML 1.2\n---\nseed: 1",
        "seed: 1\nseed: 2",
        "",
        "~",
        "{}",
    ] {
        parse_all(text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any Unicode text at all.
    #[test]
    fn any_text_is_ok_or_err(text in "\\PC*") {
        parse_all(&text);
    }

    /// Any string, control characters included, with a JSON or YAML-looking start.
    #[test]
    fn any_string_after_a_plausible_start_is_ok_or_err(
        start in proptest::sample::select(&["", "{", "{\"accounts\":[{", "accounts:\n  - ", "seed: ", "- ", "[", "generate: {"][..]),
        rest in any::<String>(),
    ) {
        parse_all(&format!("{start}{rest}"));
    }

    /// Well-shaped documents with wild field values.
    #[test]
    fn plausible_documents_with_wild_values_are_ok_or_err(yaml in plausible_yaml()) {
        parse_all(&yaml);
        // The same document as JSON, through the JSON path and its field paths.
        if let Ok(value) = serde_yaml_ng::from_str::<serde_json::Value>(&yaml) {
            parse_all(&value.to_string());
        }
    }
}
