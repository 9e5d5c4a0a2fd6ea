//! Znode path checks with the messages of ZooKeeper's `PathUtils.validatePath`.

/// Checks `path` as the Java client does before it sends a request, and returns its message
/// (`Path must start with / character`, `Invalid path string "/a//b" caused by empty node name
/// specified @3`, ...) when the path is not valid.
///
/// A sequential create appends a counter to the name, so ZooKeeper checks `path + "1"` there:
/// `/queue/` is a valid prefix for a sequential node. Positions are counted in UTF-16 units, as
/// Java does, and any character outside the Basic Multilingual Plane is refused (Java sees its
/// surrogate halves, which ZooKeeper rejects).
///
/// # Errors
/// The message, when the path is not a valid znode path.
pub(crate) fn validate_path(path: &str, sequential: bool) -> Result<(), String> {
    let checked = if sequential {
        format!("{path}1")
    } else {
        path.to_owned()
    };
    let units: Vec<u16> = checked.encode_utf16().collect();
    let Some(&first) = units.first() else {
        return Err("Path length must be > 0".to_owned());
    };
    if first != u16::from(b'/') {
        return Err("Path must start with / character".to_owned());
    }
    if units.len() == 1 {
        return Ok(());
    }
    if units.last() == Some(&u16::from(b'/')) {
        return Err("Path must not end with / character".to_owned());
    }
    let slash = u16::from(b'/');
    let dot = u16::from(b'.');
    let ends_name = |i: usize| i + 1 == units.len() || units[i + 1] == slash;
    for i in 1..units.len() {
        let c = units[i];
        let previous = units[i - 1];
        let reason = if c == 0 {
            Some("null character not allowed")
        } else if c == slash && previous == slash {
            Some("empty node name specified")
        } else if c == dot && previous == dot {
            // `i >= 2` holds: units[0] is '/', so two dots in a row start at index 1 at least.
            (units[i - 2] == slash && ends_name(i)).then_some("relative paths not allowed")
        } else if c == dot {
            (previous == slash && ends_name(i)).then_some("relative paths not allowed")
        } else if matches!(c, 0x0001..=0x001f | 0x007f..=0x009f | 0xd800..=0xf8ff | 0xfff0..=0xffff)
        {
            Some("invalid character")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(format!(
                "Invalid path string \"{path}\" caused by {reason} @{i}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str) -> Result<(), String> {
        validate_path(path, false)
    }

    #[test]
    fn ordinary_paths_are_valid() {
        for path in [
            "/",
            "/a",
            "/a/b",
            "/zookeeper/config",
            "/a.b",
            "/.a",
            "/a..",
            "/...",
            "/é",
        ] {
            assert_eq!(check(path), Ok(()), "{path}");
        }
    }

    #[test]
    fn shape_errors_use_zookeepers_wording() {
        assert_eq!(check(""), Err("Path length must be > 0".to_owned()));
        assert_eq!(
            check("a"),
            Err("Path must start with / character".to_owned())
        );
        assert_eq!(
            check("/a/"),
            Err("Path must not end with / character".to_owned())
        );
    }

    #[test]
    fn bad_names_report_reason_and_position() {
        assert_eq!(
            check("/a//b"),
            Err("Invalid path string \"/a//b\" caused by empty node name specified @3".to_owned())
        );
        assert_eq!(
            check("/a/./b"),
            Err(
                "Invalid path string \"/a/./b\" caused by relative paths not allowed @3".to_owned()
            )
        );
        assert_eq!(
            check("/a/.."),
            Err("Invalid path string \"/a/..\" caused by relative paths not allowed @4".to_owned())
        );
        assert_eq!(
            check("/a\u{1}"),
            Err("Invalid path string \"/a\u{1}\" caused by invalid character @2".to_owned())
        );
        assert_eq!(
            check("/a\0"),
            Err("Invalid path string \"/a\0\" caused by null character not allowed @2".to_owned())
        );
    }

    #[test]
    fn characters_beyond_the_bmp_are_refused_like_java() {
        assert!(check("/\u{1F600}").is_err());
    }

    #[test]
    fn sequential_prefixes_may_end_with_a_slash() {
        assert_eq!(validate_path("/queue/", true), Ok(()));
        assert_eq!(validate_path("/queue/item-", true), Ok(()));
        assert!(validate_path("/queue//", true).is_err());
    }
}
