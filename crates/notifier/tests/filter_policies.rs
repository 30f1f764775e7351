//! The subscription filter policies of docs/owners.md against the digests the notifier really
//! sends: each policy in the page (the one in the `aws sns subscribe` example and each ```json
//! block) is evaluated by a matcher of SNS filter policies (attribute scope) on every message of
//! a night's digests, and must receive exactly the messages the page says it does.
//!
//! The matcher covers the part of the syntax that owners.md uses or warns about, as the SNS
//! developer guide describes it ("Amazon SNS message filtering": subscription filter policies,
//! string and numeric value matching, key matching, policy constraints):
//! - a policy is an object of attribute names, each with an array of conditions; a message is
//!   accepted when every name's attribute matches at least one of its conditions (AND across
//!   names, OR within an array), and attributes the policy does not name are ignored;
//! - a string matches a String attribute with that exact value (case-sensitive), a number a
//!   Number attribute equal to it;
//! - `{"prefix": "p"}` matches a String attribute starting with `p`;
//! - `{"anything-but": v}` (a value, an array of values, or `{"prefix": "p"}`) matches a present
//!   attribute equal to none of them (starting with none);
//! - `{"numeric": [op, n (, op, n)]}` with `=`, `<`, `<=`, `>`, `>=` matches a Number attribute
//!   satisfying every comparison; a String attribute never matches it;
//! - `{"exists": true}` matches when the attribute is present, `{"exists": false}` when it is
//!   absent (the only condition an absent attribute can satisfy);
//! - at most 5 names, and at most 150 combinations (the product of the arrays' lengths).
//!
//! Anything else (another operator, a nested object) is an error, so that an example using
//! syntax the matcher does not model fails here instead of being judged wrongly.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use common::*;
use notifier::Notifier;
use restart_core::clock::ManualClock;
use restart_core::eligibility::SkipReason;
use restart_core::notice::Message;
use restart_core::tag::TagStateKind;
use serde_json::{Value, json};
use testkit::fakes::{MemoryNotices, MemoryStore, MemoryTopics};

/// A message attribute with its SNS data type.
#[derive(Debug, Clone, PartialEq)]
enum Attribute {
    String(String),
    Number(f64),
}

/// Whether `policy` (attribute scope) accepts a message with `attributes`.
fn accepts(policy: &Value, attributes: &BTreeMap<String, Attribute>) -> Result<bool, String> {
    let names = policy
        .as_object()
        .ok_or_else(|| format!("a filter policy is a JSON object: {policy}"))?;
    if names.len() > 5 {
        return Err(format!("more than 5 attribute names: {policy}"));
    }
    let mut combinations = 1usize;
    let mut accepted = true;
    for (name, conditions) in names {
        let conditions = conditions.as_array().ok_or_else(|| {
            format!("{name}: an array of conditions (nested objects are for the body scope)")
        })?;
        combinations = combinations.saturating_mul(conditions.len());
        let attribute = attributes.get(name);
        let mut any = false;
        for condition in conditions {
            // Every condition is checked, so an unknown one is reported whatever the order.
            any |= condition_matches(condition, attribute)?;
        }
        accepted &= any;
    }
    if combinations > 150 {
        return Err(format!("more than 150 combinations: {policy}"));
    }
    Ok(accepted)
}

fn condition_matches(condition: &Value, attribute: Option<&Attribute>) -> Result<bool, String> {
    match condition {
        Value::String(_) | Value::Number(_) => Ok(attribute.is_some_and(|a| equals(condition, a))),
        Value::Object(op) if op.len() == 1 => {
            let (name, arg) = op.iter().next().ok_or("an empty operator")?;
            match (name.as_str(), arg) {
                ("exists", Value::Bool(present)) => Ok(attribute.is_some() == *present),
                ("prefix", Value::String(p)) => {
                    Ok(matches!(attribute, Some(Attribute::String(s)) if s.starts_with(p.as_str())))
                }
                ("anything-but", Value::Object(inner)) => match inner.get("prefix") {
                    Some(Value::String(p)) if inner.len() == 1 => Ok(matches!(
                        attribute,
                        Some(Attribute::String(s)) if !s.starts_with(p.as_str())
                    )),
                    _ => Err(format!("anything-but {arg} is not modeled")),
                },
                ("anything-but", Value::Array(values)) => {
                    for v in values {
                        if !(v.is_string() || v.is_number()) {
                            return Err(format!("anything-but {v} is not modeled"));
                        }
                    }
                    Ok(attribute.is_some_and(|a| !values.iter().any(|v| equals(v, a))))
                }
                ("anything-but", v @ (Value::String(_) | Value::Number(_))) => {
                    Ok(attribute.is_some_and(|a| !equals(v, a)))
                }
                ("numeric", Value::Array(terms)) => numeric(terms, attribute),
                _ => Err(format!("the condition {condition} is not modeled")),
            }
        }
        _ => Err(format!("the condition {condition} is not modeled")),
    }
}

/// A policy value against an attribute: strings against String attributes, numbers against
/// Number ones.
fn equals(value: &Value, attribute: &Attribute) -> bool {
    match (value, attribute) {
        (Value::String(v), Attribute::String(a)) => v == a,
        (Value::Number(v), Attribute::Number(a)) => v.as_f64() == Some(*a),
        _ => false,
    }
}

fn numeric(terms: &[Value], attribute: Option<&Attribute>) -> Result<bool, String> {
    if terms.is_empty() || !terms.len().is_multiple_of(2) || terms.len() > 4 {
        return Err(format!(
            "numeric needs 1 or 2 (operator, number) pairs: {terms:?}"
        ));
    }
    let mut all = true;
    for pair in terms.chunks(2) {
        let (Some(op), Some(n)) = (pair[0].as_str(), pair[1].as_f64()) else {
            return Err(format!("numeric needs (operator, number) pairs: {terms:?}"));
        };
        let holds = |x: f64| match op {
            "=" => Ok(x == n),
            "<" => Ok(x < n),
            "<=" => Ok(x <= n),
            ">" => Ok(x > n),
            ">=" => Ok(x >= n),
            _ => Err(format!("no numeric operator {op}")),
        };
        all &= match attribute {
            Some(Attribute::Number(x)) => holds(*x)?,
            // Checked for its operator all the same.
            _ => holds(0.0).map(|_| false)?,
        };
    }
    Ok(all)
}

/// The attributes of a message as SNS receives them: the notifier publishes every one as a
/// String (`restart_aws::sns`).
fn attributes(m: &Message) -> BTreeMap<String, Attribute> {
    m.attributes
        .iter()
        .map(|(k, v)| (k.clone(), Attribute::String(v.clone())))
        .collect()
}

/// The night's digests as the notifier publishes them: the shared scenario (payments in two
/// accounts, search, an unowned service) plus a `ledger` team and a `payments-eu` team.
async fn digests() -> Vec<Message> {
    let h = Notifier {
        config: Arc::new(config("t", Some(OWNERS_TOPIC), Some(OPS_TOPIC))),
        store: MemoryStore::default(),
        notices: MemoryNotices::default(),
        publisher: MemoryTopics::default(),
        clock: Arc::new(ManualClock::new(at("2026-11-22T06:05:00Z"))),
    };
    let (mut catalog, mut records) = scenario(night());
    for (account, cluster, service, owner) in [
        (B, "ledger", "postings", "ledger"),
        (A, "payments-eu", "sepa", "payments-eu"),
    ] {
        let sid = id(account, cluster, service);
        catalog.push(common::catalog(
            &sid,
            owner,
            TagStateKind::Untagged,
            None,
            night(),
        ));
        records.push(skipped(&sid, owner, SkipReason::Untagged, night()));
    }
    write_night(&h.store, night(), &catalog, &records, true).await;
    h.handle(json!({"mode": "owners", "night": "2026-11-22"}))
        .await
        .unwrap();
    h.publisher.messages(OWNERS_TOPIC)
}

/// The (owner, account) a message is for.
fn target(m: &Message) -> (String, String) {
    (
        m.attributes["owner"].clone(),
        m.attributes["account_id"].clone(),
    )
}

/// What owners.md says each of its policies receives, as (owner, account) pairs.
fn expected() -> Vec<(Value, Vec<(&'static str, &'static str)>)> {
    vec![
        (
            json!({"owner": ["payments"]}),
            vec![("payments", A), ("payments", B)],
        ),
        (
            json!({"owner": ["payments", "ledger"]}),
            vec![("payments", A), ("payments", B), ("ledger", B)],
        ),
        (
            json!({"owner": ["payments"], "account_id": ["111111111111"]}),
            vec![("payments", A)],
        ),
        (
            json!({"owner": [{"prefix": "payments"}]}),
            vec![("payments", A), ("payments", B), ("payments-eu", A)],
        ),
        (
            json!({"account_id": ["222222222222"]}),
            vec![("payments", B), ("search", B), ("ledger", B)],
        ),
        (json!({"owner": ["unowned"]}), vec![("unowned", A)]),
        (
            json!({"owner": [{"anything-but": ["unowned"]}]}),
            vec![
                ("payments", A),
                ("payments", B),
                ("search", B),
                ("ledger", B),
                ("payments-eu", A),
            ],
        ),
    ]
}

/// The filter policies owners.md shows: the `FilterPolicy` of the `aws sns subscribe` example
/// (whose scope must be MessageAttributes), then each ```json block.
fn policies_in_owners_md() -> Vec<Value> {
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/owners.md"))
            .unwrap();
    let mut out = Vec::new();
    let mut in_json = false;
    let mut block = String::new();
    for line in page.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (in_json, fence) {
            (false, Some("json")) => {
                in_json = true;
                block.clear();
            }
            (true, Some(_)) => {
                in_json = false;
                out.push(
                    serde_json::from_str(&block)
                        .unwrap_or_else(|e| panic!("a ```json block of owners.md: {e}\n{block}")),
                );
            }
            (true, None) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
        // `--attributes '{...}'`: single-quoted JSON whose FilterPolicy is JSON in a string.
        if let Some(rest) = line.split("--attributes '").nth(1) {
            let attributes: Value = serde_json::from_str(rest.split('\'').next().unwrap())
                .unwrap_or_else(|e| panic!("owners.md's --attributes: {e}: {line}"));
            assert_eq!(
                attributes["FilterPolicyScope"], "MessageAttributes",
                "{line}"
            );
            out.push(serde_json::from_str(attributes["FilterPolicy"].as_str().unwrap()).unwrap());
        }
    }
    out
}

#[tokio::test]
async fn owners_md_filter_policies_receive_what_it_says() {
    let sent = digests().await;
    // Every message carries the three String attributes owners.md lists, kind always digest.
    for m in &sent {
        let names: Vec<&str> = m.attributes.keys().map(String::as_str).collect();
        assert_eq!(names, ["account_id", "kind", "owner"], "{}", m.subject);
        assert_eq!(m.attributes["kind"], "digest");
    }
    let all: BTreeSet<(String, String)> = sent.iter().map(target).collect();
    let owners: BTreeSet<&str> = all.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(
        owners,
        BTreeSet::from(["ledger", "payments", "payments-eu", "search", "unowned"])
    );

    let in_page = policies_in_owners_md();
    let expected = expected();
    for policy in &in_page {
        assert!(
            expected.iter().any(|(p, _)| p == policy),
            "owners.md shows {policy}, which this test does not know: add what the page says \
             it receives to expected()"
        );
    }
    for (policy, receives) in &expected {
        assert!(
            in_page.contains(policy),
            "{policy} is no longer in owners.md: drop it from expected()"
        );
        let want: BTreeSet<(String, String)> = receives
            .iter()
            .map(|(o, a)| ((*o).to_owned(), (*a).to_owned()))
            .collect();
        let got: BTreeSet<(String, String)> = sent
            .iter()
            .filter(|m| accepts(policy, &attributes(m)).unwrap())
            .map(target)
            .collect();
        assert_eq!(got, want, "{policy}");
        // Every part of a digest goes where its first part goes.
        for m in &sent {
            assert_eq!(
                accepts(policy, &attributes(m)).unwrap(),
                want.contains(&target(m)),
                "{policy}: {}",
                m.subject
            );
        }
    }

    // What owners.md warns about: a numeric condition on account_id matches nothing (the
    // attribute is a String), whatever the comparison.
    for policy in [
        json!({"account_id": [{"numeric": ["=", 111111111111u64]}]}),
        json!({"account_id": [{"numeric": [">", 0]}]}),
    ] {
        assert!(
            sent.iter()
                .all(|m| !accepts(&policy, &attributes(m)).unwrap()),
            "{policy}"
        );
    }
    // And the attribute names are case-sensitive values: `Payments` is not `payments`.
    assert!(
        sent.iter()
            .all(|m| !accepts(&json!({"owner": ["Payments"]}), &attributes(m)).unwrap())
    );
}

/// The matcher against the examples of the SNS developer guide.
#[test]
fn the_matcher_follows_the_sns_guide() {
    let s = |v: &str| Attribute::String(v.to_owned());
    let msg = |pairs: &[(&str, Attribute)]| -> BTreeMap<String, Attribute> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    };
    let ok = |policy: Value, m: &BTreeMap<String, Attribute>| accepts(&policy, m).unwrap();

    // Exact values, OR within an array.
    let rugby = msg(&[("customer_interests", s("rugby"))]);
    let baseball = msg(&[("customer_interests", s("baseball"))]);
    assert!(ok(
        json!({"customer_interests": ["rugby", "tennis"]}),
        &rugby
    ));
    assert!(!ok(
        json!({"customer_interests": ["rugby", "tennis"]}),
        &baseball
    ));
    // anything-but: a value, an array, a prefix; never an absent attribute.
    assert!(ok(
        json!({"customer_interests": [{"anything-but": ["rugby", "tennis"]}]}),
        &baseball
    ));
    assert!(!ok(
        json!({"customer_interests": [{"anything-but": ["rugby", "tennis"]}]}),
        &rugby
    ));
    assert!(!ok(
        json!({"customer_interests": [{"anything-but": "rugby"}]}),
        &rugby
    ));
    assert!(ok(
        json!({"customer_interests": [{"anything-but": {"prefix": "rug"}}]}),
        &baseball
    ));
    assert!(!ok(
        json!({"customer_interests": [{"anything-but": {"prefix": "rug"}}]}),
        &rugby
    ));
    assert!(!ok(json!({"store": [{"anything-but": ["x"]}]}), &rugby));
    // prefix.
    assert!(ok(
        json!({"customer_interests": [{"prefix": "bas"}]}),
        &baseball
    ));
    assert!(!ok(
        json!({"customer_interests": [{"prefix": "bas"}]}),
        &rugby
    ));
    // numeric: ranges on Number attributes; a String attribute never matches.
    let price = |x: f64| msg(&[("price_usd", Attribute::Number(x))]);
    let range = json!({"price_usd": [{"numeric": [">", 0, "<=", 150]}]});
    assert!(ok(range.clone(), &price(100.0)));
    assert!(ok(range.clone(), &price(150.0)));
    assert!(!ok(range.clone(), &price(150.5)));
    assert!(!ok(range.clone(), &price(0.0)));
    assert!(!ok(range, &msg(&[("price_usd", s("100"))])));
    assert!(ok(
        json!({"price_usd": [{"numeric": ["=", 301.5]}]}),
        &price(3.015e2)
    ));
    assert!(ok(
        json!({"price": [{"anything-but": [100, 500]}]}),
        &msg(&[("price", Attribute::Number(101.0))])
    ));
    assert!(!ok(
        json!({"price": [{"anything-but": [100, 500]}]}),
        &msg(&[("price", Attribute::Number(100.0))])
    ));
    assert!(ok(json!({"price_usd": [301.5]}), &price(301.5)));
    assert!(!ok(json!({"price_usd": ["301.5"]}), &price(301.5)));
    // exists.
    assert!(ok(
        json!({"customer_interests": [{"exists": true}]}),
        &rugby
    ));
    assert!(!ok(json!({"store": [{"exists": true}]}), &rugby));
    assert!(ok(json!({"store": [{"exists": false}]}), &rugby));
    assert!(!ok(
        json!({"customer_interests": [{"exists": false}]}),
        &rugby
    ));
    // AND across names; names the policy does not mention are ignored.
    let both = msg(&[
        ("customer_interests", s("rugby")),
        ("store", s("example_corp")),
        ("event", s("order_placed")),
    ]);
    assert!(ok(
        json!({"customer_interests": ["rugby"], "store": ["example_corp"]}),
        &both
    ));
    assert!(!ok(
        json!({"customer_interests": ["rugby"], "store": ["other"]}),
        &both
    ));
    assert!(!ok(
        json!({"customer_interests": ["rugby"], "missing": ["x"]}),
        &both
    ));
    // Case-sensitive.
    assert!(!ok(json!({"customer_interests": ["Rugby"]}), &rugby));

    // What is not modeled, or not allowed, is an error.
    for policy in [
        json!({"a": [{"suffix": "x"}]}),
        json!({"a": [{"equals-ignore-case": "x"}]}),
        json!({"a": [{"numeric": ["!=", 1]}]}),
        json!({"a": {"b": ["x"]}}),
        json!({"a": [null]}),
        json!(["a"]),
        json!({"a": ["x"], "b": ["x"], "c": ["x"], "d": ["x"], "e": ["x"], "f": ["x"]}),
        json!({"a": (0..151).map(|i| i.to_string()).collect::<Vec<_>>()}),
    ] {
        assert!(accepts(&policy, &rugby).is_err(), "{policy}");
    }
}
