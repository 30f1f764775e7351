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

    #[test]
    fn only_what_is_too_long_is_cut() {
        assert_eq!(cut("équipe", 6), "équipe");
        assert_eq!(cut("équipe", 2), "éq…");
        assert_eq!(cut("決済チーム", 0), "…");
        assert_eq!(cut("", 0), "");
    }

    /// Text of a team, a tag value or a failure: anything, printable Unicode, bytes read as
    /// UTF-8, or names with accents, CJK, emoji, full-width digits and combining marks.
    fn text(max: usize) -> impl Strategy<Value = String> {
        prop_oneof![
            prop::collection::vec(any::<char>(), 0..max).prop_map(String::from_iter),
            prop::string::string_regex(&format!("\\PC{{0,{max}}}")).unwrap(),
            prop::collection::vec(any::<u8>(), 0..max)
                .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            prop::sample::select(vec![
                "équipe-paiements",
                "決済チーム",
                "🚀 platform 🚀",
                "ｔｅａｍ１２",
                "e\u{301}quipe",
                "\u{200b}",
                "<script>alert('x')</script>",
                "a\r\nb",
                "\"quoted\"",
                "ok",
            ])
            .prop_map(str::to_owned),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn cutting_keeps_whole_characters(s in text(64), max in 0usize..70) {
            let c = cut(&s, max);
            let kept = if s.chars().count() <= max { c.as_str() } else { c.strip_suffix('…').unwrap() };
            prop_assert!(s.starts_with(kept));
            prop_assert_eq!(kept.chars().count(), s.chars().count().min(max));
        }
    }
}
