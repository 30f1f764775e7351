//! AWS Organizations over awsJson1_1 (`X-Amz-Target: AWSOrganizationsV20161128.<Action>`):
//! the fleet's accounts in a tree of organizational units.
//!
//! The organization exists when the spec has `organization`; every account of the fleet is a
//! member, in the root unless its `ou` path says otherwise, and the management account (default
//! the hub) is listed in the root too. Ids are derived from the seed: the organization
//! `o-` + 10, the root `r-` + 4, each OU `ou-<root>-` + 8 lowercase letters or digits (from its
//! path), so the same spec always gives the same ids.
//!
//! Actions: ListAccounts, ListAccountsForParent, ListOrganizationalUnitsForParent, ListRoots,
//! DescribeOrganization. Only the management account and delegated administrators may list;
//! other callers get `AccessDeniedException` (DescribeOrganization works for every member).

use std::collections::{HashMap, HashSet};

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{AwsError, parse_body};
use crate::rng::hash_parts;
use crate::spec::{FleetSpec, MemberStatus, Membership};
use crate::world::Millis;

/// The `X-Amz-Target` prefix of AWS Organizations.
pub const TARGET_PREFIX: &str = "AWSOrganizationsV20161128.";

/// The actions simulated (each throttled by its own bucket).
pub const ACTIONS: &[&str] = &[
    "ListAccounts",
    "ListAccountsForParent",
    "ListOrganizationalUnitsForParent",
    "ListRoots",
    "DescribeOrganization",
];

/// The largest page (and the default): MaxResults is 1..=20.
pub const MAX_RESULTS: usize = 20;

/// One organizational unit.
#[derive(Debug, Clone)]
pub struct Ou {
    /// `ou-<root>-<8>`.
    pub id: String,
    /// Its name (the last element of its path).
    pub name: String,
    /// The id of its parent (the root or an OU).
    pub parent: String,
}

/// One member account.
#[derive(Debug, Clone)]
pub struct Member {
    /// Twelve digits.
    pub id: String,
    /// `Status` (and `State`).
    pub status: MemberStatus,
    /// The id of its parent (the root or an OU).
    pub parent: String,
    /// Joined at, simulated milliseconds.
    pub joined: Millis,
    /// Whether it is the management account (which CREATED nothing: it is INVITED to itself,
    /// as AWS reports).
    pub created: bool,
}

/// The fleet's organization.
#[derive(Debug, Clone)]
pub struct Organization {
    /// `o-` + 10.
    pub id: String,
    /// `r-` + 4.
    pub root: String,
    /// The management account.
    pub management: String,
    /// Delegated administrators.
    pub delegated: HashSet<String>,
    /// OUs in creation order (parents before children).
    pub ous: Vec<Ou>,
    /// Members: the management account, then the fleet's accounts in spec order.
    pub members: Vec<Member>,
}

/// `n` as `len` base-36 digits (lowercase letters and digits).
fn base36(mut n: u64, len: usize) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = vec![b'0'; len];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8(out).unwrap_or_default()
}

impl Organization {
    /// The organization of a validated spec whose accounts are `order` (explicit accounts
    /// first, then generated ones, as the world built them); `None` without `organization`.
    pub fn build(spec: &FleetSpec, order: &[String], start: Millis) -> Option<Self> {
        let org = spec.organization.as_ref()?;
        let seed = spec.seed;
        let management = org
            .management_account
            .clone()
            .unwrap_or_else(|| spec.hub_account.clone());
        let root_part = base36(hash_parts(seed, &["organizations", "root"]), 4);
        let mut this = Self {
            id: format!(
                "o-{}",
                base36(hash_parts(seed, &["organizations", "org"]), 10)
            ),
            root: format!("r-{root_part}"),
            management: management.clone(),
            delegated: org.delegated_administrators.iter().cloned().collect(),
            ous: Vec::new(),
            members: Vec::new(),
        };
        let mut by_path: HashMap<Vec<String>, String> = HashMap::new();
        let mut used: HashSet<String> = HashSet::new();
        let joined =
            |id: &str| start - (hash_parts(seed, &["joined", id]) % 1000 + 1) as i64 * 86_400_000;
        this.members.push(Member {
            id: management.clone(),
            status: MemberStatus::Active,
            parent: this.root.clone(),
            joined: joined(&management),
            created: false,
        });
        let explicit = spec.accounts.len();
        for (i, id) in order.iter().enumerate() {
            if *id == management {
                continue;
            }
            let membership = if i < explicit {
                spec.account_memberships
                    .get(id)
                    .cloned()
                    .unwrap_or_default()
            } else {
                let g = spec.generate.clone().unwrap_or_default();
                let n = i - explicit;
                let ou = if g.ous.is_empty() {
                    Vec::new()
                } else {
                    g.ous[n % g.ous.len()].clone()
                };
                let draw = hash_parts(seed, &["suspended", id]) as f64 / u64::MAX as f64;
                let status = if draw * 100.0 < g.suspended_percent {
                    MemberStatus::Suspended
                } else {
                    MemberStatus::Active
                };
                Membership { ou, status }
            };
            let parent = this.ou_for(&membership.ou, &root_part, &mut by_path, &mut used, seed);
            this.members.push(Member {
                id: id.clone(),
                status: membership.status,
                parent,
                joined: joined(id),
                created: true,
            });
        }
        // The generated OUs exist even when no account landed in them.
        if let Some(g) = &spec.generate {
            for path in &g.ous {
                this.ou_for(path, &root_part, &mut by_path, &mut used, seed);
            }
        }
        Some(this)
    }

    /// The id of the OU at `path`, creating it and its ancestors; the root for `[]`.
    fn ou_for(
        &mut self,
        path: &[String],
        root_part: &str,
        by_path: &mut HashMap<Vec<String>, String>,
        used: &mut HashSet<String>,
        seed: u64,
    ) -> String {
        let mut parent = self.root.clone();
        for depth in 1..=path.len() {
            let key = path[..depth].to_vec();
            if let Some(id) = by_path.get(&key) {
                parent = id.clone();
                continue;
            }
            let joined = key.join("\u{0}");
            let mut salt = 0u32;
            let id = loop {
                let h = hash_parts(seed, &["ou", &joined, &salt.to_string()]);
                let id = format!("ou-{root_part}-{}", base36(h, 8));
                if used.insert(id.clone()) {
                    break id;
                }
                salt += 1;
            };
            self.ous.push(Ou {
                id: id.clone(),
                name: path[depth - 1].clone(),
                parent: parent.clone(),
            });
            by_path.insert(key, id.clone());
            parent = id;
        }
        parent
    }

    /// The id of the OU at `path` (names from the root), if it exists.
    pub fn ou_id(&self, path: &[&str]) -> Option<&str> {
        let mut parent = self.root.as_str();
        for name in path {
            parent = self
                .ous
                .iter()
                .find(|o| o.parent == parent && o.name == *name)?
                .id
                .as_str();
        }
        Some(parent)
    }

    fn arn(&self, kind: &str, id: &str) -> String {
        format!(
            "arn:aws:organizations::{}:{kind}/{}/{id}",
            self.management, self.id
        )
    }

    fn account_json(&self, m: &Member) -> Value {
        let name = if m.id == self.management {
            "management".to_owned()
        } else {
            format!("fleet-{}", m.id)
        };
        json!({
            "Id": m.id,
            "Arn": self.arn("account", &m.id),
            "Email": format!("aws+{}@example.com", m.id),
            "Name": name,
            "Status": m.status.as_str(),
            "State": m.status.as_str(),
            "JoinedMethod": if m.created { "CREATED" } else { "INVITED" },
            "JoinedTimestamp": m.joined as f64 / 1000.0,
        })
    }

    fn ou_json(&self, o: &Ou) -> Value {
        json!({"Id": o.id, "Arn": self.arn("ou", &o.id), "Name": o.name})
    }

    fn is_parent(&self, id: &str) -> bool {
        id == self.root || self.ous.iter().any(|o| o.id == id)
    }
}

/// An Organizations error: code, message and, for `InvalidInputException`, its `Reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgError {
    /// The error (status, code, message).
    pub error: AwsError,
    /// `Reason` of an `InvalidInputException`.
    pub reason: Option<&'static str>,
}

impl OrgError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            error: AwsError::bad(code, message),
            reason: None,
        }
    }

    fn invalid(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            error: AwsError::bad("InvalidInputException", message),
            reason: Some(reason),
        }
    }

    /// `TooManyRequestsException`, which the SDKs classify as throttling and retry.
    pub fn too_many_requests() -> Self {
        Self {
            error: AwsError::bad(
                "TooManyRequestsException",
                "You have sent too many requests in too short a period of time. The quota helps \
                 protect against denial-of-service attacks. Try again later.",
            ),
            reason: None,
        }
    }

    /// The JSON body: `{"__type", "Message"[, "Reason"]}`.
    pub fn json_body(&self) -> String {
        let mut body = json!({"__type": self.error.code, "Message": self.error.message});
        if let Some(r) = self.reason {
            body["Reason"] = json!(r);
        }
        if self.error.code == "TooManyRequestsException" {
            body["Type"] = json!("AWS::Organizations");
        }
        body.to_string()
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        self.error.status
    }
}

impl From<AwsError> for OrgError {
    fn from(error: AwsError) -> Self {
        Self {
            error,
            reason: None,
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ListRequest {
    parent_id: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

/// `ParentId`'s pattern: a root or an OU id.
fn parent_pattern_ok(id: &str) -> bool {
    let part = |s: &str, min: usize| {
        (min..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if let Some(rest) = id.strip_prefix("ou-") {
        rest.split_once('-')
            .is_some_and(|(r, o)| part(r, 4) && part(o, 8))
    } else {
        id.strip_prefix("r-").is_some_and(|r| part(r, 4))
    }
}

/// Handles one Organizations request of `caller` (the account its keys act in).
pub fn handle(
    org: Option<&Organization>,
    seed: u64,
    caller: &str,
    action: &str,
    body: &[u8],
) -> Result<String, OrgError> {
    if !ACTIONS.contains(&action) {
        return Err(OrgError::new(
            "UnknownOperationException",
            format!("Operation {action} is not supported by fleet-sim."),
        ));
    }
    let req: ListRequest = parse_body(body)?;
    let Some(org) = org else {
        return Err(OrgError::new(
            "AWSOrganizationsNotInUseException",
            "Your account is not a member of an organization.",
        ));
    };
    let member = org.members.iter().any(|m| m.id == caller);
    if !member {
        return Err(OrgError::new(
            "AWSOrganizationsNotInUseException",
            "Your account is not a member of an organization.",
        ));
    }
    if action == "DescribeOrganization" {
        return Ok(json!({"Organization": {
            "Id": org.id,
            "Arn": org.arn("organization", &org.id),
            "FeatureSet": "ALL",
            "MasterAccountArn": org.arn("account", &org.management),
            "MasterAccountId": org.management,
            "MasterAccountEmail": format!("aws+{}@example.com", org.management),
            "AvailablePolicyTypes": [],
        }})
        .to_string());
    }
    if caller != org.management && !org.delegated.contains(caller) {
        return Err(OrgError::new(
            "AccessDeniedException",
            "You don't have permissions to access this resource.",
        ));
    }
    let size = match req.max_results {
        None => MAX_RESULTS,
        Some(n) if n < 1 => {
            return Err(OrgError::invalid(
                "MIN_VALUE_EXCEEDED",
                "You provided a value that is less than the minimum value allowed (MaxResults: 1).",
            ));
        }
        Some(n) if n > MAX_RESULTS as i64 => {
            return Err(OrgError::invalid(
                "MAX_VALUE_EXCEEDED",
                format!(
                    "You provided a value that exceeds the maximum value allowed (MaxResults: {MAX_RESULTS})."
                ),
            ));
        }
        Some(n) => n as usize,
    };
    let parent = if action.ends_with("ForParent") {
        let Some(parent) = req.parent_id.as_deref() else {
            return Err(OrgError::invalid(
                "INPUT_REQUIRED",
                "You must specify a value for ParentId.",
            ));
        };
        if !parent_pattern_ok(parent) {
            return Err(OrgError::invalid(
                "INVALID_PATTERN",
                format!(
                    "You specified a value ({parent}) that is not valid for ParentId: it must match \
                     ^(r-[0-9a-z]{{4,32}})|(ou-[0-9a-z]{{4,32}}-[a-z0-9]{{8,32}})$."
                ),
            ));
        }
        if !org.is_parent(parent) {
            return Err(OrgError::new(
                "ParentNotFoundException",
                "We can't find a root or OU with the ParentId that you specified.",
            ));
        }
        Some(parent)
    } else {
        None
    };
    let items: Vec<Value> = match action {
        "ListAccounts" => org.members.iter().map(|m| org.account_json(m)).collect(),
        "ListAccountsForParent" => org
            .members
            .iter()
            .filter(|m| Some(m.parent.as_str()) == parent)
            .map(|m| org.account_json(m))
            .collect(),
        "ListOrganizationalUnitsForParent" => org
            .ous
            .iter()
            .filter(|o| Some(o.parent.as_str()) == parent)
            .map(|o| org.ou_json(o))
            .collect(),
        _ => vec![json!({
            "Id": org.root,
            "Arn": org.arn("root", &org.root),
            "Name": "Root",
            "PolicyTypes": [],
        })],
    };
    let scope = hash_parts(seed, &["organizations", action, parent.unwrap_or_default()]);
    let from = match req.next_token.as_deref() {
        None => 0,
        Some(t) => t
            .get(..16)
            .zip(t.get(16..))
            .filter(|(s, _)| u64::from_str_radix(s, 16).ok() == Some(scope))
            .and_then(|(_, i)| usize::from_str_radix(i, 16).ok())
            .filter(|i| *i <= items.len())
            .ok_or_else(|| {
                OrgError::invalid(
                    "INVALID_PAGINATION_TOKEN",
                    "The NextToken you provided is not valid.",
                )
            })?,
    };
    let end = (from + size).min(items.len());
    let page = items[from..end].to_vec();
    let key = match action {
        "ListOrganizationalUnitsForParent" => "OrganizationalUnits",
        "ListRoots" => "Roots",
        _ => "Accounts",
    };
    let mut out = json!({ key: page });
    if end < items.len() {
        out["NextToken"] = json!(format!("{scope:016x}{end:x}"));
    }
    Ok(out.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> (FleetSpec, Organization) {
        let spec = FleetSpec::from_yaml_str(yaml).expect("valid");
        let world = crate::world::build(&spec, 1_800_000_000_000);
        let org = world.organization.clone().expect("an organization");
        (spec, org)
    }

    const TREE: &str = r#"
organization: {management_account: "999999999999"}
accounts:
  - id: "999999999999"
  - {id: "111111111111", ou: [Workloads, Prod]}
  - {id: "222222222222", ou: [Workloads], status: SUSPENDED}
  - {id: "333333333333"}
"#;

    #[test]
    fn ids_follow_the_api_patterns_and_the_seed() {
        let (_, org) = spec(TREE);
        assert!(org.id.starts_with("o-") && org.id.len() == 12, "{}", org.id);
        assert!(parent_pattern_ok(&org.root), "{}", org.root);
        let prod = org.ou_id(&["Workloads", "Prod"]).unwrap();
        assert!(parent_pattern_ok(prod), "{prod}");
        assert!(prod.starts_with(&format!("ou-{}-", &org.root[2..])));
        let (_, again) = spec(TREE);
        assert_eq!(again.ou_id(&["Workloads", "Prod"]), Some(prod));
        let (_, other) = spec(&format!("seed: 9\n{TREE}"));
        assert_ne!(other.ou_id(&["Workloads", "Prod"]), Some(prod));
        // The management account first, listed once.
        let ids: Vec<&str> = org.members.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "999999999999",
                "111111111111",
                "222222222222",
                "333333333333"
            ]
        );
    }

    #[test]
    fn pages_and_errors() {
        let (spec, org) = spec(TREE);
        let call = |caller: &str, action: &str, body: &str| {
            handle(Some(&org), spec.seed, caller, action, body.as_bytes())
        };
        let page: Value = serde_json::from_str(
            &call("999999999999", "ListAccounts", r#"{"MaxResults": 3}"#).unwrap(),
        )
        .unwrap();
        assert_eq!(page["Accounts"].as_array().unwrap().len(), 3);
        let token = page["NextToken"].as_str().unwrap();
        let rest: Value = serde_json::from_str(
            &call(
                "999999999999",
                "ListAccounts",
                &format!(r#"{{"NextToken": "{token}"}}"#),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(rest["Accounts"][0]["Id"], "333333333333");
        assert!(rest.get("NextToken").is_none());
        let e = call("111111111111", "ListAccounts", "{}").unwrap_err();
        assert_eq!(e.error.code, "AccessDeniedException");
        let e = call("999999999999", "ListAccounts", r#"{"MaxResults": 21}"#).unwrap_err();
        assert_eq!(
            (e.error.code, e.reason),
            ("InvalidInputException", Some("MAX_VALUE_EXCEEDED"))
        );
        let e = call(
            "999999999999",
            "ListAccountsForParent",
            r#"{"ParentId": "ou-zzzz-zzzzzzzz"}"#,
        )
        .unwrap_err();
        assert_eq!(e.error.code, "ParentNotFoundException");
        let e = call(
            "999999999999",
            "ListAccountsForParent",
            r#"{"ParentId": "Workloads"}"#,
        )
        .unwrap_err();
        assert_eq!(e.reason, Some("INVALID_PATTERN"));
        assert!(e.json_body().contains(r#""Reason":"INVALID_PATTERN""#));
        let e = call("999999999999", "ListAccounts", r#"{"NextToken": "nope"}"#).unwrap_err();
        assert_eq!(e.reason, Some("INVALID_PAGINATION_TOKEN"));
        let e = handle(None, 0, "000000000000", "ListAccounts", b"{}").unwrap_err();
        assert_eq!(e.error.code, "AWSOrganizationsNotInUseException");
        // Any member may describe the organization.
        assert!(call("111111111111", "DescribeOrganization", "").is_ok());
    }
}
