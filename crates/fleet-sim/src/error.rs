//! Errors as AWS endpoints return them: JSON `__type` + `message` for the awsJson1_1 services
//! (ECS, Config; SSM writes `Message`, [`crate::ssm::json_body`]), an XML `ErrorResponse` for
//! STS (query protocol), a CBOR `__type` + `message` for CloudWatch (rpc-v2-cbor,
//! [`crate::cloudwatch::error_body`]).

use axum::http::StatusCode;

/// An error answered to a client, in the calling protocol's shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AwsError {
    /// HTTP status.
    pub status: StatusCode,
    /// Error code (`__type` in JSON, `Code` in XML).
    pub code: &'static str,
    /// Message.
    pub message: String,
}

impl AwsError {
    /// An error with HTTP status 400.
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    /// ECS `InvalidParameterException`.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::bad("InvalidParameterException", message)
    }

    /// ECS `ClusterNotFoundException`.
    pub fn cluster_not_found() -> Self {
        Self::bad("ClusterNotFoundException", "Cluster not found.")
    }

    /// ECS `ServiceNotFoundException`.
    pub fn service_not_found() -> Self {
        Self::bad("ServiceNotFoundException", "Service not found.")
    }

    /// ECS `AccessDeniedException`.
    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::bad("AccessDeniedException", message)
    }

    /// `ThrottlingException`, which the SDKs classify as throttling and retry.
    pub fn throttling() -> Self {
        Self::bad("ThrottlingException", "Rate exceeded")
    }

    /// Malformed request body.
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::bad("SerializationException", message)
    }

    /// ECS `ServerException` (HTTP 500), which the SDKs classify as transient and retry.
    pub fn server_error() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "ServerException",
            message: "Service Unavailable. Please try again later.".to_owned(),
        }
    }

    /// An access key the simulator does not know.
    pub fn unrecognized_client() -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            code: "UnrecognizedClientException",
            message: "The security token included in the request is invalid.".to_owned(),
        }
    }

    /// No Authorization header.
    pub fn missing_auth() -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            code: "MissingAuthenticationTokenException",
            message: "Missing Authentication Token".to_owned(),
        }
    }

    /// The JSON body (`{"__type": ..., "message": ...}`).
    pub fn json_body(&self) -> String {
        serde_json::json!({ "__type": self.code, "message": self.message }).to_string()
    }

    /// The STS XML body.
    pub fn xml_body(&self, request_id: &str) -> String {
        let kind = if self.status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        };
        format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <Error>\n    <Type>{kind}</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
            xml_escape(self.code),
            xml_escape(&self.message),
            xml_escape(request_id)
        )
    }
}

/// Escapes text for XML element content and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// An awsJson request body as `T`; an empty body is `{}`, as the AWS services read it.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AwsError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| AwsError::serialization(format!("Unable to parse request body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let e = AwsError::throttling();
        assert_eq!(
            e.json_body(),
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#
        );
        let x = AwsError::bad("AccessDenied", "a<b").xml_body("r1");
        assert!(x.contains("<Code>AccessDenied</Code>"));
        assert!(x.contains("<Message>a&lt;b</Message>"));
        assert!(x.contains("<Type>Sender</Type>"));
    }
}
