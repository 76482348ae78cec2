//! Text from the cloud made safe for a terminal. Any tenant can name a server
//! with escape sequences, and error messages carry whatever a service put in
//! them: control characters (C0, DEL, C1) and bidirectional overrides are shown
//! as visible stand-ins, never sent to the terminal.

use std::borrow::Cow;

/// The visible stand-in of a character a terminal would interpret, or `None`.
fn stand_in(c: char) -> Option<char> {
    match c {
        // C0: the Unicode control pictures (ESC shows as ␛).
        '\u{0}'..='\u{1f}' => char::from_u32(0x2400 + c as u32),
        '\u{7f}' => Some('␡'),
        // C1 (an 8-bit CSI is 0x9b) and the bidirectional overrides and isolates.
        '\u{80}'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => Some('�'),
        _ => None,
    }
}

/// `s` with every terminal control character replaced by a visible stand-in.
pub fn sanitize(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| stand_in(c).is_some()) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().map(|c| stand_in(c).unwrap_or(c)).collect())
}

/// Like `sanitize`, keeping line breaks and tabs (multi-line text such as a
/// console log or an error's detail).
pub fn sanitize_lines(s: &str) -> Cow<'_, str> {
    let keep = |c: char| c == '\n' || c == '\t';
    if !s.chars().any(|c| !keep(c) && stand_in(c).is_some()) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().map(|c| if keep(c) { c } else { stand_in(c).unwrap_or(c) }).collect())
}

/// The first `n` characters of `s` (never cuts a character in two).
pub fn prefix(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => s.get(..i).unwrap_or(s),
        None => s,
    }
}

/// `s` without its first `n` characters.
pub fn skip(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => s.get(i..).unwrap_or_default(),
        None => "",
    }
}

/// True when nothing in `s` would be interpreted by a terminal.
pub fn is_safe(s: &str) -> bool {
    !s.chars().any(|c| stand_in(c).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_become_visible() {
        assert_eq!(sanitize("web\u{1b}[2J\u{1b}]0;owned\u{7}"), "web␛[2J␛]0;owned␇");
        assert_eq!(sanitize("a\u{9b}31mb"), "a�31mb");
        assert_eq!(sanitize("evil\u{202e}gnp.exe"), "evil�gnp.exe");
        assert!(matches!(sanitize("plain név ☃"), Cow::Borrowed(_)));
        assert_eq!(sanitize_lines("line 1\n\tline\u{1b}2"), "line 1\n\tline␛2");
        assert_eq!(sanitize("a\nb"), "a␊b");
        assert_eq!(prefix("héllo", 2), "hé");
        assert_eq!(prefix("hi", 8), "hi");
        assert_eq!(skip("héllo", 2), "llo");
        assert_eq!(skip("hi", 5), "");
    }
}
