//! Proptest strategies for the handlers' `never_panics` tests: text in any script, any JSON,
//! and events built of named fields that each may be missing or of the wrong type.

use proptest::prelude::*;
use serde_json::{Map, Value};

/// Text in any script, some of it nearly a date, a mode, a tag value or an ARN: every sample
/// the handlers' tests have found worth trying.
pub fn text() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        any::<String>(),
        "\\PC{0,24}",
        prop::collection::vec(any::<u8>(), 0..24)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        "[+-]?[0-9]{1,7}-[0-9]{1,2}-[0-9]{1,2}",
        "(skip-until:)?[+-]?[0-9]{4,6}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)?",
        "arn:aws:ecs:eu-west-1:[0-9]{12}:service/(c[0-3]/)?s{1,14}",
        "arn:\\PC{0,4}:ecs:\\PC{0,4}:\\PC{0,4}:service/\\PC{0,8}",
        prop::sample::select(vec![
            // Dates, nearly dates and the ends of the calendar.
            "2026-11-22",
            "2026-11-23",
            "2026-11-21",
            "+262142-12-31",
            "-262143-01-01",
            "2026-02-29",
            "２０２６-11-22",
            "2026-11-22T00:00:00Z",
            "2026-11-21T01:10:00Z",
            // Modes, flags and tag values, right and nearly right.
            "start",
            "poll",
            "service",
            "START",
            "owners",
            "summary",
            "OWNERS",
            " owners",
            "true",
            "enabled",
            "ENABLED ",
            "disabled",
            "skip-until:2026-12-01",
            "skip-until:+262142-12-31",
            "arn:aws:states:eu-west-1:111111111111:execution:nightly:run-1",
            // Other scripts.
            "決済チーム",
            "e\u{301}quipe",
            "🚀",
            "",
        ])
        .prop_map(str::to_owned),
    ]
}

/// Text a person wrote (a team, a tag value, a reason, a failure) of at most `max` characters:
/// anything, printable Unicode, bytes read as UTF-8, or names with accents, CJK, emoji,
/// full-width digits and combining marks.
pub fn written(max: usize) -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..max).prop_map(String::from_iter),
        prop::string::string_regex(&format!("\\PC{{0,{max}}}")).expect("a valid regex"),
        prop::collection::vec(any::<u8>(), 0..max)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        prop::sample::select(vec![
            "équipe-paiements",
            "決済チーム",
            "🚀 platform 🚀",
            "ｔｅａｍ１２",
            "e\u{301}quipe",
            "\u{200b}",
            "<script>alert('x')</script>",
            "a\r\nb",
            "\"quoted\"",
            "ok",
        ])
        .prop_map(str::to_owned),
    ]
}

/// Any JSON value, nested, its leaves of every kind (text from [`text`]); an object's keys
/// are often one of `keys` (a regex, e.g. `"night|replan"`: the event's own field names),
/// else any short text.
pub fn any_json(keys: &'static str) -> impl Strategy<Value = Value> + Clone {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop_oneof![keys, "\\PC{0,6}"], inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A field's value: text three times in four, else any JSON (keys from `keys`).
pub fn text_or_json(keys: &'static str) -> impl Strategy<Value = Value> + Clone {
    prop_oneof![3 => text().prop_map(Value::from), 1 => any_json(keys)]
}

/// A field that is there (`Some`) or not (`None`).
pub type Field = BoxedStrategy<Option<Value>>;

/// An event object: each of `fields` in turn, set when its strategy gives a value, then the
/// key and value `extra` gives, if any (a key the handler does not know, or one of its own
/// again).
pub fn object(
    fields: Vec<(&'static str, Field)>,
    extra: BoxedStrategy<Option<(String, Value)>>,
) -> impl Strategy<Value = Value> {
    let (names, values): (Vec<_>, Vec<_>) = fields.into_iter().unzip();
    (values, extra).prop_map(move |(values, extra)| {
        let mut o = Map::new();
        for (name, value) in names.iter().zip(values) {
            if let Some(v) = value {
                o.insert((*name).to_owned(), v);
            }
        }
        if let Some((k, v)) = extra {
            o.insert(k, v);
        }
        Value::Object(o)
    })
}

/// An event whose fields all hold text: any JSON (keys from `keys`) once in four, else an
/// object with each of `fields` (present or not, text or anything: [`text_or_json`]) and
/// perhaps a key from `extra_keys` (a regex) holding the same.
pub fn text_fields_event(
    keys: &'static str,
    fields: &[&'static str],
    extra_keys: &'static str,
) -> impl Strategy<Value = Value> + use<> {
    let field = text_or_json(keys);
    let fields = fields
        .iter()
        .map(|&name| (name, prop::option::of(field.clone()).boxed()))
        .collect();
    prop_oneof![
        1 => any_json(keys),
        3 => object(fields, prop::option::of((extra_keys, field)).boxed()),
    ]
}

#[cfg(test)]
mod tests {
    use proptest::strategy::ValueTree as _;
    use proptest::test_runner::TestRunner;
    use serde_json::json;

    use super::*;

    fn sample<S: Strategy>(strategy: &S) -> S::Value {
        strategy
            .new_tree(&mut TestRunner::deterministic())
            .unwrap()
            .current()
    }

    #[test]
    fn an_object_holds_the_fields_given_and_the_extra_key() {
        let event = object(
            vec![
                ("night", Just(Some(json!("2026-11-22"))).boxed()),
                ("replan", Just(None).boxed()),
            ],
            Just(Some(("mode".to_owned(), json!(1)))).boxed(),
        );
        assert_eq!(sample(&event), json!({"night": "2026-11-22", "mode": 1}));
        let bare = object(vec![("night", Just(None).boxed())], Just(None).boxed());
        assert_eq!(sample(&bare), json!({}));
    }

    #[test]
    fn text_fields_events_name_their_fields() {
        let events = text_fields_event("mode|night", &["mode", "night"], "batch");
        let mut runner = TestRunner::deterministic();
        let mut named = 0;
        for _ in 0..256 {
            let event = events.new_tree(&mut runner).unwrap().current();
            if let Some(o) = event.as_object() {
                named += usize::from(o.contains_key("mode") || o.contains_key("night"));
            }
        }
        assert!(named > 64, "{named} of 256 events name a field");
    }
}
