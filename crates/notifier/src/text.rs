//! Text rules shared by the digest and the summary: subjects SNS takes, and text cut to a
//! length without splitting a character.

use restart_core::notice::MAX_SUBJECT_CHARS;

/// Whether `s` can go into a subject as it is: printable ASCII and spaces only.
pub(crate) fn subject_safe(s: &str) -> bool {
    s.chars().all(|c| c == ' ' || c.is_ascii_graphic())
}

/// Makes a subject SNS and email clients accept: printable ASCII only (anything else, line
/// breaks and other control characters included, becomes `?`), beginning with a letter, number
/// or punctuation mark (leading spaces dropped), at most [`MAX_SUBJECT_CHARS`] characters
/// (longer ones end with `...`).
pub(crate) fn subject(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect();
    let clean = clean.trim_start();
    if clean.len() <= MAX_SUBJECT_CHARS {
        clean.to_owned()
    } else {
        // Counted in characters, though `clean` is ASCII (one byte each).
        let head: String = clean.chars().take(MAX_SUBJECT_CHARS - 3).collect();
        format!("{head}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_subject, text};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn any_text_makes_a_subject_sns_takes(s in text(300)) {
            assert_subject(&subject(&s))?;
        }
    }

    #[test]
    fn subjects_are_ascii_and_short() {
        let s = subject(&format!("équipe {}", "x".repeat(200)));
        assert!(s.is_ascii() && s.len() == MAX_SUBJECT_CHARS && s.ends_with("..."));
    }
}
