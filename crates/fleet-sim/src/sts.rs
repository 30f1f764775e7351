//! AWS STS over the query protocol (form-encoded POST, XML answers): AssumeRole and
//! GetCallerIdentity.

use std::collections::HashMap;

use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};

use crate::auth::{
    AssumeTarget, Authorization, Authorizer, Principal, Session, account_of_issued_key,
    issued_access_key,
};
use crate::error::{AwsError, xml_escape};
use crate::rng::hash_parts;
use crate::world::World;

const NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// The caller as STS sees it.
#[derive(Debug, Clone, Copy)]
pub struct StsCaller<'a> {
    /// The access key the request was signed with.
    pub access_key: &'a str,
    /// The account the key acts in.
    pub account: &'a str,
}

/// Sessions issued so far: account → (role name, session name) of the latest, for
/// GetCallerIdentity.
pub type Sessions = HashMap<String, (String, String)>;

/// Sessions issued so far by their session token, for an [`Authorizer`] to know who signs.
pub type Issued = HashMap<String, Session>;

/// The authorization of an AssumeRole: the authorizer, who asks, and the organization the
/// fleet's accounts belong to (`aws:ResourceOrgID`).
#[derive(Debug, Clone, Copy)]
pub struct StsAuth<'a> {
    /// Decides.
    pub authorizer: &'a dyn Authorizer,
    /// Who signed the AssumeRole.
    pub principal: &'a Principal,
    /// The fleet's organization (every account of the fleet is a member), if it has one.
    pub organization_id: Option<&'a str>,
}

fn validation(message: impl Into<String>) -> AwsError {
    AwsError::bad("ValidationError", message)
}

fn access_denied(message: String) -> AwsError {
    AwsError {
        status: StatusCode::FORBIDDEN,
        code: "AccessDenied",
        message,
    }
}

/// The ARN of the caller: the latest assumed role of its account for issued keys, a hub user
/// otherwise.
pub fn caller_arn(caller: StsCaller<'_>, sessions: &Sessions) -> String {
    if account_of_issued_key(caller.access_key).is_some() {
        let (role, session) = sessions
            .get(caller.account)
            .cloned()
            .unwrap_or_else(|| ("fleet-sim".to_owned(), "session".to_owned()));
        format!(
            "arn:aws:sts::{}:assumed-role/{role}/{session}",
            caller.account
        )
    } else {
        format!("arn:aws:iam::{}:user/fleet-sim-hub", caller.account)
    }
}

/// Handles one STS request body; returns the XML answer.
/// With `auth`, an AssumeRole is put to the authorizer first (the caller's policy and the
/// role's trust policy), and the session it issues is recorded in `issued`.
// The simulator's state is passed piece by piece, as the server holds it under one lock.
#[allow(clippy::too_many_arguments)]
pub fn handle(
    world: &World,
    sessions: &mut Sessions,
    issued: &mut Issued,
    auth: Option<StsAuth<'_>>,
    caller: StsCaller<'_>,
    params: &HashMap<String, String>,
    real_now: DateTime<Utc>,
    request_id: &str,
) -> Result<String, AwsError> {
    let action = params.get("Action").map(String::as_str).unwrap_or_default();
    match action {
        "AssumeRole" => assume_role(
            world, sessions, issued, auth, caller, params, real_now, request_id,
        ),
        "GetCallerIdentity" => Ok(get_caller_identity(caller, sessions, request_id)),
        other => Err(AwsError::bad(
            "InvalidAction",
            format!("Could not find operation {other} for version 2011-06-15"),
        )),
    }
}

// As `handle`.
#[allow(clippy::too_many_arguments)]
fn assume_role(
    world: &World,
    sessions: &mut Sessions,
    issued: &mut Issued,
    auth: Option<StsAuth<'_>>,
    caller: StsCaller<'_>,
    params: &HashMap<String, String>,
    real_now: DateTime<Utc>,
    request_id: &str,
) -> Result<String, AwsError> {
    let role_arn = params.get("RoleArn").ok_or_else(|| {
        AwsError::bad(
            "MissingParameter",
            "The request must contain the parameter RoleArn",
        )
    })?;
    let session = params.get("RoleSessionName").ok_or_else(|| {
        AwsError::bad(
            "MissingParameter",
            "The request must contain the parameter RoleSessionName",
        )
    })?;
    let session_ok = (2..=64).contains(&session.len())
        && session
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c));
    if !session_ok {
        return Err(validation(format!(
            "1 validation error detected: Value '{session}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]* and have length between 2 and 64"
        )));
    }
    let chained = account_of_issued_key(caller.access_key).is_some();
    let duration: i64 = match params.get("DurationSeconds") {
        None => 3600,
        Some(d) => d
            .parse()
            .map_err(|_| validation(format!("Value '{d}' at 'durationSeconds' is not a number")))?,
    };
    if !(900..=43_200).contains(&duration) {
        return Err(validation(format!(
            "1 validation error detected: Value '{duration}' at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200"
        )));
    }
    if chained && duration > 3600 {
        return Err(validation(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
        ));
    }
    // arn:aws:iam::ACCOUNT:role/[path/]NAME
    let parsed = role_arn
        .strip_prefix("arn:aws:iam::")
        .and_then(|r| r.split_once(":role/"))
        .filter(|(acct, name)| {
            acct.len() == 12 && acct.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty()
        });
    let Some((target, role_path)) = parsed else {
        return Err(validation(format!("{role_arn} is invalid")));
    };
    let role_name = role_path.rsplit('/').next().unwrap_or(role_path);
    let denied = || {
        access_denied(format!(
            "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
            caller_arn(caller, sessions)
        ))
    };
    let Some(account) = world.accounts.get(target) else {
        return Err(denied());
    };
    if account.deny_assume_role {
        return Err(denied());
    }
    if let Some(required) = &account.external_id
        && params.get("ExternalId") != Some(required)
    {
        return Err(denied());
    }
    // The caller's identity policy and the role's trust policy, as IAM evaluates them: the
    // ExternalId, the role's account and organization, the session's name, source identity
    // and tags are the condition keys the policies may test.
    let mut source_identity = None;
    if let Some(auth) = auth {
        let mut context: std::collections::BTreeMap<String, Vec<String>> = [
            ("aws:ResourceAccount", Some(target)),
            ("aws:ResourceOrgID", auth.organization_id),
            (
                "sts:ExternalId",
                params.get("ExternalId").map(String::as_str),
            ),
            ("sts:RoleSessionName", Some(session.as_str())),
            (
                "sts:SourceIdentity",
                params.get("SourceIdentity").map(String::as_str),
            ),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_owned(), vec![v?.to_owned()])))
        .collect();
        let tag_keys: Vec<String> = params
            .iter()
            .filter(|(k, _)| k.starts_with("Tags.member.") && k.ends_with(".Key"))
            .map(|(_, v)| v.clone())
            .collect();
        if !tag_keys.is_empty() {
            context.insert("aws:TagKeys".to_owned(), tag_keys);
        }
        let request = Authorization {
            principal: auth.principal.clone(),
            action: "sts:AssumeRole".to_owned(),
            resource: role_arn.clone(),
            context,
            assume: Some(AssumeTarget {
                account: target.to_owned(),
                role_arn: role_arn.clone(),
            }),
        };
        match auth.authorizer.authorize(&request) {
            Ok(allowed) => source_identity = allowed.source_identity,
            Err(message) => return Err(access_denied(message)),
        }
    }
    sessions.insert(target.to_owned(), (role_name.to_owned(), session.clone()));
    let h = hash_parts(world.seed, &[target, role_name, session]);
    issued.insert(
        session_token(target, h),
        Session {
            account: target.to_owned(),
            role_arn: format!("arn:aws:iam::{target}:role/{role_path}"),
            role_name: role_name.to_owned(),
            session_name: session.clone(),
            source_identity,
        },
    );
    let role_id = format!("AROA{h:016X}S");
    let expiration = (real_now + Duration::seconds(duration)).format("%Y-%m-%dT%H:%M:%SZ");
    Ok(format!(
        r#"<AssumeRoleResponse xmlns="{NS}">
  <AssumeRoleResult>
    <AssumedRoleUser>
      <AssumedRoleId>{role_id}:{session_x}</AssumedRoleId>
      <Arn>arn:aws:sts::{target}:assumed-role/{role_x}/{session_x}</Arn>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>{akid}</AccessKeyId>
      <SecretAccessKey>fleetsimSecret{h:016x}{target}</SecretAccessKey>
      <SessionToken>{token}</SessionToken>
      <Expiration>{expiration}</Expiration>
    </Credentials>
    <PackedPolicySize>0</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata>
    <RequestId>{rid}</RequestId>
  </ResponseMetadata>
</AssumeRoleResponse>
"#,
        session_x = xml_escape(session),
        role_x = xml_escape(role_name),
        akid = issued_access_key(target),
        token = session_token(target, h),
        rid = xml_escape(request_id),
    ))
}

/// The session token of a session into `target` (its hash `h` names the role and session).
fn session_token(target: &str, h: u64) -> String {
    format!("FwoGZXIvYXdzEFleetSim{target}{h:016x}")
}

fn get_caller_identity(caller: StsCaller<'_>, sessions: &Sessions, request_id: &str) -> String {
    let arn = caller_arn(caller, sessions);
    format!(
        r#"<GetCallerIdentityResponse xmlns="{NS}">
  <GetCallerIdentityResult>
    <Arn>{arn}</Arn>
    <UserId>{user}</UserId>
    <Account>{account}</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata>
    <RequestId>{rid}</RequestId>
  </ResponseMetadata>
</GetCallerIdentityResponse>
"#,
        arn = xml_escape(&arn),
        user = xml_escape(caller.access_key),
        account = caller.account,
        rid = xml_escape(request_id),
    )
}
