//! `env-file`: the dotenv syntax, parsed by hand so that every error can
//! name its line.
//!
//! One assignment a line: `KEY=VALUE`, optionally prefixed by `export `
//! (so the file can be `source`d by a shell too), whitespace around the
//! `=` ignored. Blank lines and lines starting with `#` are skipped. The
//! value is one of:
//! - empty (`KEY=`): the empty string;
//! - unquoted: the rest of the line, trimmed; a `#` after whitespace starts
//!   a comment (`KEY=a # note` is `a`), a `#` inside a word is kept;
//! - single-quoted: taken literally up to the next `'`, newlines included;
//! - double-quoted: up to the next unescaped `"`, newlines included, with
//!   the escapes `\n`, `\t`, `\r`, `\"`, `\\`, `\$` and `\` before a newline
//!   (a continued line). Any other escape is an error rather than a guess.
//!
//! Nothing is expanded: `$HOME` stays `$HOME` (systemd's `EnvironmentFile=`
//! does not expand either, and an env file must mean the same thing at
//! every start whatever Vigil's own environment is).

use std::fmt;
use std::io::Read;
use std::path::Path;

/// The largest env file (or manifest) read. Far above any real one; a
/// file past it is refused rather than read into memory whole.
pub const MAX_FILE: u64 = 1 << 20;

/// The bytes of the regular file at `path`, at most `limit` of them.
/// Anything else is refused with a reason instead of read: a FIFO (which
/// would block the reader until someone writes), a device such as
/// `/dev/zero` (which never ends), a directory, or a file larger than
/// `limit`. Opened without blocking, so that opening a FIFO returns at once.
pub fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind};
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut data = Vec::new();
    file.take(limit + 1).read_to_end(&mut data)?;
    if data.len() as u64 > limit {
        return Err(Error::new(
            ErrorKind::FileTooLarge,
            format!(
                "larger than {}, the most that is read",
                vigil_units::format_size(limit)
            ),
        ));
    }
    Ok(data)
}

/// A syntax error at a line of the file (from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub what: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

/// A variable name an env file may set: a shell name, so that the file
/// also works with `source` and no program is handed `A-B`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parse an env file's text into its assignments, in file order (a name
/// set twice appears twice; the later one wins when applied).
pub fn parse(text: &str) -> Result<Vec<(String, String)>, ParseError> {
    let mut out = Vec::new();
    let mut p = Parser {
        rest: text,
        line: 1,
    };
    loop {
        p.skip_blank();
        if p.rest.is_empty() {
            return Ok(out);
        }
        if p.rest.starts_with('#') {
            p.skip_line();
            continue;
        }
        let start = p.line;
        let err = |what: String| ParseError { line: start, what };
        if let Some(after) = p.rest.strip_prefix("export")
            && after.starts_with([' ', '\t'])
        {
            p.rest = after.trim_start_matches([' ', '\t']);
        }
        let end = p.rest.find(['=', '\n']).unwrap_or(p.rest.len());
        let name = p.rest[..end].trim_end_matches([' ', '\t']);
        if !p.rest[end..].starts_with('=') {
            return Err(err(format!(
                "`{}` is not an assignment (expected KEY=VALUE)",
                shorten(p.rest[..end].trim())
            )));
        }
        if !valid_name(name) {
            return Err(err(format!(
                "`{}` is not a variable name (letters, digits and `_`, not starting with a digit)",
                shorten(name)
            )));
        }
        p.rest = p.rest[end + 1..].trim_start_matches([' ', '\t']);
        let value = p.value(start)?;
        if value.contains('\0') {
            return Err(err(format!("the value of `{name}` contains a NUL byte")));
        }
        out.push((name.to_string(), value));
    }
}

/// The first 40 characters of `s`, for an error message.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

struct Parser<'a> {
    rest: &'a str,
    /// The line `rest` starts on.
    line: usize,
}

impl Parser<'_> {
    /// Skip whitespace and empty lines.
    fn skip_blank(&mut self) {
        let trimmed = self.rest.trim_start_matches([' ', '\t', '\r', '\n']);
        self.line += self.rest[..self.rest.len() - trimmed.len()]
            .matches('\n')
            .count();
        self.rest = trimmed;
    }

    /// Skip to the start of the next line.
    fn skip_line(&mut self) {
        match self.rest.find('\n') {
            Some(i) => {
                self.rest = &self.rest[i + 1..];
                self.line += 1;
            }
            None => self.rest = "",
        }
    }

    /// The value after `=`, up to and including the end of its line.
    fn value(&mut self, start: usize) -> Result<String, ParseError> {
        let err = |what: &str| ParseError {
            line: start,
            what: what.to_string(),
        };
        let value = if let Some(body) = self.rest.strip_prefix('\'') {
            let end = body
                .find('\'')
                .ok_or_else(|| err("no closing single quote"))?;
            let value = body[..end].to_string();
            self.line += value.matches('\n').count();
            self.rest = &body[end + 1..];
            value
        } else if let Some(body) = self.rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = body.char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err(err("no closing double quote")),
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some('t') => value.push('\t'),
                        Some('r') => value.push('\r'),
                        Some(c @ ('"' | '\\' | '$')) => value.push(c),
                        Some('\n') => self.line += 1,
                        Some(c) => {
                            return Err(err(&format!(
                                "unknown escape `\\{c}` in double quotes (known: \\n \\t \\r \\\" \\\\ \\$)"
                            )));
                        }
                        None => return Err(err("no closing double quote")),
                    },
                    Some((_, c)) => {
                        if c == '\n' {
                            self.line += 1;
                        }
                        value.push(c);
                    }
                }
            };
            self.rest = &body[end + 1..];
            value
        } else {
            let end = self.rest.find('\n').unwrap_or(self.rest.len());
            let line = &self.rest[..end];
            // A comment starts at a `#` that begins a word.
            let cut = line
                .char_indices()
                .find(|&(i, c)| c == '#' && (i == 0 || line[..i].ends_with([' ', '\t'])))
                .map_or(line.len(), |(i, _)| i);
            let value = line[..cut].trim_end_matches([' ', '\t', '\r']).to_string();
            self.rest = &self.rest[cut..];
            self.skip_line();
            return Ok(value);
        };
        // After a closing quote: only blanks or a comment up to the newline.
        let end = self.rest.find('\n').unwrap_or(self.rest.len());
        let tail = self.rest[..end].trim_matches([' ', '\t', '\r']);
        if !tail.is_empty() && !tail.starts_with('#') {
            return Err(ParseError {
                line: self.line,
                what: format!("`{}` after the closing quote", shorten(tail)),
            });
        }
        self.skip_line();
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_documented_syntax() {
        let text = "\
# a comment
  # an indented comment

PLAIN=value with spaces   
export EXPORTED=yes
SPACED = around
EMPTY=
EMPTY_QUOTED=\"\"
HASH=a#b # a comment
SINGLE='no \\n escapes, \"double\" kept'
DOUBLE=\"tab\\there \\\"q\\\" \\\\ \\$HOME\"
MULTI=\"one
two\"
CONT=\"a\\
b\"   # trailing comment
DOLLAR=$HOME
LAST=no newline at the end";
        assert_eq!(
            ok(text),
            pairs(&[
                ("PLAIN", "value with spaces"),
                ("EXPORTED", "yes"),
                ("SPACED", "around"),
                ("EMPTY", ""),
                ("EMPTY_QUOTED", ""),
                ("HASH", "a#b"),
                ("SINGLE", "no \\n escapes, \"double\" kept"),
                ("DOUBLE", "tab\there \"q\" \\ $HOME"),
                ("MULTI", "one\ntwo"),
                ("CONT", "ab"),
                ("DOLLAR", "$HOME"),
                ("LAST", "no newline at the end"),
            ])
        );
        assert_eq!(ok("A=1\r\nB='2'\r\n"), pairs(&[("A", "1"), ("B", "2")]));
        assert_eq!(ok("export=1"), pairs(&[("export", "1")]));
    }

    #[test]
    fn errors_name_the_line_and_what_is_wrong() {
        let cases = [
            ("A=1\nB\n", 2, "not an assignment"),
            ("A=1\n\n1X=2", 3, "not a variable name"),
            ("A-B=1", 1, "not a variable name"),
            ("A=1\nB=\"open\nstill open", 2, "no closing double quote"),
            ("B='open", 1, "no closing single quote"),
            ("A='x'\nB=\"a\\qb\"", 2, "unknown escape `\\q`"),
            ("A=\"x\nyz\" tail", 2, "`tail` after the closing quote"),
            ("A=\"\0\"", 1, "NUL"),
        ];
        for (text, line, what) in cases {
            let e = parse(text).expect_err(text);
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().contains(what), "{text:?}: {e}");
        }
    }

    /// xorshift64*: deterministic, so a failure repeats.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a>(&mut self, from: &'a [&'a str]) -> &'a str {
            from[self.below(from.len())]
        }
    }

    /// Characters that stress quoting: quotes, escapes, comment marks,
    /// newlines, `=`, blanks and non-ASCII.
    const PIECES: &[&str] = &[
        "a", "Z", "0", " ", "\t", "\n", "\r", "#", "=", "'", "\"", "\\", "$", "é", "💡", "x y",
        "\\n", "export ",
    ];

    fn random_value(rng: &mut Rng) -> String {
        (0..rng.below(12)).map(|_| rng.pick(PIECES)).collect()
    }

    /// `value` written so that the parser must give it back: double
    /// quotes with every special character escaped.
    fn double_quoted(value: &str) -> String {
        let mut s = String::from("\"");
        for c in value.chars() {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                '$' => s.push_str("\\$"),
                '\n' => s.push_str("\\n"),
                '\r' => s.push_str("\\r"),
                '\t' => s.push_str("\\t"),
                c => s.push(c),
            }
        }
        s.push('"');
        s
    }

    #[test]
    fn property_written_files_read_back_exactly() {
        for seed in 1..=500u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut expected = Vec::new();
            let mut text = String::new();
            for i in 0..rng.below(8) {
                if rng.below(3) == 0 {
                    text.push_str(rng.pick(&["\n", "# c = 'x\n", "   \n", "\t# \"\n"]));
                }
                let name = format!("{}{i}", rng.pick(&["A", "_b", "key_", "X9"]));
                let value = random_value(&mut rng);
                let plain_ok = !value.is_empty()
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_$é💡".contains(c));
                let written = match rng.below(3) {
                    0 if !value.contains('\'') => format!("'{value}'"),
                    1 if plain_ok => value.clone(),
                    _ => double_quoted(&value),
                };
                let export = if rng.below(2) == 0 { "export " } else { "" };
                let eq = rng.pick(&["=", " = ", "=\t"]);
                let trailer = rng.pick(&["", "  ", " # note", "\t#x"]);
                text.push_str(&format!("{export}{name}{eq}{written}{trailer}\n"));
                expected.push((name, value));
            }
            match parse(&text) {
                Ok(got) => assert_eq!(got, expected, "seed {seed}: {text:?}"),
                Err(e) => panic!("seed {seed}: {e} in {text:?}"),
            }
        }
    }

    #[test]
    fn property_any_input_parses_or_names_a_line_inside_it() {
        for seed in 1..=2000u64 {
            let mut rng = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1);
            let text: String = (0..rng.below(40))
                .map(|_| {
                    rng.pick(&[
                        "A", "=", "'", "\"", "\\", "\n", " ", "#", "export ", "1", "\0",
                    ])
                })
                .collect();
            match parse(&text) {
                Ok(vars) => assert!(
                    vars.iter().all(|(k, v)| valid_name(k) && !v.contains('\0')),
                    "seed {seed}: {text:?} -> {vars:?}"
                ),
                Err(e) => {
                    let lines = text.matches('\n').count() + 1;
                    assert!((1..=lines).contains(&e.line), "seed {seed}: {text:?}: {e}");
                }
            }
        }
    }
}
