//! The reversal against Python's `message[::-1]` (what the tutorial's server
//! does), on generated strings.

use proptest::prelude::*;
use reverse_echo::MessageKind;

proptest! {
    #[test]
    fn reverse_matches_python(s: String, split in 0usize..64) {
        let mut b = s.clone().into_bytes();
        reverse_echo::reverse_text(&mut b);
        let expect: String = s.chars().rev().collect();
        prop_assert_eq!(&b, expect.as_bytes());
        let mut c = reverse_echo::ReplyChecker::new(MessageKind::Text, s.as_bytes());
        let at = split.min(b.len());
        prop_assert!(c.feed(&b[..at]));
        prop_assert!(c.feed(&b[at..]));
        prop_assert!(c.is_match());
    }

    /// Mostly ASCII with a few multi-byte characters: the reversal's 8-byte ASCII
    /// skip meets sequences at every alignment.
    #[test]
    fn reverse_of_mostly_ascii_matches_python(s in "([a-zA-Z0-9 ]{0,19}[é∑😀]?){0,8}") {
        let mut b = s.clone().into_bytes();
        reverse_echo::reverse_text(&mut b);
        let expect: String = s.chars().rev().collect();
        prop_assert_eq!(&b, expect.as_bytes());
    }
}
