//! `config show`, `config set owner`, `config unset owner`, `config import`: the configuration
//! items of the table (each account's default owner, docs/design.md 3.2), which win over
//! `ACCOUNT_OWNERS` in the functions' environment.
//!
//! Owners are [`AccountOwner`]s: the spaces around them dropped, not empty, at most
//! [`MAX_OWNER_CHARS`](restart_core::owner::MAX_OWNER_CHARS) characters, no control
//! character, any script. Every entry of a command line or a file is checked before anything
//! is written: one bad entry, or one account named twice, and nothing is written.
//!
//! `import FILE` takes either
//! - lines `ACCOUNT=OWNER` (UTF-8; blank lines and lines starting with `#` are skipped; the owner
//!   is everything after the first `=`), or
//! - one JSON object `{"ACCOUNT": "OWNER", ...}` (a file whose first character, spaces aside,
//!   is `{`).
//!
//! It sets the accounts it names and leaves the others as they are (`config unset owner`
//! forgets one).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use restart_core::ids::AccountId;
use restart_core::owner::AccountOwner;
use restart_core::ports::SettingsStore;
use restart_core::text::cut;
use serde::Serialize;
use serde::de::{Deserializer, MapAccess, Visitor};

use crate::cli::{ConfigCommand, ImportArgs, SetItem, UnsetItem};
use crate::render::{print_json, table};
use crate::settings::Settings;

/// Where the owners of an import were found: the file's lines or a JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Lines,
    Json,
}

/// Where one entry was given, for errors that name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The n-th `ACCOUNT=OWNER` argument (1-based).
    Argument(usize),
    /// Line n of a file (1-based).
    Line(usize),
    /// The JSON object's key.
    Key(String),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Argument(n) => write!(f, "argument {n}"),
            Self::Line(n) => write!(f, "line {n}"),
            Self::Key(k) => write!(f, "key {k:?}"),
        }
    }
}

/// Checks entries (where each was given, its account, its owner, as written): every problem
/// at once, an account given twice included. `Ok`: every entry is good.
pub fn check_entries(
    entries: Vec<(Place, String, String)>,
) -> Result<BTreeMap<AccountId, AccountOwner>, Vec<String>> {
    let mut problems = Vec::new();
    let mut seen: BTreeMap<AccountId, Place> = BTreeMap::new();
    let mut owners = BTreeMap::new();
    for (place, account, owner) in entries {
        let account = match account.trim().parse::<AccountId>() {
            Ok(a) => a,
            Err(e) => {
                problems.push(format!("{place}: {e}"));
                continue;
            }
        };
        let owner = match owner.parse::<AccountOwner>() {
            Ok(o) => o,
            Err(e) => {
                problems.push(format!("{place}: account {account}: {e}"));
                continue;
            }
        };
        if let Some(first) = seen.get(&account) {
            problems.push(format!(
                "{place}: account {account} is given twice (first at {first}); give each \
                 account once"
            ));
            continue;
        }
        seen.insert(account.clone(), place);
        owners.insert(account, owner);
    }
    if problems.is_empty() {
        Ok(owners)
    } else {
        Err(problems)
    }
}

/// `ACCOUNT=OWNER` split at the first `=`, or a problem naming `place`.
fn split_pair(place: &Place, text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((account, owner)) => Ok((account.to_owned(), owner.to_owned())),
        None => Err(format!(
            "{place}: {:?} is not ACCOUNT=OWNER (e.g. 111111111111=payments)",
            cut(text, 80)
        )),
    }
}

/// The owners `ACCOUNT=OWNER` arguments name, or every problem.
pub fn parse_arguments(pairs: &[String]) -> Result<BTreeMap<AccountId, AccountOwner>, Vec<String>> {
    let mut problems = Vec::new();
    let mut entries = Vec::new();
    for (i, pair) in pairs.iter().enumerate() {
        let place = Place::Argument(i + 1);
        match split_pair(&place, pair) {
            Ok((a, o)) => entries.push((place, a, o)),
            Err(p) => problems.push(p),
        }
    }
    finish(problems, entries)
}

fn finish(
    mut problems: Vec<String>,
    entries: Vec<(Place, String, String)>,
) -> Result<BTreeMap<AccountId, AccountOwner>, Vec<String>> {
    match check_entries(entries) {
        Ok(owners) if problems.is_empty() => Ok(owners),
        Ok(_) => Err(problems),
        Err(more) => {
            problems.extend(more);
            // In the order given: argument and line numbers ascending.
            problems.sort_by_key(|p| place_order(p));
            Err(problems)
        }
    }
}

/// The number a problem starts with (`line 12: ...`), to list problems in file order.
fn place_order(problem: &str) -> (usize, String) {
    let n = problem
        .split_once(": ")
        .and_then(|(place, _)| place.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX);
    (n, problem.to_owned())
}

/// The owners a file's text names, in either format, or every problem (each naming its line,
/// or its key in a JSON object).
pub fn parse_file(text: &str) -> Result<(Format, BTreeMap<AccountId, AccountOwner>), Vec<String>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim_start().starts_with('{') {
        return parse_json(text).map(|o| (Format::Json, o));
    }
    let mut problems = Vec::new();
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let place = Place::Line(i + 1);
        match split_pair(&place, trimmed) {
            Ok((a, o)) => entries.push((place, a, o)),
            Err(p) => problems.push(p),
        }
    }
    finish(problems, entries).map(|o| (Format::Lines, o))
}

/// A JSON object's entries in the order written, duplicates kept (a map would keep only the
/// last one of a key given twice).
struct Entries(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object {\"ACCOUNT\": \"OWNER\", ...}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    out.push((k, v));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn parse_json(text: &str) -> Result<BTreeMap<AccountId, AccountOwner>, Vec<String>> {
    let Entries(entries) = serde_json::from_str(text).map_err(|e| {
        vec![format!(
            "line {}: not a JSON object of ACCOUNT: OWNER strings: {e}",
            e.line()
        )]
    })?;
    let entries = entries
        .into_iter()
        .map(|(k, v)| (Place::Key(k.clone()), k, v))
        .collect();
    check_entries(entries)
}

/// What `config show` prints with `--output json`.
#[derive(Debug, Serialize)]
pub struct ConfigView {
    pub table: String,
    /// Each account's default owner kept in the table.
    pub account_owners: BTreeMap<String, String>,
}

/// What `set`, `import` and `unset` did, with `--output json`.
#[derive(Debug, Serialize)]
pub struct ChangeView {
    /// `set`, `imported`, `unset`.
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// Accounts that had no owner in the table.
    pub added: BTreeMap<String, String>,
    /// Accounts whose owner changed: the new owner (`previous` holds the old one).
    pub changed: BTreeMap<String, String>,
    /// The owners replaced (changed) or forgotten (unset).
    pub previous: BTreeMap<String, String>,
    /// Accounts given with the owner they already had.
    pub unchanged: Vec<String>,
    /// `unset`: accounts that had no owner in the table.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub absent: Vec<String>,
}

fn strings(m: &BTreeMap<AccountId, AccountOwner>) -> BTreeMap<String, String> {
    m.iter()
        .map(|(a, o)| (a.to_string(), o.to_string()))
        .collect()
}

/// The difference `wanted` makes to `current`.
fn change(
    action: &'static str,
    current: &BTreeMap<AccountId, AccountOwner>,
    wanted: &BTreeMap<AccountId, AccountOwner>,
) -> ChangeView {
    let mut view = ChangeView {
        action,
        format: None,
        added: BTreeMap::new(),
        changed: BTreeMap::new(),
        previous: BTreeMap::new(),
        unchanged: Vec::new(),
        absent: Vec::new(),
    };
    for (account, owner) in wanted {
        match current.get(account) {
            None => {
                view.added.insert(account.to_string(), owner.to_string());
            }
            Some(old) if old == owner => view.unchanged.push(account.to_string()),
            Some(old) => {
                view.changed.insert(account.to_string(), owner.to_string());
                view.previous.insert(account.to_string(), old.to_string());
            }
        }
    }
    view
}

fn problems_error(what: &str, problems: &[String]) -> anyhow::Error {
    anyhow::anyhow!(
        "{what}: {} {} wrong, so nothing was written:\n  {}",
        problems.len(),
        if problems.len() == 1 {
            "entry is"
        } else {
            "entries are"
        },
        problems.join("\n  ")
    )
}

const READ_HINT: &str =
    "reading the account owners (pk CONFIG); check --table and your credentials";
const WRITE_HINT: &str = "writing the account owners failed, some may be written: run the same \
                          command again; check that your role may dynamodb:BatchWriteItem on pk \
                          CONFIG";

pub async fn run(settings: &Settings, command: &ConfigCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Show => show(settings).await,
        ConfigCommand::Set(SetItem::Owner { pairs }) => {
            let owners =
                parse_arguments(pairs).map_err(|p| problems_error("config set owner", &p))?;
            write(settings, "set", None, &owners).await
        }
        ConfigCommand::Unset(UnsetItem::Owner { accounts }) => unset(settings, accounts).await,
        ConfigCommand::Import(args) => import(settings, args).await,
    }
}

async fn show(settings: &Settings) -> anyhow::Result<ExitCode> {
    let store = settings.store()?;
    let owners = store.account_owners().await.context(READ_HINT)?;
    if settings.json() {
        print_json(&ConfigView {
            table: store.table().to_owned(),
            account_owners: strings(&owners),
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    if owners.is_empty() {
        println!(
            "Account owners: none in table {}.\nOwners come from service and cluster tags, then \
             ACCOUNT_OWNERS in the functions' environment, else `unowned`. Set some with \
             `restartctl config set owner ACCOUNT=OWNER` or `config import FILE`.",
            store.table()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Account owners: {} in table {} (they win over ACCOUNT_OWNERS; service and cluster tags \
         win over both)",
        owners.len(),
        store.table()
    );
    let mut t = table(["account", "owner"]);
    for (account, owner) in &owners {
        t.add_row(vec![account.to_string(), owner.to_string()]);
    }
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}

async fn import(settings: &Settings, args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let (format, owners) = read_file(&args.file)?;
    if owners.is_empty() {
        bail!(
            "{}: no ACCOUNT=OWNER line and no entry: nothing to import",
            args.file.display()
        );
    }
    write(settings, "imported", Some(format), &owners).await
}

/// The owners a file names, or an error listing every bad entry.
pub fn read_file(path: &Path) -> anyhow::Result<(Format, BTreeMap<AccountId, AccountOwner>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        anyhow::anyhow!(
            "{}: line {line} is not UTF-8, so nothing was written; save the file as UTF-8",
            path.display()
        )
    })?;
    parse_file(&text).map_err(|p| problems_error(&path.display().to_string(), &p))
}

async fn write(
    settings: &Settings,
    action: &'static str,
    format: Option<Format>,
    owners: &BTreeMap<AccountId, AccountOwner>,
) -> anyhow::Result<ExitCode> {
    let store = settings.store()?;
    let current = store.account_owners().await.context(READ_HINT)?;
    let mut view = change(action, &current, owners);
    view.format = format;
    store.put_account_owners(owners).await.context(WRITE_HINT)?;
    if settings.json() {
        print_json(&view)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Account owners {action} in table {}: {} new, {} changed, {} unchanged.",
        store.table(),
        view.added.len(),
        view.changed.len(),
        view.unchanged.len()
    );
    if !view.added.is_empty() || !view.changed.is_empty() {
        let mut t = table(["account", "owner", "before"]);
        for (account, owner) in &view.added {
            t.add_row(vec![account.clone(), owner.clone(), "-".to_owned()]);
        }
        for (account, owner) in &view.changed {
            t.add_row(vec![
                account.clone(),
                owner.clone(),
                view.previous[account].clone(),
            ]);
        }
        println!("{t}");
    }
    println!("The next inventory (and any service restarted by hand) uses them.");
    Ok(ExitCode::SUCCESS)
}

async fn unset(settings: &Settings, accounts: &[AccountId]) -> anyhow::Result<ExitCode> {
    let mut seen = std::collections::BTreeSet::new();
    if let Some(twice) = accounts.iter().find(|a| !seen.insert(*a)) {
        bail!("config unset owner: account {twice} is given twice; nothing was unset");
    }
    let store = settings.store()?;
    let current = store.account_owners().await.context(READ_HINT)?;
    let mut view = change("unset", &current, &BTreeMap::new());
    for account in accounts {
        let deleted = store.delete_account_owner(account).await.with_context(|| {
            format!(
                "unsetting account {account}'s owner failed; check that your role may \
                 dynamodb:DeleteItem on pk CONFIG"
            )
        })?;
        if deleted {
            let old = current.get(account).map(ToString::to_string);
            view.previous
                .insert(account.to_string(), old.unwrap_or_default());
        } else {
            view.absent.push(account.to_string());
        }
    }
    if settings.json() {
        print_json(&view)?;
        return Ok(ExitCode::SUCCESS);
    }
    for (account, old) in &view.previous {
        println!(
            "Account {account}: owner {} unset; its services fall back to ACCOUNT_OWNERS, else \
             `unowned` (tags still win).",
            if old.is_empty() {
                String::new()
            } else {
                format!("{old:?}")
            }
        );
    }
    for account in &view.absent {
        println!("Account {account}: no owner in the table; nothing to unset.");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use restart_core::owner::MAX_OWNER_CHARS;

    fn owners(pairs: &[(&str, &str)]) -> BTreeMap<AccountId, AccountOwner> {
        pairs
            .iter()
            .map(|(a, o)| (a.parse().unwrap(), o.parse().unwrap()))
            .collect()
    }

    #[test]
    fn lines_with_comments_blanks_unicode_and_equals_signs() {
        let text = "\u{feff}# owners\n\n111111111111=payments\n  222222222222 = 決済チーム \n\
                    333333333333=a=b\r\n";
        let (format, read) = parse_file(text).unwrap();
        assert_eq!(format, Format::Lines);
        assert_eq!(
            read,
            owners(&[
                ("111111111111", "payments"),
                ("222222222222", "決済チーム"),
                ("333333333333", "a=b"),
            ])
        );
    }

    #[test]
    fn every_bad_line_is_named_in_file_order() {
        let text = "111111111111=payments\nnot a pair\n12345=x\n222222222222=  \n\
                     111111111111=again\n333333333333=ok\n";
        let problems = parse_file(text).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems[0].starts_with("line 2: \"not a pair\" is not ACCOUNT=OWNER"));
        assert!(problems[1].starts_with("line 3: "), "{}", problems[1]);
        assert!(problems[1].contains("12345"), "{}", problems[1]);
        assert_eq!(
            problems[2],
            "line 4: account 222222222222: the owner is empty"
        );
        assert_eq!(
            problems[3],
            "line 5: account 111111111111 is given twice (first at line 1); give each account once"
        );
    }

    #[test]
    fn a_json_object_and_its_duplicates() {
        let (format, read) =
            parse_file(" {\"111111111111\": \"équipe\", \"222222222222\": \" ops \"}").unwrap();
        assert_eq!(format, Format::Json);
        assert_eq!(
            read,
            owners(&[("111111111111", "équipe"), ("222222222222", "ops")])
        );
        let twice = parse_file("{\"111111111111\": \"a\", \"111111111111\": \"b\"}").unwrap_err();
        assert_eq!(twice.len(), 1);
        assert!(twice[0].contains("given twice"), "{twice:?}");
        let not_string = parse_file("{\n\"111111111111\": 7}").unwrap_err();
        assert!(not_string[0].starts_with("line 2: "), "{not_string:?}");
        let bad_owner = parse_file("{\"111111111111\": \"a\\nb\"}").unwrap_err();
        assert!(
            bad_owner[0].starts_with(
                "key \"111111111111\": account 111111111111: the owner holds a control character"
            ),
            "{bad_owner:?}"
        );
    }

    #[test]
    fn arguments_are_checked_like_lines() {
        let ok = parse_arguments(&["111111111111=payments".into(), "222222222222=🚀".into()]);
        assert_eq!(
            ok.unwrap(),
            owners(&[("111111111111", "payments"), ("222222222222", "🚀")])
        );
        let long = format!("111111111111={}", "x".repeat(MAX_OWNER_CHARS + 1));
        let problems = parse_arguments(&[long, "payments".into()]).unwrap_err();
        assert_eq!(problems.len(), 2);
        assert!(problems[0].starts_with("argument 1: account 111111111111: the owner is 257"));
        assert!(problems[1].starts_with("argument 2: \"payments\" is not ACCOUNT=OWNER"));
    }

    #[test]
    fn a_change_says_what_is_new_changed_and_unchanged() {
        let current = owners(&[("111111111111", "a"), ("222222222222", "b")]);
        let wanted = owners(&[
            ("111111111111", "a"),
            ("222222222222", "c"),
            ("333333333333", "d"),
        ]);
        let v = change("set", &current, &wanted);
        assert_eq!(v.unchanged, ["111111111111"]);
        assert_eq!(v.changed["222222222222"], "c");
        assert_eq!(v.previous["222222222222"], "b");
        assert_eq!(v.added["333333333333"], "d");
    }
}
