//! Text that a check, a service or a file name controls, made safe to show
//! a person.
//!
//! A check's reason, logs and output, a service's output lines and its
//! `STATUS=` text, the names inside a component, even a directory name:
//! any of them may hold bytes that a terminal obeys. An OSC sequence
//! retitles the window, `ESC [ 1 A ESC [ 2 K` erases the line above, a bare
//! CR or backspaces overwrite what was printed, U+009B is CSI to terminals
//! that honour C1 controls, and the bidi overrides of "Trojan Source"
//! reorder what a reader sees. A hostile check could print a fake `ok`.
//! Every human rendering of such text goes through [`line`] or [`block`].
//!
//! # Rules
//! - Escaped, shown visibly so that an operator sees that something was
//!   there: C0 controls as `\xNN` (except `\t`, kept; `\n` and `\r` as
//!   `\n` and `\r`), DEL as `\x7f`, C1 controls (U+0080 to U+009F) as
//!   `\u{9b}`, and as `\u{202e}` the invisible characters that change how
//!   a line is laid out: the bidi embeddings, overrides and isolates
//!   (U+202A to U+202E, U+2066 to U+2069), the bidi marks (U+200E, U+200F,
//!   U+061C) and the Unicode line and paragraph separators (U+2028,
//!   U+2029).
//! - Newlines depend on the context: [`line`] is for a one-line field (a
//!   reason in a table, a `key=value` of an event, an echoed output line)
//!   and escapes `\n` too, so one field is one line. [`block`] is for
//!   multi-line text (a check's captured output, a validation report) and
//!   keeps line breaks (`\n`, and `\r\n`, whose CR it drops: a CR right
//!   before a newline moves nothing), escaping each line's contents.
//! - A backslash is left alone. A check can therefore print the text
//!   `\x1b` itself, but that only makes harmless text look escaped; doubling
//!   every backslash would mangle every Windows path and regex in output.
//! - Invalid UTF-8 was already replaced (U+FFFD) where the bytes were
//!   decoded.
//!
//! # Where
//! Escaping happens when text is shown, never when it is stored: the
//! journal is exact JSON (serde escapes C0 controls inside JSON strings)
//! and every `--json` output carries the exact string, for programs. A
//! service's log file (`<state-dir>/logs/NAME.log`) is its raw output,
//! after a time and stream prefix on each line: it is a file, not a
//! display, and what the service wrote is what is kept; whatever Vigil
//! itself prints from it is escaped.

use std::borrow::Cow;

/// `text` as one line: every character that could steer a terminal or
/// reorder a line, newlines included, is replaced by a visible escape.
/// Borrows when there is nothing to escape (the usual case).
pub fn line(text: &str) -> Cow<'_, str> {
    match text.find(needs_escape) {
        None => Cow::Borrowed(text),
        Some(first) => {
            let mut out = String::with_capacity(text.len() + 16);
            out.push_str(&text[..first]);
            for ch in text[first..].chars() {
                push_escaped(&mut out, ch);
            }
            Cow::Owned(out)
        }
    }
}

/// `text` as lines: like [`line`], but `\n` (or `\r\n`) stays a line
/// break, so each line is escaped on its own.
pub fn block(text: &str) -> Cow<'_, str> {
    let unsafe_at = |i: usize, ch: char| {
        needs_escape(ch) && ch != '\n' && !(ch == '\r' && text[i + 1..].starts_with('\n'))
    };
    let Some((first, _)) = text.char_indices().find(|&(i, ch)| unsafe_at(i, ch)) else {
        // Only line breaks: drop the CRs of CRLFs, if any.
        return if text.contains('\r') {
            Cow::Owned(text.replace("\r\n", "\n"))
        } else {
            Cow::Borrowed(text)
        };
    };
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(&text[..first].replace("\r\n", "\n"));
    let mut chars = text[first..].chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\n' => out.push('\n'),
            '\r' if chars.peek() == Some(&'\n') => {}
            ch => push_escaped(&mut out, ch),
        }
    }
    Cow::Owned(out)
}

/// True for the characters of the rules in the module doc.
fn needs_escape(ch: char) -> bool {
    ch != '\t'
        && matches!(ch,
            // C0; DEL and C1
            '\0'..='\x1f' | '\x7f'..='\u{9f}'
            // bidi marks: ALM, LRM, RLM
            | '\u{061c}' | '\u{200e}' | '\u{200f}'
            // line and paragraph separators, then LRE RLE PDF LRO RLO
            | '\u{2028}'..='\u{202e}'
            // LRI RLI FSI PDI
            | '\u{2066}'..='\u{2069}')
}

fn push_escaped(out: &mut String, ch: char) {
    match ch {
        ch if !needs_escape(ch) => out.push(ch),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\0'..='\x7f' => out.push_str(&format!("\\x{:02x}", u32::from(ch))),
        _ => out.push_str(&format!("\\u{{{:x}}}", u32::from(ch))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What no rendering may contain (its own list, not `needs_escape`).
    fn inert(text: &str) -> bool {
        !text.chars().any(|ch| {
            let c = u32::from(ch);
            (c < 0x20 && ch != '\t' && ch != '\n')
                || (0x7f..=0x9f).contains(&c)
                || (0x202a..=0x202e).contains(&c)
                || (0x2066..=0x2069).contains(&c)
                || [0x061c, 0x200e, 0x200f, 0x2028, 0x2029].contains(&c)
        })
    }

    #[test]
    fn plain_text_is_borrowed_untouched() {
        for text in [
            "",
            "connection refused",
            "tab\there",
            "größe ✓ 名前",
            "a\\x1b",
        ] {
            assert!(
                matches!(line(text), Cow::Borrowed(t) if t == text),
                "{text:?}"
            );
            assert!(
                matches!(block(text), Cow::Borrowed(t) if t == text),
                "{text:?}"
            );
        }
        assert!(matches!(block("one\ntwo\n"), Cow::Borrowed("one\ntwo\n")));
    }

    #[test]
    fn controls_are_shown_visibly() {
        let hostile =
            "\x1b]0;pwned\x07\x1b[1A\x1b[2Kok\r\x08\x7f\u{9b}31m\u{202e}txt.exe\u{2066}\u{2069}\0";
        let shown = line(hostile);
        assert!(inert(&shown), "{shown:?}");
        assert_eq!(
            shown,
            "\\x1b]0;pwned\\x07\\x1b[1A\\x1b[2Kok\\r\\x08\\x7f\\u{9b}31m\\u{202e}txt.exe\\u{2066}\\u{2069}\\x00"
        );
        assert_eq!(line("a\nb"), "a\\nb");
        assert_eq!(
            line("\u{61c}\u{200e}\u{200f}\u{2028}\u{2029}\u{202a}"),
            "\\u{61c}\\u{200e}\\u{200f}\\u{2028}\\u{2029}\\u{202a}"
        );
        // Neighbours of the escaped ranges stay.
        assert_eq!(
            line("\u{a0}\u{2065}\u{206a}\u{2029}"),
            "\u{a0}\u{2065}\u{206a}\\u{2029}"
        );
    }

    #[test]
    fn blocks_keep_line_breaks_and_escape_each_line() {
        assert_eq!(block("one\r\ntwo\n"), "one\ntwo\n");
        assert_eq!(block("a\rb\r\n\x1b[2Kc\r"), "a\\rb\n\\x1b[2Kc\\r");
        assert_eq!(block("ok\r\n\r\n\u{202e}x"), "ok\n\n\\u{202e}x");
        let shown = block("\x1b[1A\r\n\u{9b}2K\nfake ok\r");
        assert!(inert(&shown), "{shown:?}");
        assert_eq!(shown.lines().count(), 3);
    }
}
