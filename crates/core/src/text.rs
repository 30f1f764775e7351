//! Text a person wrote, kept within a limit: tags, reasons, details and errors go into messages,
//! items and logs whose size is bounded.

/// `s` cut to `max` characters (never inside one), with `…` after them when something was cut.
pub fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use testkit_core::strategies::written;

    #[test]
    fn only_what_is_too_long_is_cut() {
        assert_eq!(cut("équipe", 6), "équipe");
        assert_eq!(cut("équipe", 2), "éq…");
        assert_eq!(cut("決済チーム", 0), "…");
        assert_eq!(cut("", 0), "");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn cutting_keeps_whole_characters(s in written(64), max in 0usize..70) {
            let c = cut(&s, max);
            let kept = if s.chars().count() <= max { c.as_str() } else { c.strip_suffix('…').unwrap() };
            prop_assert!(s.starts_with(kept));
            prop_assert_eq!(kept.chars().count(), s.chars().count().min(max));
        }
    }
}
