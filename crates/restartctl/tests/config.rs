//! `config show`, `config set owner`, `config import` and `config unset owner` through the
//! binary, against a table in moto (`tools/with-moto` provides MOTO_ENDPOINT): account owners in
//! any script round-trip, and a bad entry or a duplicate writes nothing.

use crate::common;

use std::collections::BTreeMap;

use common::{A, B, Fixture, fails, json, ok};
use restart_core::ids::AccountId;
use restart_core::owner::AccountOwner;
use restart_core::ports::SettingsStore;

const C: &str = "333333333333";

fn owners(pairs: &[(&str, &str)]) -> BTreeMap<AccountId, AccountOwner> {
    pairs
        .iter()
        .map(|(a, o)| (a.parse().unwrap(), o.parse().unwrap()))
        .collect()
}

async fn stored(f: &Fixture) -> BTreeMap<AccountId, AccountOwner> {
    f.store.account_owners().await.unwrap()
}

/// A file in the test's own temporary directory.
fn file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(testkit::unique_name("restartctl-config"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn owners_are_set_shown_changed_and_unset_in_any_script() {
    let f = Fixture::empty().await;
    let out = ok(f.cmd().args(["config", "show"]));
    assert!(out.contains("Account owners: none in table"), "{out}");

    let out = ok(f.cmd().args([
        "config",
        "set",
        "owner",
        &format!("{A}=payments"),
        &format!("{B}= 決済チーム "),
        &format!("{C}=e\u{301}quipe 🚀"),
    ]));
    assert!(out.contains("3 new, 0 changed, 0 unchanged"), "{out}");
    assert_eq!(
        stored(&f).await,
        owners(&[(A, "payments"), (B, "決済チーム"), (C, "e\u{301}quipe 🚀")])
    );

    let out = ok(f.cmd().args(["config", "show"]));
    assert!(out.contains("Account owners: 3 in table"), "{out}");
    for line in [
        format!("| {A} | payments"),
        format!("| {B} | 決済チーム"),
        format!("| {C} | e\u{301}quipe 🚀"),
    ] {
        assert!(out.contains(&line), "{line:?} missing:\n{out}");
    }
    let v = json(&ok(f.cmd().args(["config", "show", "--output", "json"])));
    assert_eq!(v["table"], f.table);
    assert_eq!(v["account_owners"][B], "決済チーム");
    assert_eq!(v["account_owners"][C], "e\u{301}quipe 🚀");
    assert_eq!(v["account_owners"].as_object().unwrap().len(), 3);

    // Set again: one changed, one unchanged.
    let v = json(&ok(f.cmd().args([
        "config",
        "set",
        "owner",
        &format!("{A}=ledger"),
        &format!("{B}=決済チーム"),
        "--output",
        "json",
    ])));
    assert_eq!(v["action"], "set");
    assert_eq!(v["changed"][A], "ledger");
    assert_eq!(v["previous"][A], "payments");
    assert_eq!(v["unchanged"], serde_json::json!([B]));

    let out = ok(f.cmd().args(["config", "unset", "owner", A]));
    assert!(
        out.contains(&format!("Account {A}: owner \"ledger\" unset")),
        "{out}"
    );
    let out = ok(f.cmd().args(["config", "unset", "owner", A]));
    assert!(out.contains("nothing to unset"), "{out}");
    assert_eq!(
        stored(&f).await,
        owners(&[(B, "決済チーム"), (C, "e\u{301}quipe 🚀")])
    );
}

#[tokio::test]
async fn a_bad_owner_on_the_command_line_writes_nothing() {
    let f = Fixture::empty().await;
    let err = fails(f.cmd().args([
        "config",
        "set",
        "owner",
        &format!("{A}=payments"),
        "12345=ops",
        &format!("{B}=   "),
        &format!("{A}=again"),
    ]));
    assert!(
        err.contains("3 entries are wrong, so nothing was written"),
        "{err}"
    );
    assert!(err.contains("argument 2: "), "{err}");
    assert!(
        err.contains(&format!("argument 3: account {B}: the owner is empty")),
        "{err}"
    );
    assert!(
        err.contains(&format!("argument 4: account {A} is given twice")),
        "{err}"
    );
    assert!(stored(&f).await.is_empty());
    let err = fails(f.cmd().args(["config", "unset", "owner", "not-an-account"]));
    assert!(err.contains("not-an-account"), "{err}");
}

#[tokio::test]
async fn a_file_of_lines_or_json_is_imported() {
    let f = Fixture::empty().await;
    f.store
        .put_account_owners(&owners(&[(A, "old"), ("444444444444", "kept")]))
        .await
        .unwrap();
    let lines = file(
        "owners.txt",
        &format!("# account=owner\n\n{A}=payments\n{B} = 決済チーム\r\n{C}=ops=sre\n"),
    );
    let out = ok(f.cmd().args(["config", "import", lines.to_str().unwrap()]));
    assert!(out.contains("2 new, 1 changed, 0 unchanged"), "{out}");
    assert_eq!(
        stored(&f).await,
        owners(&[
            (A, "payments"),
            (B, "決済チーム"),
            (C, "ops=sre"),
            ("444444444444", "kept"),
        ])
    );

    let json_file = file(
        "owners.json",
        &format!("{{\n  \"{A}\": \"payments\",\n  \"{C}\": \"équipe 🚀\"\n}}\n"),
    );
    let v = json(&ok(f.cmd().args([
        "config",
        "import",
        json_file.to_str().unwrap(),
        "--output",
        "json",
    ])));
    assert_eq!(v["action"], "imported");
    assert_eq!(v["format"], "json");
    assert_eq!(v["changed"][C], "équipe 🚀");
    assert_eq!(v["unchanged"], serde_json::json!([A]));
    assert_eq!(
        stored(&f).await[&C.parse::<AccountId>().unwrap()].as_str(),
        "équipe 🚀"
    );
}

#[tokio::test]
async fn a_file_with_a_bad_line_or_a_duplicate_writes_nothing() {
    let f = Fixture::empty().await;
    let before = owners(&[(A, "payments")]);
    f.store.put_account_owners(&before).await.unwrap();
    let bad = file(
        "bad.txt",
        &format!(
            "{B}=search\n{C}=ops\nthis line has no equals sign\n444444444444=a\tb\n{C}=ops again\n"
        ),
    );
    let err = fails(f.cmd().args(["config", "import", bad.to_str().unwrap()]));
    assert!(
        err.contains("3 entries are wrong, so nothing was written"),
        "{err}"
    );
    assert!(
        err.contains("line 3: \"this line has no equals sign\" is not ACCOUNT=OWNER"),
        "{err}"
    );
    assert!(
        err.contains("line 4: account 444444444444: the owner holds a control character"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "line 5: account {C} is given twice (first at line 2)"
        )),
        "{err}"
    );
    assert_eq!(stored(&f).await, before, "nothing written");

    let dup = file("dup.json", &format!("{{\"{B}\": \"a\", \"{B}\": \"b\"}}"));
    let err = fails(f.cmd().args(["config", "import", dup.to_str().unwrap()]));
    assert!(err.contains("given twice"), "{err}");
    let broken = file(
        "broken.json",
        &format!("{{\n\"{B}\": \"a\",\n\"{C}\": 7\n}}"),
    );
    let err = fails(f.cmd().args(["config", "import", broken.to_str().unwrap()]));
    assert!(
        err.contains("line 3: not a JSON object of ACCOUNT: OWNER strings"),
        "{err}"
    );
    let empty = file("empty.txt", "# nothing yet\n\n");
    let err = fails(f.cmd().args(["config", "import", empty.to_str().unwrap()]));
    assert!(err.contains("nothing to import"), "{err}");
    let latin1 = std::env::temp_dir().join(testkit::unique_name("restartctl-latin1"));
    std::fs::write(&latin1, b"111111111111=ok\n222222222222=\xe9quipe\n").unwrap();
    let err = fails(f.cmd().args(["config", "import", latin1.to_str().unwrap()]));
    assert!(err.contains("line 2 is not UTF-8"), "{err}");
    assert_eq!(stored(&f).await, before, "still nothing written");
}
