//! Splitting a shell line into words, the way zkCli does.

use thiserror::Error;

/// A line whose quoted word never closes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unterminated {quote} quote in: {line}")]
pub(crate) struct UnterminatedQuote {
    /// The quote character that was opened.
    quote: char,
    /// The whole line, for the message.
    line: String,
}

/// Splits `line` into words as zkCli's `MyCommandOptions.parseCommand` does: a word is either a
/// whole `"..."` or `'...'` string (quotes stripped, nothing escaped inside) or a run of
/// non-blank characters that does not start with a quote (quotes inside it are literal).
///
/// zkCli silently drops a quote that never closes; we refuse the line instead, because running
/// a command with a silently mangled argument is worse than asking again.
///
/// # Errors
/// [`UnterminatedQuote`] when a word starts with a quote that has no closing partner.
pub(crate) fn split_words(line: &str) -> Result<Vec<String>, UnterminatedQuote> {
    let mut words = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start_matches(is_java_blank);
        let Some(first) = rest.chars().next() else {
            return Ok(words);
        };
        if first == '"' || first == '\'' {
            let inner = &rest[first.len_utf8()..];
            let Some(end) = inner.find(first) else {
                return Err(UnterminatedQuote {
                    quote: first,
                    line: line.to_owned(),
                });
            };
            words.push(inner[..end].to_owned());
            rest = &inner[end + first.len_utf8()..];
        } else {
            let end = rest.find(is_java_blank).unwrap_or(rest.len());
            words.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
}

/// Java's regex `\s`: ASCII blanks only, so a non-breaking space stays inside a word.
fn is_java_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        match split_words(line) {
            Ok(words) => words,
            Err(error) => panic!("{line:?}: {error}"),
        }
    }

    #[test]
    fn blanks_separate_words() {
        assert_eq!(words("  ls   -s\t/a \r\n"), ["ls", "-s", "/a"]);
        assert!(words("").is_empty());
        assert!(words(" \t ").is_empty());
    }

    #[test]
    fn quoted_words_keep_blanks_and_lose_quotes() {
        assert_eq!(words(r#"set /a "two words""#), ["set", "/a", "two words"]);
        assert_eq!(words("set /a 'say \"hi\"'"), ["set", "/a", "say \"hi\""]);
        assert_eq!(words(r#"set /a """#), ["set", "/a", ""]);
    }

    #[test]
    fn quotes_inside_a_word_are_literal() {
        assert_eq!(words(r#"set /a it's"#), ["set", "/a", "it's"]);
        assert_eq!(words(r#"set /a x"y z""#), ["set", "/a", "x\"y", "z\""]);
    }

    #[test]
    fn a_closing_quote_ends_the_word() {
        assert_eq!(words(r#""a b"c"#), ["a b", "c"]);
    }

    #[test]
    fn non_ascii_blanks_stay_in_words() {
        assert_eq!(words("set /a x\u{a0}y"), ["set", "/a", "x\u{a0}y"]);
    }

    #[test]
    fn unterminated_quote_is_refused() {
        let error = split_words("set /a \"oops").err();
        assert_eq!(
            error.map(|e| e.to_string()),
            Some("unterminated \" quote in: set /a \"oops".to_owned())
        );
    }
}
