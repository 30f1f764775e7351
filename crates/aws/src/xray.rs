//! Every AWS call as X-Ray sees it: an SDK interceptor on every client this crate builds emits,
//! once a call has ended (all its attempts), one `tracing` event of target `xray.aws` with what
//! its subsegment needs: service, operation, account, region, the DynamoDB table (the store
//! calls), HTTP status, attempts, throttled or not, the error code and class, and when it
//! started. `restart-xray`'s layer turns the event into a subsegment of the invocation; with no
//! layer installed the interceptor sees that no one wants the event and records nothing.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use aws_types::region::Region;
use restart_core::ids::AccountId;

use crate::sdk::ErrorClass;

/// The target of the call events (`restart_xray::AWS_CALL_TARGET`).
pub const TARGET: &str = "xray.aws";

/// A client of the SDK crate `$sdk` built from `$config` (an `SdkConfig`) with the interceptor
/// `$calls` (an [`XrayCalls`]).
macro_rules! client {
    ($sdk:ident, $config:expr, $calls:expr) => {
        $sdk::Client::from_conf(
            $sdk::config::Builder::from($config)
                .interceptor($calls)
                .build(),
        )
    };
}
pub(crate) use client;

/// The interceptor: the account its client acts in (none for the hub's clients, whose account
/// is the function's own).
#[derive(Debug, Clone, Default)]
pub struct XrayCalls {
    account: Option<String>,
}

impl XrayCalls {
    /// For a client of the hub.
    pub fn hub() -> Self {
        Self { account: None }
    }

    /// For a client acting in a member account.
    pub fn member(account: &AccountId) -> Self {
        Self {
            account: Some(account.to_string()),
        }
    }
}

/// When the call started, and the table it names.
#[derive(Debug, Clone)]
struct Started {
    at: f64,
    table: Option<String>,
}

impl Storable for Started {
    type Storer = StoreReplace<Self>;
}

impl Intercept for XrayCalls {
    fn name(&self) -> &'static str {
        "XrayCalls"
    }

    fn read_before_execution(
        &self,
        _: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if tracing::enabled!(target: TARGET, tracing::Level::TRACE) {
            cfg.interceptor_state().store_put(Started {
                at: epoch_seconds(),
                table: None,
            });
        }
        Ok(())
    }

    fn read_after_serialization(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let is_store = cfg
            .load::<Metadata>()
            .is_some_and(|m| m.service() == "DynamoDB");
        if let Some(started) = cfg.load::<Started>().filter(|_| is_store) {
            let table = context.request().body().bytes().and_then(table_name);
            let started = Started {
                at: started.at,
                table,
            };
            cfg.interceptor_state().store_put(started);
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(started) = cfg.load::<Started>() else {
            return Ok(());
        };
        let metadata = cfg.load::<Metadata>();
        let region = cfg.load::<Region>();
        let attempts = cfg.load::<RequestAttempts>().map_or(1, |a| a.attempts());
        let response = context.response();
        let status = response.map(|r| r.status().as_u16());
        let ok = matches!(context.output_or_error(), Some(Ok(_)));
        let code = if ok {
            None
        } else {
            response.and_then(error_code)
        };
        let class = (!ok).then(|| ErrorClass::of(code.as_deref(), status));
        tracing::trace!(
            target: TARGET,
            service = metadata.map_or("", |m| m.service()),
            operation = metadata.map_or("", |m| m.name()),
            region = region.map(|r| r.as_ref()),
            account = self.account.as_deref(),
            table = started.table.as_deref(),
            status = status.map(u64::from),
            attempts = u64::from(attempts),
            throttled = class == Some(ErrorClass::Throttled),
            ok,
            error_code = code.as_deref(),
            error_class = class.map(|c| format!("{c:?}").to_lowercase()),
            start = started.at,
        );
        Ok(())
    }
}

fn epoch_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_micros() as f64 / 1e6)
}

/// The `TableName` of a DynamoDB request's JSON body (the first one, for a request naming
/// several tables it is the first written).
fn table_name(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    if let Some(name) = value.get("TableName").and_then(|v| v.as_str()) {
        return Some(name.to_owned());
    }
    // BatchWriteItem/BatchGetItem: tables are the keys of RequestItems; TransactWriteItems:
    // each item names its table.
    if let Some(items) = value.get("RequestItems").and_then(|v| v.as_object()) {
        return items.keys().next().cloned();
    }
    value
        .get("TransactItems")
        .and_then(|v| v.as_array())
        .and_then(|items| {
            items.iter().find_map(|item| {
                item.as_object()?
                    .values()
                    .find_map(|op| op.get("TableName")?.as_str().map(str::to_owned))
            })
        })
}

/// The error code of a failed call's answer: the `x-amzn-errortype` header, else the JSON
/// body's `__type` (or `code`), else the XML body's `<Code>`; without namespace or URL.
fn error_code(response: &HttpResponse) -> Option<String> {
    let raw = response
        .headers()
        .get("x-amzn-errortype")
        .map(str::to_owned)
        .or_else(|| {
            let body = response.body().bytes()?;
            match serde_json::from_slice::<serde_json::Value>(body) {
                Ok(json) => ["__type", "code", "Code"]
                    .iter()
                    .find_map(|k| json.get(k)?.as_str().map(str::to_owned)),
                Err(_) => {
                    let text = std::str::from_utf8(body).ok()?;
                    let start = text.find("<Code>")? + "<Code>".len();
                    let end = text[start..].find("</Code>")? + start;
                    Some(text[start..end].to_owned())
                }
            }
        })?;
    let code = raw.split(':').next().unwrap_or(&raw);
    let code = code.rsplit('#').next().unwrap_or(code);
    Some(code.trim().to_owned()).filter(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::body::SdkBody;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
        let mut r = HttpResponse::new(status.try_into().unwrap(), SdkBody::from(body.to_owned()));
        for (k, v) in headers {
            r.headers_mut().insert(k.to_string(), v.to_string());
        }
        r
    }

    #[test]
    fn the_error_code_comes_from_the_header_or_the_body_of_any_protocol() {
        let cases = [
            (
                response(
                    400,
                    &[(
                        "x-amzn-errortype",
                        "ThrottlingException:http://internal.amazon.com/",
                    )],
                    "",
                ),
                Some("ThrottlingException"),
            ),
            (
                response(
                    400,
                    &[],
                    r#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"x"}"#,
                ),
                Some("ConditionalCheckFailedException"),
            ),
            (
                response(
                    403,
                    &[],
                    "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code></Error></ErrorResponse>",
                ),
                Some("AccessDenied"),
            ),
            (response(500, &[], ""), None),
        ];
        for (r, want) in cases {
            assert_eq!(error_code(&r).as_deref(), want);
        }
    }

    #[test]
    fn the_store_calls_name_their_table() {
        assert_eq!(
            table_name(br#"{"TableName":"restarts","Key":{}}"#).as_deref(),
            Some("restarts")
        );
        assert_eq!(
            table_name(br#"{"RequestItems":{"restarts":[]}}"#).as_deref(),
            Some("restarts")
        );
        assert_eq!(
            table_name(br#"{"TransactItems":[{"Update":{"TableName":"restarts"}}]}"#).as_deref(),
            Some("restarts")
        );
        assert_eq!(table_name(b"not json"), None);
    }
}
