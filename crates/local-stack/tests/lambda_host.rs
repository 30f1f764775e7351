//! The local Lambda host answers the Lambda Invoke API as Lambda does: a handler's error is a
//! function error (status 200, `X-Amz-Function-Error`, `{"errorType", "errorMessage"}` with the
//! docs/design.md 3.8 name, which moto's interpreter takes as the failure's name for Retry/Catch); an
//! unknown function is Lambda's ResourceNotFoundException; anything else goes to moto. No
//! network beyond loopback: the handlers fail on their input before calling anything.

use std::sync::Arc;

use local_stack::http;
use local_stack::lambda_host::{Functions, LambdaHost};
use restart_core::Config;

async fn host(moto: &str) -> LambdaHost {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    host_on(listener, moto)
}

/// The four functions served on `listener`, everything else forwarded to `moto`. Their AWS
/// clients reach nothing: a handler that got past its input would fail with Transient, not
/// with the errors the tests expect.
pub fn host_on(listener: tokio::net::TcpListener, moto: &str) -> LambdaHost {
    let config = Config::from_vars(
        [
            ("TABLE_NAME", "t"),
            ("ACCOUNTS", "111111111111"),
            ("REGIONS", "eu-west-1"),
            ("MEMBER_ROLE_NAME", "member"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .unwrap();
    let sdk = local_stack::stack::sdk_config("http://127.0.0.1:9", "http://127.0.0.1:9");
    LambdaHost::serve(
        listener,
        Arc::new(Functions::new(&config, &sdk)),
        moto.to_owned(),
        local_stack::bill::Meter::new("pk", "sk", None),
    )
    .unwrap()
}

async fn invoke(
    host: &LambdaHost,
    target: &str,
    body: &str,
) -> (u16, Option<String>, serde_json::Value) {
    let client = http::client();
    let url = format!(
        "http://{}/2015-03-31/functions/{target}/invocations",
        host.addr
    );
    let req = hyper::Request::post(url)
        .body(axum::body::Body::from(body.to_owned()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let function_error = resp
        .headers()
        .get("X-Amz-Function-Error")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        status,
        function_error,
        serde_json::from_slice(&bytes).unwrap(),
    )
}

#[tokio::test]
async fn a_handler_error_is_a_function_error_named_by_its_error_type() {
    let host = host("http://127.0.0.1:9").await;
    let arn = "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Arestarter";
    let (status, function_error, body) = invoke(&host, arn, r#"{"mode": "sideways"}"#).await;
    assert_eq!(status, 200);
    assert_eq!(function_error.as_deref(), Some("Unhandled"));
    assert_eq!(body["errorType"], "InvalidInput");
    assert!(
        body["errorMessage"].as_str().unwrap().contains("mode"),
        "{body}"
    );

    let (_, function_error, body) = invoke(&host, "notifier", r#"{"mode": "owners"}"#).await;
    assert_eq!(function_error.as_deref(), Some("Unhandled"));
    assert_eq!(body["errorType"], "InvalidInput", "{body}");
    assert_eq!(host.invocations().calls["restarter"], 1);
    assert_eq!(host.invocations().errors["notifier"]["InvalidInput"], 1);
    host.stop().await;
}

#[tokio::test]
async fn an_unknown_function_is_not_found_and_other_requests_go_to_moto() {
    let host = host("http://127.0.0.1:9").await;
    let (status, function_error, body) = invoke(&host, "nope", "{}").await;
    assert_eq!(status, 404);
    assert_eq!(function_error, None);
    assert!(body["Message"].as_str().unwrap().contains("nope"));

    // Forwarded to "moto" (nothing listens there): the host says it could not reach it.
    let (status, answer) = http::send(
        &http::client(),
        hyper::Method::GET,
        &format!("http://{}/moto-api/data.json", host.addr),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 502);
    assert!(String::from_utf8_lossy(&answer).contains("could not reach moto"));
    host.stop().await;
}
