//! The roles of `infra/template.yaml` and `infra/member-role.yaml` as IAM would hold them once
//! deployed: parameters resolved as `infra/samconfig.example.toml` resolves them (then the
//! template's defaults), CloudFormation's intrinsics (`!Ref`, `!GetAtt`, `!Sub`, `!If`,
//! `!Join`, `!Select`, `!Split`; the conditions `!Equals`, `!Not`, `!And`, `!Or`, `!Contains`,
//! `!Condition`; `AWS::NoValue`, which drops a list item such as an `!If` statement whose
//! condition is false) resolved to the names the local stack gives its resources, and each statement kept with where it comes from (role, Sid) and the reason
//! comment that keeps it without a local request (`# Kept without a local request: ...`
//! right above it).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, bail};
use serde_json::{Value as Json, json};
use serde_yaml_ng::Value;

/// The comment that keeps a grant no local request uses: `# Kept without a local request:
/// REASON` on one of the comment lines right above the statement.
pub const KEPT_MARK: &str = "# Kept without a local request:";

/// A parameter's value: a string, or a list (`CommaDelimitedList`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    One(String),
    List(Vec<String>),
}

impl Param {
    fn to_json(&self) -> Json {
        match self {
            Param::One(s) => Json::String(s.clone()),
            Param::List(l) => json!(l),
        }
    }
    fn as_text(&self) -> String {
        match self {
            Param::One(s) => s.clone(),
            Param::List(l) => l.join(","),
        }
    }
}

/// What the stack's resources are called once created: by logical id, `Ref` and attributes.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pub account: String,
    pub region: String,
    pub stack_name: String,
    /// `Ref` of a resource, by logical id.
    pub refs: BTreeMap<String, String>,
    /// `GetAtt` of a resource, by `LogicalId.Attribute`.
    pub atts: BTreeMap<String, String>,
}

/// One statement of a role's identity policy, resolved.
#[derive(Debug, Clone)]
pub struct Statement {
    pub sid: String,
    /// The statement as JSON (`Effect`, `Action`, `Resource`, `Condition`).
    pub json: Json,
    /// Its actions as written.
    pub actions: Vec<String>,
    /// The reason of a [`KEPT_MARK`] comment above it.
    pub kept: Option<String>,
}

/// A role: its identity policies' statements and its trust policy.
#[derive(Debug, Clone)]
pub struct Role {
    /// `template.yaml` or `member-role.yaml`.
    pub file: String,
    pub logical_id: String,
    pub arn: String,
    pub statements: Vec<Statement>,
    pub trust: Json,
}

/// A parsed template and the values its intrinsics resolve to.
#[derive(Debug)]
pub struct Resolver {
    pub file: String,
    text: String,
    doc: Value,
    pub params: BTreeMap<String, Param>,
    conditions: BTreeMap<String, bool>,
    pub names: Names,
}

fn tag_name(t: &serde_yaml_ng::value::TaggedValue) -> String {
    t.tag.to_string().trim_start_matches('!').to_owned()
}

impl Resolver {
    /// Parses `path`; `given` are the parameters set (samconfig, the stack's own); the others
    /// take their defaults. A parameter without either is an error.
    pub fn load(
        path: &Path,
        given: &BTreeMap<String, String>,
        names: Names,
    ) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let doc: Value = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("parsing {}", path.display()))?;
        let file = path.file_name().map_or_else(
            || path.display().to_string(),
            |f| f.to_string_lossy().into_owned(),
        );
        let mut params = BTreeMap::new();
        for (k, p) in doc
            .get("Parameters")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
        {
            let name = k
                .as_str()
                .context("a parameter name is not a string")?
                .to_owned();
            let ty = p.get("Type").and_then(Value::as_str).unwrap_or("String");
            let raw = match given.get(&name) {
                Some(v) => v.clone(),
                None => match p.get("Default") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    Some(Value::Bool(b)) => b.to_string(),
                    _ => bail!(
                        "{file}: parameter {name} has no value (no default, not in samconfig)"
                    ),
                },
            };
            let value = if ty == "CommaDelimitedList" || ty.starts_with("List<") {
                Param::List(if raw.is_empty() {
                    vec![String::new()]
                } else {
                    raw.split(',').map(|s| s.trim().to_owned()).collect()
                })
            } else {
                Param::One(raw)
            };
            params.insert(name, value);
        }
        let mut r = Resolver {
            file,
            text,
            doc,
            params,
            conditions: BTreeMap::new(),
            names,
        };
        let conds: Vec<(String, Value)> = r
            .doc
            .get("Conditions")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.clone())))
            .collect();
        // Conditions may name conditions defined before them (CloudFormation allows any
        // order; the templates define them in order): resolved in a few passes.
        for _ in 0..conds.len().max(1) {
            for (name, v) in &conds {
                if let Ok(b) = r.condition(v) {
                    r.conditions.insert(name.clone(), b);
                }
            }
        }
        for (name, _) in &conds {
            anyhow::ensure!(
                r.conditions.contains_key(name),
                "{}: condition {name} cannot be resolved",
                r.file
            );
        }
        Ok(r)
    }

    /// The resources, by logical id (those whose `Condition` is false left out).
    pub fn resources(&self) -> Vec<(String, &Value)> {
        self.doc
            .get("Resources")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v)))
            .filter(|(_, v)| {
                v.get("Condition")
                    .and_then(Value::as_str)
                    .is_none_or(|c| self.conditions.get(c).copied().unwrap_or(false))
            })
            .collect()
    }

    /// A resource's type.
    pub fn type_of(&self, id: &str) -> Option<&str> {
        self.doc.get("Resources")?.get(id)?.get("Type")?.as_str()
    }

    /// A resource's property, resolved.
    pub fn property(&self, id: &str, name: &str) -> Option<Json> {
        let v = self
            .doc
            .get("Resources")?
            .get(id)?
            .get("Properties")?
            .get(name)?;
        self.resolve(v).ok().flatten()
    }

    fn condition(&self, v: &Value) -> anyhow::Result<bool> {
        let (name, arg) = match v {
            Value::Tagged(t) => (tag_name(t), &t.value),
            Value::Mapping(m) if m.len() == 1 => {
                let (k, a) = m.iter().next().context("empty")?;
                (
                    k.as_str()
                        .unwrap_or_default()
                        .trim_start_matches("Fn::")
                        .to_owned(),
                    a,
                )
            }
            other => bail!("not a condition: {other:?}"),
        };
        let items = || arg.as_sequence().cloned().unwrap_or_default();
        Ok(match name.as_str() {
            "Equals" => {
                let i = items();
                anyhow::ensure!(i.len() == 2, "Equals takes two values");
                let a = self.resolve(&i[0])?.unwrap_or(Json::Null);
                let b = self.resolve(&i[1])?.unwrap_or(Json::Null);
                json_text(&a) == json_text(&b)
            }
            "Not" => !self.condition(items().first().context("Not takes one condition")?)?,
            "And" => {
                let mut all = true;
                for c in items() {
                    all &= self.condition(&c)?;
                }
                all
            }
            "Or" => {
                let mut any = false;
                for c in items() {
                    any |= self.condition(&c)?;
                }
                any
            }
            "Condition" => {
                let n = arg.as_str().context("Condition takes a name")?;
                *self
                    .conditions
                    .get(n)
                    .with_context(|| format!("condition {n} not resolved yet"))?
            }
            "Contains" => {
                let i = items();
                let list = self.resolve(&i[0])?.unwrap_or(Json::Null);
                let x = self.resolve(&i[1])?.unwrap_or(Json::Null);
                list.as_array().is_some_and(|l| l.contains(&x))
            }
            other => bail!("condition function {other} is not known to the local IAM check"),
        })
    }

    fn reference(&self, name: &str) -> anyhow::Result<Option<Json>> {
        Ok(Some(match name {
            "AWS::NoValue" => return Ok(None),
            "AWS::AccountId" => Json::String(self.names.account.clone()),
            "AWS::Region" => Json::String(self.names.region.clone()),
            "AWS::Partition" => Json::String("aws".into()),
            "AWS::URLSuffix" => Json::String("amazonaws.com".into()),
            "AWS::StackName" => Json::String(self.names.stack_name.clone()),
            "AWS::StackId" => Json::String(format!(
                "arn:aws:cloudformation:{}:{}:stack/{}/00000000-0000-4000-8000-000000000000",
                self.names.region, self.names.account, self.names.stack_name
            )),
            other => {
                if let Some(p) = self.params.get(other) {
                    p.to_json()
                } else if let Some(r) = self.names.refs.get(other) {
                    Json::String(r.clone())
                } else {
                    bail!(
                        "{}: !Ref {other}: no parameter or resource the local stack names",
                        self.file
                    )
                }
            }
        }))
    }

    fn get_att(&self, target: &str) -> anyhow::Result<Json> {
        self.names
            .atts
            .get(target)
            .map(|v| Json::String(v.clone()))
            .with_context(|| {
                format!(
                    "{}: !GetAtt {target}: not an attribute the local stack names",
                    self.file
                )
            })
    }

    fn sub(&self, template: &str, vars: &serde_json::Map<String, Json>) -> anyhow::Result<String> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(at) = rest.find("${") {
            out.push_str(&rest[..at]);
            let after = &rest[at + 2..];
            let end = after
                .find('}')
                .with_context(|| format!("{}: unclosed ${{ in {template}", self.file))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.get(name) {
                out.push_str(&json_text(v));
            } else if name.contains('.') && !name.starts_with("AWS::") {
                out.push_str(&json_text(&self.get_att(name)?));
            } else {
                let v = self.reference(name)?.unwrap_or(Json::Null);
                out.push_str(&json_text(&v));
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// `v` with every intrinsic resolved; `None` for `AWS::NoValue` (the element is left out).
    pub fn resolve(&self, v: &Value) -> anyhow::Result<Option<Json>> {
        Ok(match v {
            Value::Null => Some(Json::Null),
            Value::Bool(b) => Some(Json::Bool(*b)),
            Value::Number(n) => Some(serde_json::from_str(&n.to_string()).unwrap_or(Json::Null)),
            Value::String(s) => Some(Json::String(s.clone())),
            Value::Sequence(items) => {
                let mut out = Vec::new();
                for i in items {
                    if let Some(x) = self.resolve(i)? {
                        out.push(x);
                    }
                }
                Some(Json::Array(out))
            }
            Value::Mapping(m) => {
                if m.len() == 1
                    && let Some((k, arg)) = m.iter().next()
                    && let Some(k) = k.as_str()
                    && (k == "Ref"
                        || k.starts_with("Fn::")
                        || k == "Condition" && !arg.is_mapping())
                {
                    return self.function(k.trim_start_matches("Fn::"), arg);
                }
                let mut out = serde_json::Map::new();
                for (k, x) in m {
                    let key = match k {
                        Value::String(s) => s.clone(),
                        other => serde_yaml_ng::to_string(other)?.trim().to_owned(),
                    };
                    if let Some(x) = self.resolve(x)? {
                        out.insert(key, x);
                    }
                }
                Some(Json::Object(out))
            }
            Value::Tagged(t) => self.function(&tag_name(t), &t.value)?,
        })
    }

    fn function(&self, name: &str, arg: &Value) -> anyhow::Result<Option<Json>> {
        Ok(match name {
            "Ref" => self.reference(arg.as_str().context("!Ref takes a name")?)?,
            "GetAtt" => {
                let target = match arg {
                    Value::String(s) => s.clone(),
                    Value::Sequence(parts) => parts
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("."),
                    _ => bail!("!GetAtt takes Resource.Attribute"),
                };
                Some(self.get_att(&target)?)
            }
            "Sub" => Some(Json::String(match arg {
                Value::String(s) => self.sub(s, &serde_json::Map::new())?,
                Value::Sequence(parts) if parts.len() == 2 => {
                    let t = parts[0]
                        .as_str()
                        .context("!Sub's first item is the string")?;
                    let vars = self.resolve(&parts[1])?.unwrap_or(Json::Null);
                    self.sub(
                        t,
                        vars.as_object()
                            .context("!Sub's second item maps names to values")?,
                    )?
                }
                _ => bail!("!Sub takes a string or [string, {{vars}}]"),
            })),
            "If" => {
                let items = arg
                    .as_sequence()
                    .context("!If takes [condition, then, else]")?;
                anyhow::ensure!(items.len() == 3, "!If takes [condition, then, else]");
                let c = items[0].as_str().context("!If's condition is a name")?;
                let holds = *self
                    .conditions
                    .get(c)
                    .with_context(|| format!("!If: no condition {c}"))?;
                self.resolve(&items[if holds { 1 } else { 2 }])?
            }
            "Join" => {
                let items = arg.as_sequence().context("!Join takes [separator, list]")?;
                let sep = items.first().and_then(Value::as_str).unwrap_or_default();
                let list = self
                    .resolve(items.get(1).context("!Join takes a list")?)?
                    .unwrap_or(Json::Null);
                let parts: Vec<String> = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(json_text)
                    .collect();
                Some(Json::String(parts.join(sep)))
            }
            "Select" => {
                let items = arg.as_sequence().context("!Select takes [index, list]")?;
                anyhow::ensure!(items.len() == 2, "!Select takes [index, list]");
                let index = self.resolve(&items[0])?.unwrap_or(Json::Null);
                let index: usize = match &index {
                    Json::Number(n) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
                    Json::String(s) => s.trim().parse().ok(),
                    _ => None,
                }
                .with_context(|| {
                    format!("{}: !Select's index {index} is not a number", self.file)
                })?;
                let list = self.resolve(&items[1])?.unwrap_or(Json::Null);
                let list = list.as_array().with_context(|| {
                    format!("{}: !Select's second item {list} is not a list", self.file)
                })?;
                // CloudFormation refuses an index past the list's end.
                Some(list.get(index).cloned().with_context(|| {
                    format!(
                        "{}: !Select index {index} is past the end of a list of {}",
                        self.file,
                        list.len()
                    )
                })?)
            }
            "Split" => {
                let items = arg
                    .as_sequence()
                    .context("!Split takes [delimiter, string]")?;
                anyhow::ensure!(items.len() == 2, "!Split takes [delimiter, string]");
                let delimiter = items[0]
                    .as_str()
                    .context("!Split's delimiter is a string")?;
                anyhow::ensure!(!delimiter.is_empty(), "!Split's delimiter is empty");
                let source = self.resolve(&items[1])?.unwrap_or(Json::Null);
                let source = source.as_str().with_context(|| {
                    format!(
                        "{}: !Split's second item {source} is not a string",
                        self.file
                    )
                })?;
                Some(json!(source.split(delimiter).collect::<Vec<_>>()))
            }
            "Condition" => Some(Json::Bool(
                *self
                    .conditions
                    .get(arg.as_str().unwrap_or_default())
                    .context("no such condition")?,
            )),
            other => bail!(
                "{}: intrinsic {other} is not known to the local IAM check",
                self.file
            ),
        })
    }

    /// Every `AWS::IAM::Role` of the template (those whose condition holds), resolved.
    pub fn roles(&self) -> anyhow::Result<Vec<Role>> {
        let mut roles = Vec::new();
        for (id, res) in self.resources() {
            if res.get("Type").and_then(Value::as_str) != Some("AWS::IAM::Role") {
                continue;
            }
            let arn = self
                .names
                .atts
                .get(&format!("{id}.Arn"))
                .cloned()
                .with_context(|| {
                    format!("{}: role {id} has no ARN in the local names", self.file)
                })?;
            let props = res.get("Properties").context("a role without Properties")?;
            let trust = self
                .resolve(
                    props
                        .get("AssumeRolePolicyDocument")
                        .context("a role without a trust policy")?,
                )?
                .unwrap_or(Json::Null);
            let mut statements = Vec::new();
            for policy in props
                .get("Policies")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                let doc = self.resolve(
                    policy
                        .get("PolicyDocument")
                        .context("a policy without a document")?,
                )?;
                for st in doc
                    .as_ref()
                    .and_then(|d| d.get("Statement"))
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                {
                    let sid = st
                        .get("Sid")
                        .and_then(Json::as_str)
                        .with_context(|| format!("{}: a statement of {id} has no Sid (the check names grants by Sid)", self.file))?
                        .to_owned();
                    let actions = match st.get("Action") {
                        Some(Json::String(a)) => vec![a.clone()],
                        Some(Json::Array(a)) => a
                            .iter()
                            .filter_map(Json::as_str)
                            .map(str::to_owned)
                            .collect(),
                        _ => bail!("{}: {id}/{sid} has no Action", self.file),
                    };
                    statements.push(Statement {
                        kept: self.kept_reason(&id, &sid),
                        sid,
                        json: st.clone(),
                        actions,
                    });
                }
            }
            roles.push(Role {
                file: self.file.clone(),
                logical_id: id,
                arn,
                statements,
                trust,
            });
        }
        Ok(roles)
    }

    /// The reason of a [`KEPT_MARK`] comment among the comment lines right above `- Sid: SID`
    /// (or above the `- !If` that holds it) inside role `role`'s block of the template's text.
    fn kept_reason(&self, role: &str, sid: &str) -> Option<String> {
        let lines: Vec<&str> = self.text.lines().collect();
        let start = lines
            .iter()
            .position(|l| l.trim_end() == format!("  {role}:"))?;
        let end = lines[start + 1..]
            .iter()
            .position(|l| {
                l.starts_with("  ")
                    && !l.starts_with("   ")
                    && !l.trim().is_empty()
                    && !l.trim_start().starts_with('#')
            })
            .map_or(lines.len(), |p| start + 1 + p);
        let at = (start..end).find(|&i| {
            let t = lines[i].trim();
            t == format!("- Sid: {sid}") || t == format!("- Sid: \"{sid}\"")
        })?;
        // Comment lines, and the `- !If` / `- CONDITION` lines of a conditional statement.
        lines[start..at]
            .iter()
            .rev()
            .take_while(|l| {
                let t = l.trim_start();
                t.starts_with('#') || t == "- !If" || (t.starts_with("- ") && !t.contains(':'))
            })
            .find_map(|l| l.trim_start().strip_prefix(KEPT_MARK))
            .map(|r| r.trim().to_owned())
    }

    /// The template's outputs, resolved (those whose condition holds).
    pub fn outputs(&self) -> anyhow::Result<BTreeMap<String, Param>> {
        let mut out = BTreeMap::new();
        for (k, o) in self
            .doc
            .get("Outputs")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
        {
            if let Some(c) = o.get("Condition").and_then(Value::as_str)
                && !self.conditions.get(c).copied().unwrap_or(false)
            {
                continue;
            }
            let Some(v) = o.get("Value") else { continue };
            let Ok(Some(v)) = self.resolve(v) else {
                continue;
            };
            out.insert(
                k.as_str().unwrap_or_default().to_owned(),
                Param::One(json_text(&v)),
            );
        }
        Ok(out)
    }

    /// A parameter's value as text (lists joined with commas).
    pub fn param_text(&self, name: &str) -> Option<String> {
        self.params.get(name).map(Param::as_text)
    }
}

/// A JSON value as CloudFormation turns it into text.
fn json_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Array(a) => a.iter().map(json_text).collect::<Vec<_>>().join(","),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

/// `parameter_overrides` of a samconfig TOML file: the `"Key=Value"` strings of its array.
/// Only that array is read (the file has no other parameters); comments after `#` are skipped.
pub fn samconfig_parameters(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let start = text
        .find("parameter_overrides")
        .with_context(|| format!("{} has no parameter_overrides", path.display()))?;
    let mut out = BTreeMap::new();
    for line in text[start..].lines().skip(1) {
        let line = line.trim();
        if line.starts_with(']') {
            break;
        }
        let Some(rest) = line.strip_prefix('"') else {
            continue;
        };
        let Some(end) = rest.find('"') else { continue };
        if let Some((k, v)) = rest[..end].split_once('=') {
            out.insert(k.to_owned(), v.to_owned());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names {
            account: "123456789012".into(),
            region: "us-east-1".into(),
            stack_name: "s".into(),
            ..Names::default()
        }
    }

    #[test]
    fn intrinsics_resolve_with_conditions_and_no_value() {
        let dir = std::env::temp_dir().join(format!("iam-template-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.yaml");
        std::fs::write(
            &path,
            r#"
Parameters:
  Org: {Type: String, Default: ""}
  Regions: {Type: CommaDelimitedList}
Conditions:
  HasOrg: !Not [!Equals [!Ref Org, ""]]
Resources:
  R:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {Statement: []}
      Policies:
        - PolicyDocument:
            Statement:
              # A comment.
              # Kept without a local request: because.
              - Sid: A
                Effect: Allow
                Action: sts:AssumeRole
                Resource: !Sub "arn:${AWS::Partition}:iam::*:role/${!Literal}"
                Condition: !If
                  - HasOrg
                  - StringEquals: {aws:ResourceOrgID: !Ref Org}
                  - !Ref AWS::NoValue
              - Sid: B
                Effect: Allow
                Action: [ecs:UpdateService]
                Resource: "*"
                Condition: {StringEquals: {aws:RequestedRegion: !Ref Regions}}
"#,
        )
        .unwrap();
        let mut n = names();
        n.atts
            .insert("R.Arn".into(), "arn:aws:iam::123456789012:role/s-R".into());
        let given = BTreeMap::from([("Regions".to_owned(), "eu-west-1, us-east-1".to_owned())]);
        let r = Resolver::load(&path, &given, n.clone()).unwrap();
        let roles = r.roles().unwrap();
        let a = &roles[0].statements[0];
        assert_eq!(a.json["Resource"], "arn:aws:iam::*:role/${Literal}");
        assert!(a.json.get("Condition").is_none());
        assert_eq!(a.kept.as_deref(), Some("because."));
        let b = &roles[0].statements[1];
        assert_eq!(
            b.json["Condition"]["StringEquals"]["aws:RequestedRegion"],
            json!(["eu-west-1", "us-east-1"])
        );
        assert_eq!(b.kept, None);
        let given = BTreeMap::from([
            ("Regions".to_owned(), "eu-west-1".to_owned()),
            ("Org".to_owned(), "o-1".to_owned()),
        ]);
        let r = Resolver::load(&path, &given, n).unwrap();
        let a = &r.roles().unwrap()[0].statements[0];
        assert_eq!(
            a.json["Condition"]["StringEquals"]["aws:ResourceOrgID"],
            "o-1"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    /// infra/template.yaml's change calendar statement: conditions built with `!Select`,
    /// `!Split` and `!Sub`, and a statement wrapped in `!If [Cond, statement, !Ref
    /// AWS::NoValue]` as an item of the Statement list (dropped when the condition is false).
    #[test]
    fn conditional_statements_and_conditions_of_select_split_and_sub() {
        let dir = std::env::temp_dir().join(format!("iam-template-if-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.yaml");
        std::fs::write(
            &path,
            r#"
Parameters:
  Calendar: {Type: String, Default: ""}
  Prefix: {Type: String, Default: ""}
Conditions:
  HasCalendar: !Not [!Equals [!Ref Calendar, ""]]
  CalendarIsArn: !Equals [!Select [0, !Split [":", !Sub "${Calendar}:"]], "arn"]
  HasPrefix: !Not [!Equals [!Ref Prefix, ""]]
  Both: !And [!Condition HasCalendar, {"Fn::Equals": [{"Fn::Select": ["1", {"Fn::Split": [",", "a,b"]}]}, "b"]}]
Resources:
  R:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {Statement: []}
      Policies:
        - PolicyDocument:
            Statement:
              - Sid: Always
                Effect: Allow
                Action: ecs:DescribeServices
                Resource: "*"
              # The calendar.
              - !If
                - HasCalendar
                - Sid: Calendar
                  Effect: Allow
                  Action: ssm:GetCalendarState
                  Resource: !If
                    - CalendarIsArn
                    - !Ref Calendar
                    - !Sub "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:document/${Calendar}"
                - !Ref AWS::NoValue
              # Kept without a local request: a reason.
              - !If
                - HasPrefix
                - Sid: Alarms
                  Effect: Allow
                  Action: cloudwatch:DescribeAlarms
                  Resource: "*"
                - !Ref AWS::NoValue
"#,
        )
        .unwrap();
        let mut n = names();
        n.atts
            .insert("R.Arn".into(), "arn:aws:iam::123456789012:role/s-R".into());
        let statements = |given: &[(&str, &str)]| {
            let given: BTreeMap<String, String> = given
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let r = Resolver::load(&path, &given, n.clone()).unwrap();
            r.roles().unwrap().remove(0).statements
        };
        // Neither parameter: only the unconditional statement.
        let none = statements(&[]);
        assert_eq!(
            none.iter().map(|s| s.sid.as_str()).collect::<Vec<_>>(),
            ["Always"]
        );
        // A calendar's name: its document ARN in this account and region.
        let named = statements(&[("Calendar", "peak-freeze"), ("Prefix", "block-")]);
        assert_eq!(
            named.iter().map(|s| s.sid.as_str()).collect::<Vec<_>>(),
            ["Always", "Calendar", "Alarms"]
        );
        assert_eq!(
            named[1].json["Resource"],
            "arn:aws:ssm:us-east-1:123456789012:document/peak-freeze"
        );
        assert_eq!(named[1].kept, None);
        assert_eq!(named[2].kept.as_deref(), Some("a reason."));
        // A calendar's ARN (shared from another account): as given.
        let arn = "arn:aws:ssm:eu-west-1:999999999999:document/shared-freeze";
        let shared = statements(&[("Calendar", arn)]);
        assert_eq!(shared[1].sid, "Calendar");
        assert_eq!(shared[1].json["Resource"], arn);
        assert_eq!(shared.len(), 2);

        let given = BTreeMap::from([("Calendar".to_owned(), "x.y".to_owned())]);
        let r = Resolver::load(&path, &given, n.clone()).unwrap();
        assert_eq!(r.conditions.get("Both"), Some(&true));
        assert_eq!(r.conditions.get("CalendarIsArn"), Some(&false));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn select_and_split_resolve_as_cloudformation_does() {
        let r = Resolver {
            file: "t.yaml".into(),
            text: String::new(),
            doc: Value::Null,
            params: BTreeMap::from([(
                "Regions".to_owned(),
                Param::List(vec!["eu-west-1".into(), "us-east-1".into()]),
            )]),
            conditions: BTreeMap::new(),
            names: names(),
        };
        let eval = |yaml: &str| {
            let v: Value = serde_yaml_ng::from_str(yaml).unwrap();
            r.resolve(&v)
        };
        assert_eq!(
            eval("!Select [1, !Ref Regions]").unwrap(),
            Some(json!("us-east-1"))
        );
        assert_eq!(
            eval(r#"!Split ["/", "a/b//c"]"#).unwrap(),
            Some(json!(["a", "b", "", "c"]))
        );
        assert_eq!(
            eval(r#"!Select ["0", !Split [":", !Sub "${AWS::Region}:"]]"#).unwrap(),
            Some(json!("us-east-1"))
        );
        assert_eq!(
            eval(r#"!Select [0, !Split [":", ""]]"#).unwrap(),
            Some(json!(""))
        );
        let past = eval("!Select [2, !Ref Regions]").unwrap_err().to_string();
        assert!(past.contains("past the end"), "{past}");
        assert!(eval(r#"!Select [x, [a]]"#).is_err());
        assert!(eval(r#"!Split ["", "a"]"#).is_err());
    }
}
