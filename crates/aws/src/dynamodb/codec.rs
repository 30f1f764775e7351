//! Attribute values to and from Rust values: the primitives every item is built with (`s`, `n`,
//! `date`, `time`, `name`, JSON as maps and lists), `Reader`, which reads typed attributes back
//! with errors ([`ItemError`]) that name the item and the attribute, the attributes naming a
//! service, and the TTL of per-night items ([`expires_at`]). Each item's own conversion lives
//! with its port's module.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{NaiveDate, NaiveTime};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::keys::schema;
use restart_core::ids::{ServiceArn, ServiceId};

/// An item as the SDK reads and writes it.
pub type Item = HashMap<String, AttributeValue>;

/// Why a stored item could not be read: which item, which attribute, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("item pk={pk:?} sk={sk:?}: attribute `{field}` {problem}")]
pub struct ItemError {
    pub pk: String,
    pub sk: String,
    pub field: String,
    pub problem: String,
}

/// Reads typed attributes out of an item, naming the item and the attribute in errors.
pub(super) struct Reader<'a> {
    item: &'a Item,
    pk: &'a str,
    sk: &'a str,
}

impl<'a> Reader<'a> {
    pub(super) fn new(item: &'a Item) -> Self {
        let key = |k| match item.get(k) {
            Some(AttributeValue::S(s)) => s.as_str(),
            _ => "?",
        };
        Self {
            item,
            pk: key(schema::PK),
            sk: key(schema::SK),
        }
    }

    pub(super) fn err(&self, field: &str, problem: impl Display) -> ItemError {
        ItemError {
            pk: self.pk.to_owned(),
            sk: self.sk.to_owned(),
            field: field.to_owned(),
            problem: problem.to_string(),
        }
    }

    /// A string attribute; `None` when absent (or NULL).
    pub(super) fn opt_s(&self, field: &str) -> Result<Option<&'a str>, ItemError> {
        match self.item.get(field) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(s)) => Ok(Some(s)),
            Some(_) => Err(self.err(field, "is not a string (S)")),
        }
    }

    pub(super) fn s(&self, field: &str) -> Result<&'a str, ItemError> {
        self.opt_s(field)?
            .ok_or_else(|| self.err(field, "is missing"))
    }

    /// A string attribute parsed with `FromStr` (ids, ARNs, dates).
    pub(super) fn opt_parse<T>(&self, field: &str) -> Result<Option<T>, ItemError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.opt_s(field)?
            .map(|s| {
                s.parse()
                    .map_err(|e| self.err(field, format!("{s:?} is not valid: {e}")))
            })
            .transpose()
    }

    pub(super) fn parse<T>(&self, field: &str) -> Result<T, ItemError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.opt_parse(field)?
            .ok_or_else(|| self.err(field, "is missing"))
    }

    /// A boolean attribute; `false` when absent (or NULL).
    pub(super) fn flag(&self, field: &str) -> Result<bool, ItemError> {
        match self.item.get(field) {
            None | Some(AttributeValue::Null(_)) => Ok(false),
            Some(AttributeValue::Bool(b)) => Ok(*b),
            Some(_) => Err(self.err(field, "is not a boolean (BOOL)")),
        }
    }

    /// A number attribute.
    pub(super) fn opt_n<T>(&self, field: &str) -> Result<Option<T>, ItemError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.item.get(field) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(n)) => n
                .parse()
                .map(Some)
                .map_err(|e| self.err(field, format!("{n:?} is out of range: {e}"))),
            Some(_) => Err(self.err(field, "is not a number (N)")),
        }
    }

    pub(super) fn n<T>(&self, field: &str) -> Result<T, ItemError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.opt_n(field)?
            .ok_or_else(|| self.err(field, "is missing"))
    }

    /// An enumeration stored by its serde name.
    pub(super) fn opt_name<T: DeserializeOwned>(
        &self,
        field: &str,
    ) -> Result<Option<T>, ItemError> {
        self.opt_s(field)?
            .map(|s| {
                serde_json::from_value(Value::String(s.to_owned()))
                    .map_err(|e| self.err(field, format!("{s:?} is not known: {e}")))
            })
            .transpose()
    }

    pub(super) fn name<T: DeserializeOwned>(&self, field: &str) -> Result<T, ItemError> {
        self.opt_name(field)?
            .ok_or_else(|| self.err(field, "is missing"))
    }

    /// Checks the `kind` attribute.
    pub(super) fn expect_kind(&self, expected: &str) -> Result<(), ItemError> {
        match self.s(schema::KIND)? {
            k if k == expected => Ok(()),
            k => Err(self.err(schema::KIND, format!("is {k:?}, expected {expected:?}"))),
        }
    }
}

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn date(d: NaiveDate) -> AttributeValue {
    s(d.format("%Y-%m-%d").to_string())
}

/// An enumeration's serde name (`enrolled`, `REPLICA`).
pub(super) fn name<T: Serialize>(v: &T) -> AttributeValue {
    match serde_json::to_value(v) {
        Ok(Value::String(name)) => s(name),
        // Every enumeration stored here is a unit enum, whose serde form is a string.
        Ok(other) => s(other.to_string()),
        Err(e) => s(e.to_string()),
    }
}

pub(super) fn time(t: chrono::DateTime<chrono::Utc>) -> AttributeValue {
    s(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// The attributes naming a service, shared by catalog and night items.
pub(super) fn identity(id: &ServiceId, arn: &ServiceArn) -> Item {
    Item::from([
        ("account".to_owned(), s(id.account.as_str())),
        ("region".to_owned(), s(&id.region)),
        ("cluster".to_owned(), s(&id.cluster)),
        ("service".to_owned(), s(&id.service)),
        ("arn".to_owned(), s(arn.to_string())),
    ])
}

pub(super) fn read_service_id(r: &Reader<'_>) -> Result<ServiceId, ItemError> {
    Ok(ServiceId {
        account: r.parse("account")?,
        region: r.s("region")?.to_owned(),
        cluster: r.s("cluster")?.to_owned(),
        service: r.s("service")?.to_owned(),
    })
}

/// Inserts the optional attributes that have a value (`None` is omitted, not stored as null).
pub(super) fn insert_present<const N: usize>(
    item: &mut Item,
    optional: [(&str, Option<AttributeValue>); N],
) {
    for (field, value) in optional {
        if let Some(value) = value {
            item.insert(field.to_owned(), value);
        }
    }
}

/// Epoch seconds at which a night's items expire: `ttl_days` after the night began (UTC).
pub fn expires_at(night: NaiveDate, ttl_days: u32) -> i64 {
    night.and_time(NaiveTime::MIN).and_utc().timestamp() + i64::from(ttl_days) * 86_400
}

/// A JSON value as an attribute value (objects as M, arrays as L, numbers as N).
pub(super) fn to_attribute(v: &Value) -> AttributeValue {
    match v {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(x) => AttributeValue::N(x.to_string()),
        Value::String(x) => AttributeValue::S(x.clone()),
        Value::Array(a) => AttributeValue::L(a.iter().map(to_attribute).collect()),
        Value::Object(o) => AttributeValue::M(
            o.iter()
                .map(|(k, v)| (k.clone(), to_attribute(v)))
                .collect(),
        ),
    }
}

/// An attribute value as JSON; sets and binary are not used by this table.
pub(super) fn to_json(v: &AttributeValue) -> Result<Value, String> {
    Ok(match v {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::S(x) => Value::String(x.clone()),
        AttributeValue::N(x) => {
            if let Ok(u) = x.parse::<u64>() {
                Value::from(u)
            } else if let Ok(i) = x.parse::<i64>() {
                Value::from(i)
            } else {
                x.parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| format!("{x:?} is not a number"))?
            }
        }
        AttributeValue::L(a) => Value::Array(a.iter().map(to_json).collect::<Result<_, _>>()?),
        AttributeValue::M(m) => Value::Object(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        _ => return Err("has a type this table does not use (a set or binary)".to_owned()),
    })
}
