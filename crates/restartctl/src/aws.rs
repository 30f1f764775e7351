//! Who is at the keyboard: the caller's identity from STS (`restart_aws::sts`), or
//! the `USER` variable when STS cannot tell. Every AWS call goes through the adapters
//! (`restart_aws`).

use aws_types::SdkConfig;
use restart_aws::sts::caller_identity;
use serde::Serialize;

/// Who is at the keyboard, for the pause record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caller {
    /// The IAM identity's ARN, or `user:$USER` when STS could not tell.
    pub id: String,
    /// `sts` (GetCallerIdentity) or `user` (the `USER` variable).
    pub source: &'static str,
    /// Why STS could not tell, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sts_error: Option<String>,
}

/// The caller's IAM identity from STS GetCallerIdentity; when that fails (no credentials,
/// no network), `user:$USER`, saying why.
pub async fn caller(sdk: &SdkConfig) -> Caller {
    match caller_identity(sdk).await {
        Ok(identity) => Caller {
            id: identity.arn,
            source: "sts",
            sts_error: None,
        },
        Err(e) => from_user(e.to_string()),
    }
}

fn from_user(why: String) -> Caller {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".into());
    Caller {
        id: format!("user:{user}"),
        source: "user",
        sts_error: Some(why),
    }
}
