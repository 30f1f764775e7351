//! The decisions: each request evaluated with `iam-rs` against the identity policy of the
//! caller's role and, for `sts:AssumeRole`, the trust policy of the role asked for; each
//! decision recorded (the trace) so that the check can report every denied request and every
//! grant that no request used, and replay the trace against changed templates.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

use anyhow::Context as _;
use iam_rs::{
    Arn, Context, ContextValue, Decision, EvaluationOptions, IAMPolicy, IAMRequest,
    PolicyEvaluator, Principal, PrincipalId,
};
use serde::{Deserialize, Serialize};

use super::template::Role;

/// One IAM request: the action, the resource's ARN (`*` for actions without one) and the
/// condition keys (one value for single-valued keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub action: String,
    pub resource: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, Vec<String>>,
}

impl Request {
    pub fn new(action: impl Into<String>, resource: impl Into<String>) -> Request {
        Request {
            action: action.into(),
            resource: resource.into(),
            context: BTreeMap::new(),
        }
    }

    /// With condition key `key` = `values`.
    pub fn with(mut self, key: &str, values: &[&str]) -> Request {
        self.context.insert(
            key.to_owned(),
            values.iter().map(|v| (*v).to_owned()).collect(),
        );
        self
    }
}

/// Who makes a request: the role (its ARN, the identity policy's owner) and the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// `arn:aws:iam::ACCOUNT:role/NAME`.
    pub role_arn: String,
    /// The session's name (the function, `oncall`, ...).
    pub session: String,
    /// Whether the identity policy is the templates' (false for on-call's own SSO role, of
    /// which only the trust of the role it assumes is the templates').
    #[serde(default = "yes")]
    pub ours: bool,
}

fn yes() -> bool {
    true
}

impl Caller {
    /// `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`, as AWS names the caller in a denial.
    pub fn session_arn(&self) -> String {
        match self.role_arn.split_once(":role/") {
            Some((head, name)) if self.ours => format!(
                "{}:assumed-role/{}/{}",
                head.replace(":iam::", ":sts::"),
                name.rsplit('/').next().unwrap_or(name),
                self.session
            ),
            _ => self.role_arn.clone(),
        }
    }
}

/// A request as it was made, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub caller: Caller,
    pub request: Request,
    /// For `sts:*` on a role: the role whose trust policy must allow it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_of: Option<String>,
    /// What made it: `night`, `restartctl status`, `runbook: ...`.
    pub origin: String,
    /// Whether it was sent (false: evaluated only, as a command that cannot run locally).
    pub sent: bool,
}

/// A decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// The message AWS answers.
    Denied(String),
}

struct Compiled {
    role: Role,
    identity: PolicyEvaluator,
    trust: Option<PolicyEvaluator>,
}

/// The templates' roles, ready to evaluate requests, and the trace of what was evaluated.
pub struct Policies {
    roles: Vec<Compiled>,
    by_arn: HashMap<String, usize>,
    trace: Mutex<Vec<Entry>>,
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policies")
            .field("roles", &self.by_arn.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn evaluator(statements: Vec<serde_json::Value>) -> anyhow::Result<PolicyEvaluator> {
    let doc = serde_json::json!({"Version": "2012-10-17", "Statement": statements});
    let policy = IAMPolicy::from_json(&doc.to_string())
        .with_context(|| format!("iam-rs cannot read {doc}"))?;
    Ok(
        PolicyEvaluator::with_policies(vec![policy]).with_options(EvaluationOptions {
            collect_match_details: true,
            stop_on_explicit_deny: false,
            ..EvaluationOptions::default()
        }),
    )
}

/// The resource as iam-rs takes it: an ARN; `*` stands for a request without a resource, which
/// only statements with `Resource: "*"` match.
fn resource_arn(resource: &str) -> anyhow::Result<Arn> {
    let text = if resource == "*" {
        "arn:aws:none:::no-resource-level-permission"
    } else {
        resource
    };
    Arn::parse(text).map_err(|e| anyhow::anyhow!("{resource} is not an ARN: {e}"))
}

fn context_of(request: &Request) -> Context {
    let mut c = Context::new();
    for (k, v) in &request.context {
        let value = match v.as_slice() {
            [one] if !MULTI_VALUED.contains(&k.as_str()) => ContextValue::String(one.clone()),
            _ => ContextValue::StringList(v.clone()),
        };
        c.insert(k.clone(), value);
    }
    c
}

/// The condition keys that are multivalued even with one value.
const MULTI_VALUED: [&str; 3] = [
    "aws:TagKeys",
    "dynamodb:LeadingKeys",
    "sts:TransitiveTagKeys",
];

impl Policies {
    /// The roles of both templates.
    pub fn new(roles: Vec<Role>) -> anyhow::Result<Policies> {
        let mut compiled = Vec::new();
        let mut by_arn = HashMap::new();
        for role in roles {
            let identity = evaluator(role.statements.iter().map(|s| s.json.clone()).collect())
                .with_context(|| format!("{} {}", role.file, role.logical_id))?;
            // A trust policy names no resource (it is the role's own): `*` stands for it.
            let trust = role
                .trust
                .get("Statement")
                .and_then(serde_json::Value::as_array)
                .map(|statements| {
                    evaluator(
                        statements
                            .iter()
                            .map(|st| {
                                let mut st = st.clone();
                                if let Some(o) = st.as_object_mut() {
                                    o.entry("Resource").or_insert_with(|| "*".into());
                                }
                                st
                            })
                            .collect(),
                    )
                })
                .transpose()
                .with_context(|| format!("{} {}'s trust policy", role.file, role.logical_id))?;
            by_arn.insert(role.arn.clone(), compiled.len());
            compiled.push(Compiled {
                role,
                identity,
                trust,
            });
        }
        Ok(Policies {
            roles: compiled,
            by_arn,
            trace: Mutex::new(Vec::new()),
        })
    }

    /// The role of `arn`, if it is one of the templates'.
    pub fn role(&self, arn: &str) -> Option<&Role> {
        self.by_arn.get(arn).map(|&i| &self.roles[i].role)
    }

    /// Every role.
    pub fn roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.iter().map(|c| &c.role)
    }

    /// Decides `entry` without recording it; also returns the identity statements that
    /// allowed it (indices into the role's statements).
    pub fn decide(&self, entry: &Entry) -> (Verdict, Vec<usize>) {
        let caller = &entry.caller;
        let req = &entry.request;
        let deny_identity = || {
            Verdict::Denied(format!(
                "User: {} is not authorized to perform: {} on resource: {} because no identity-based policy allows the {} action",
                caller.session_arn(),
                req.action,
                req.resource,
                req.action
            ))
        };
        let mut matched = Vec::new();
        if caller.ours {
            let Some(&i) = self.by_arn.get(&caller.role_arn) else {
                return (deny_identity(), matched);
            };
            match self.evaluate(&self.roles[i].identity, &caller.role_arn, req) {
                Ok((true, m)) => matched = m,
                Ok((false, _)) => return (deny_identity(), matched),
                Err(e) => {
                    return (
                        Verdict::Denied(format!("{}: {e}", caller.session_arn())),
                        matched,
                    );
                }
            }
        }
        if let Some(target) = &entry.trust_of {
            // A role outside the templates trusts no one here; a member role is trusted by
            // the principals its trust policy names (the role ARN, not the session's).
            let trusted = self
                .by_arn
                .get(target)
                .and_then(|&i| self.roles[i].trust.as_ref())
                .is_some_and(|t| matches!(self.evaluate(t, &caller.role_arn, req), Ok((true, _))));
            if !trusted {
                return (
                    Verdict::Denied(format!(
                        "User: {} is not authorized to perform: {} on resource: {}",
                        caller.session_arn(),
                        req.action,
                        req.resource
                    )),
                    matched,
                );
            }
        }
        (Verdict::Allowed, matched)
    }

    /// Whether `policy` allows `req` by `principal`, and which statements allowed it.
    fn evaluate(
        &self,
        policy: &PolicyEvaluator,
        principal: &str,
        req: &Request,
    ) -> anyhow::Result<(bool, Vec<usize>)> {
        let request = IAMRequest::new_with_context(
            Principal::Aws(PrincipalId::String(principal.to_owned())),
            req.action.clone(),
            resource_arn(&req.resource)?,
            context_of(req),
        );
        let result = policy
            .evaluate(&request)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let matched = result
            .statement_details
            .iter()
            .enumerate()
            .filter(|(_, d)| d.conditions_satisfied)
            .map(|(i, _)| i)
            .collect();
        Ok((result.decision == Decision::Allow, matched))
    }

    /// Decides `entry` and records it.
    pub fn authorize(&self, entry: Entry) -> Verdict {
        let (verdict, _) = self.decide(&entry);
        if let Verdict::Denied(message) = &verdict {
            tracing::warn!(origin = %entry.origin, "{message}");
        }
        self.trace
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(entry);
        verdict
    }

    /// Everything recorded so far.
    pub fn trace(&self) -> Vec<Entry> {
        self.trace
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replays `trace`: the denied requests (each once, with its message and how often it was
    /// made) and the grants no allowed request used.
    pub fn replay(&self, trace: &[Entry]) -> Replay {
        let mut denied: BTreeMap<(String, String, String), Denial> = BTreeMap::new();
        let mut used: BTreeSet<(String, String, String, String)> = BTreeSet::new();
        for entry in trace {
            let (verdict, matched) = self.decide(entry);
            match verdict {
                Verdict::Denied(message) => {
                    let d = denied
                        .entry((
                            entry.caller.session_arn(),
                            entry.request.action.clone(),
                            entry.request.resource.clone(),
                        ))
                        .or_insert_with(|| Denial {
                            principal: entry.caller.session_arn(),
                            action: entry.request.action.clone(),
                            resource: entry.request.resource.clone(),
                            message,
                            origin: entry.origin.clone(),
                            count: 0,
                        });
                    d.count += 1;
                }
                Verdict::Allowed => {
                    let Some(role) = self.role(&entry.caller.role_arn) else {
                        continue;
                    };
                    for i in matched {
                        let st = &role.statements[i];
                        for a in &st.actions {
                            if action_matches(a, &entry.request.action) {
                                used.insert((
                                    role.file.clone(),
                                    role.logical_id.clone(),
                                    st.sid.clone(),
                                    a.clone(),
                                ));
                            }
                        }
                    }
                }
            }
        }
        let mut unused = BTreeMap::new();
        for role in self.roles() {
            for st in &role.statements {
                for a in &st.actions {
                    let key = (
                        role.file.clone(),
                        role.logical_id.clone(),
                        st.sid.clone(),
                        a.clone(),
                    );
                    if !used.contains(&key) {
                        unused.entry(key).or_insert_with(|| st.kept.clone());
                    }
                }
            }
        }
        Replay {
            denied: denied.into_values().collect(),
            unused: unused
                .into_iter()
                .map(|((file, role, sid, action), kept)| Unused {
                    file,
                    role,
                    sid,
                    action,
                    kept,
                })
                .collect(),
        }
    }
}

/// An action pattern of a statement (`ecs:*`, `kms:GenerateDataKey*`) against an action.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    let (p, a) = (pattern.to_ascii_lowercase(), action.to_ascii_lowercase());
    match p.split_once('*') {
        None => p == a,
        Some((head, tail)) => a
            .strip_prefix(head)
            .is_some_and(|rest| rest.ends_with(tail)),
    }
}

/// A denied request, as the check reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Denial {
    pub principal: String,
    pub action: String,
    pub resource: String,
    pub message: String,
    pub origin: String,
    pub count: usize,
}

/// A grant (one action of one statement) that no allowed request used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unused {
    pub file: String,
    pub role: String,
    pub sid: String,
    pub action: String,
    /// The reason comment that keeps it, if any.
    pub kept: Option<String>,
}

/// What a replay found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Replay {
    pub denied: Vec<Denial>,
    pub unused: Vec<Unused>,
}

impl Replay {
    /// The check passes: nothing denied, and every unused grant has its reason.
    pub fn passes(&self) -> bool {
        self.denied.is_empty() && self.unused.iter().all(|u| u.kept.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::action_matches;

    #[test]
    fn action_patterns_match_whole_actions_in_any_script() {
        assert!(action_matches("ecs:*", "ecs:UpdateService"));
        assert!(action_matches(
            "kms:GenerateDataKey*",
            "kms:GenerateDataKeyWithoutPlaintext"
        ));
        assert!(action_matches("DynamoDB:GetItem", "dynamodb:getitem"));
        assert!(!action_matches("ecs:*Service", "ecs:UpdateServices"));
        // Head and tail never overlap, and text that is not ASCII is compared, never sliced.
        assert!(!action_matches("ab*b", "ab"));
        assert!(!action_matches("é*", "e"));
        assert!(action_matches("sts:é*ü", "sts:éü"));
        assert!(!action_matches("s*", "ß"));
    }
}
