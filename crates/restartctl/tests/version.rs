//! The binary cargo built answers `--version` with the workspace version (the one CHANGELOG.md
//! and `make dist`'s archive name carry) and prints the shell completions `make dist` packs,
//! without any AWS configuration.

use crate::common;

use common::{bare, ok};

const VERSION: &str = env!("CARGO_PKG_VERSION");

#[test]
fn restartctl_answers_version_with_the_workspace_version() {
    let out = ok(bare().arg("--version"));
    assert_eq!(out, format!("restartctl {VERSION}\n"));
    // The same as `-V`, whatever the subcommand would need.
    assert_eq!(ok(bare().arg("-V")), out);
}

#[test]
fn the_changelog_names_the_version_the_binaries_report() {
    let changelog =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../CHANGELOG.md"))
            .unwrap();
    assert!(
        changelog
            .lines()
            .any(|l| l.starts_with(&format!("## {VERSION}"))),
        "CHANGELOG.md has no `## {VERSION}` section"
    );
}

#[test]
fn completions_cover_every_shell_and_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = ok(bare().args(["completions", shell]));
        for word in [
            "restartctl",
            "trigger",
            "--nightly",
            "--tomorrow",
            "--state",
        ] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
    }
    // The night states are offered for `status --state`.
    let bash = ok(bare().args(["completions", "bash"]));
    assert!(bash.contains("rolled_back"), "{bash}");
}
