//! Znode paths: ZooKeeper's validation rules and the split into parent and child name.

use arbor_proto::ErrorCode;

/// Validates a path exactly as `PathUtils.validatePath(String)` does (ZooKeeper 3.9,
/// `zookeeper-server/.../common/PathUtils.java`).
///
/// Java walks UTF-16 code units, so every character outside the Basic Multilingual Plane
/// (a surrogate pair) is rejected, as are the private-use area and U+FFF0..U+FFFF.
///
/// # Errors
/// [`ErrorCode::BadArguments`] for an invalid path, as the servers' `validatePath` does.
pub(crate) fn validate_path(path: &str) -> Result<(), ErrorCode> {
    if is_valid_path(path) {
        Ok(())
    } else {
        Err(ErrorCode::BadArguments)
    }
}

fn is_valid_path(path: &str) -> bool {
    let units: Vec<u16> = path.encode_utf16().collect();
    let slash = u16::from(b'/');
    let dot = u16::from(b'.');
    match units.as_slice() {
        [] => return false,
        [first, ..] if *first != slash => return false,
        [_] => return true,
        [.., last] if *last == slash => return false,
        _ => {}
    }
    for i in 1..units.len() {
        let c = units[i];
        let last = units[i - 1];
        let next_is_end_or_slash = i + 1 == units.len() || units[i + 1] == slash;
        // The branches mirror PathUtils.validatePath one for one.
        let invalid = match c {
            0 => true,
            _ if c == slash => last == slash,
            // i >= 2 here: units[0] is '/', so a ".." pair starts at 1 at the earliest.
            _ if c == dot && last == dot => units[i - 2] == slash && next_is_end_or_slash,
            _ if c == dot => last == slash && next_is_end_or_slash,
            _ => {
                (0x0001..=0x001f).contains(&c)
                    || (0x007f..=0x009f).contains(&c)
                    || (0xd800..=0xf8ff).contains(&c)
                    || c >= 0xfff0
            }
        };
        if invalid {
            return false;
        }
    }
    true
}

/// ZooKeeper's split of a path at its last `/`: `("/a", "b")` for `/a/b`, `("", "a")` for
/// `/a` (the root's alias is the empty string), `None` when there is no `/` at all.
pub(crate) fn split_last_slash(path: &str) -> Option<(&str, &str)> {
    let index = path.rfind('/')?;
    Some((&path[..index], &path[index + 1..]))
}

/// The sequential suffix: Java's `String.format("%010d", counter)` of a signed 32-bit
/// counter (`PrepRequestProcessor.pRequest2TxnCreate`). Negative values keep their sign in
/// the ten characters (`-000000005`); Rust's sign-aware zero padding is the same.
pub(crate) fn sequential_suffix(counter: i32) -> String {
    format!("{counter:010}")
}

/// Java's `String.trim()`: strips every leading and trailing char `<= ' '`.
pub(crate) fn java_trim(text: &str) -> &str {
    text.trim_matches(|c: char| c <= ' ')
}

/// Number of UTF-16 code units, Java's `String.length()` (for ZooKeeper's approximate data
/// size, which adds path lengths).
pub(crate) fn java_length(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_paths_pass() {
        for path in [
            "/",
            "/a",
            "/a/b",
            "/a.b",
            "/.a",
            "/a.",
            "/...",
            "/a/..b",
            "/a/b..",
            "/zookeeper/quota",
            "/é",
            "/\u{00a0}",
            "/\u{ffef}",
        ] {
            assert_eq!(validate_path(path), Ok(()), "{path:?}");
        }
    }

    #[test]
    fn invalid_paths_are_bad_arguments() {
        for path in [
            "",
            "a",
            "a/b",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/./a",
            "/a/.",
            "/..",
            "/a/../b",
            "/a/..",
            "/a\u{0}b",
            "/a\u{1}",
            "/\u{1f}",
            "/\u{7f}",
            "/\u{9f}",
            "/\u{e000}",
            "/\u{f8ff}",
            "/\u{fff0}",
            "/\u{ffff}",
            "/\u{1f600}",
        ] {
            assert_eq!(
                validate_path(path),
                Err(ErrorCode::BadArguments),
                "{path:?}"
            );
        }
    }

    #[test]
    fn split_follows_last_index_of_slash() {
        assert_eq!(split_last_slash("/a/b"), Some(("/a", "b")));
        assert_eq!(split_last_slash("/a"), Some(("", "a")));
        assert_eq!(split_last_slash("/"), Some(("", "")));
        assert_eq!(split_last_slash("/a/"), Some(("/a", "")));
        assert_eq!(split_last_slash("a"), None);
    }

    #[test]
    fn suffix_is_java_percent_010d() {
        assert_eq!(sequential_suffix(0), "0000000000");
        assert_eq!(sequential_suffix(3), "0000000003");
        assert_eq!(sequential_suffix(i32::MAX), "2147483647");
        assert_eq!(sequential_suffix(-5), "-000000005");
        assert_eq!(sequential_suffix(i32::MIN), "-2147483648");
    }

    #[test]
    fn java_helpers() {
        assert_eq!(java_trim(" \t/a \n"), "/a");
        assert_eq!(java_length("/a"), 2);
        assert_eq!(java_length("/\u{1f600}"), 3);
    }
}
