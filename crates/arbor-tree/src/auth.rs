//! Authentication providers, pure: the `digest` scheme (`DigestAuthenticationProvider.java`)
//! and the `ip` scheme's address matching (`IPAuthenticationProvider.java`), ZooKeeper 3.9.

use arbor_proto::{ErrorCode, Id};
use base64::Engine;
use sha1::{Digest, Sha1};

use crate::config::TreeConfig;

/// The identity scheme whose presence grants every permission (`ZooKeeperServer.checkACL`).
pub(crate) const SUPER_SCHEME: &str = "super";
/// The digest scheme.
pub(crate) const DIGEST_SCHEME: &str = "digest";
/// The ip scheme.
pub(crate) const IP_SCHEME: &str = "ip";

/// ZooKeeper's digest of `user:password`: `user:base64(sha1("user:password"))`, where `user`
/// is everything before the first `:` (`DigestAuthenticationProvider.generateDigest`).
///
/// ```
/// assert_eq!(arbor_tree::digest("super:test"), "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
/// ```
pub fn digest(user_and_password: &str) -> String {
    let user = user_and_password
        .split_once(':')
        .map_or(user_and_password, |(user, _)| user);
    let hash = Sha1::digest(user_and_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// Turns an `addauth` into the identities the connection gains.
///
/// - `digest`: `user:password` becomes `digest:user:<base64 sha1>`, preceded by `super:` when
///   it equals [`TreeConfig::super_digest`] (`DigestAuthenticationProvider.handleAuthentication`).
///   The bytes are read as UTF-8 with replacement, as Java's `new String(bytes)` does.
/// - `ip`: no new identity; ZooKeeper adds the connection's address, which the server already
///   stamps on every command.
///
/// # Errors
/// [`ErrorCode::AuthFailed`] for any other scheme (ZooKeeper has no provider for it).
pub fn authenticate(scheme: &str, auth: &[u8], config: &TreeConfig) -> Result<Vec<Id>, ErrorCode> {
    match scheme {
        DIGEST_SCHEME => {
            let generated = digest(&String::from_utf8_lossy(auth));
            let mut identities = Vec::with_capacity(2);
            if config.super_digest.as_deref() == Some(generated.as_str()) {
                identities.push(Id::new(SUPER_SCHEME, ""));
            }
            identities.push(Id::new(DIGEST_SCHEME, generated));
            Ok(identities)
        }
        IP_SCHEME => Ok(Vec::new()),
        _ => Err(ErrorCode::AuthFailed),
    }
}

/// Java's `String.split(regex)` for a one-character literal: trailing empty strings removed.
pub(crate) fn java_split(text: &str, separator: char) -> Vec<&str> {
    let mut parts: Vec<&str> = text.split(separator).collect();
    if parts.len() == 1 {
        // No separator: Java returns the input itself, even when it is empty.
        return parts;
    }
    while parts.last() == Some(&"") {
        parts.pop();
    }
    parts
}

/// `DigestAuthenticationProvider.isValid`: `id.split(":").length == 2`.
pub(crate) fn is_valid_digest_id(id: &str) -> bool {
    java_split(id, ':').len() == 2
}

/// Java's `Integer.parseInt(text, radix)`: optional sign, then at least one digit.
fn java_parse_int(text: &str, radix: u32) -> Option<i32> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i64::from_str_radix(digits, radix).ok()?;
    let value = if negative { -magnitude } else { magnitude };
    i32::try_from(value).ok()
}

/// `IPAuthenticationProvider.addr2Bytes`: IPv6 if it has a `:`, IPv4 if it has a `.`.
fn address_bytes(address: &str) -> Option<Vec<u8>> {
    if address.contains(':') {
        ipv6_bytes(address)
    } else if address.contains('.') {
        ipv4_bytes(address)
    } else {
        None
    }
}

fn ipv4_bytes(address: &str) -> Option<Vec<u8>> {
    let parts: Vec<&str> = address.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    parts
        .iter()
        .map(|part| {
            java_parse_int(part, 10)
                .filter(|value| (0..=255).contains(value))
                .map(|value| value as u8)
        })
        .collect()
}

/// `IPAuthenticationProvider.parseV6addr` (3.9.4): `::` compression, at most 8 groups of
/// at most four hex digits; no embedded IPv4 form.
fn ipv6_bytes(address: &str) -> Option<Vec<u8>> {
    const SEGMENTS: usize = 8;
    let halves: Vec<&str> = address.split("::").collect();
    let (head, tail): (Vec<&str>, Vec<&str>) = match halves.as_slice() {
        [whole] => {
            let segments: Vec<&str> = whole.split(':').collect();
            if segments.len() != SEGMENTS {
                return None;
            }
            (segments, Vec::new())
        }
        [before, after] => {
            let head = if before.is_empty() {
                Vec::new()
            } else {
                before.split(':').collect()
            };
            let tail = if after.is_empty() {
                Vec::new()
            } else {
                after.split(':').collect()
            };
            if head.len() + tail.len() >= SEGMENTS {
                return None;
            }
            (head, tail)
        }
        _ => return None,
    };
    let mut bytes = vec![0u8; 16];
    let mut write = |start: usize, segments: &[&str]| -> Option<()> {
        for (index, segment) in segments.iter().enumerate() {
            if segment.is_empty() || segment.chars().count() > 4 {
                return None;
            }
            let value = java_parse_int(segment, 16)?;
            bytes[start + 2 * index] = (value >> 8) as u8;
            bytes[start + 2 * index + 1] = value as u8;
        }
        Some(())
    };
    write(0, &head)?;
    write(16 - 2 * tail.len(), &tail)?;
    Some(bytes)
}

/// `IPAuthenticationProvider.mask`: keeps the first `bits` bits.
fn mask(bytes: &mut [u8], bits: usize) {
    let start = bits / 8;
    let mut start_mask = !((1u16 << (8 - bits % 8)) - 1) as u8;
    for byte in bytes.iter_mut().skip(start) {
        *byte &= start_mask;
        start_mask = 0;
    }
}

/// Parses an ip ACL expression, `address` or `address/bits`.
fn ip_expression(expression: &str) -> Option<(Vec<u8>, usize)> {
    let (address, bits) = match expression.split_once('/') {
        Some((address, bits)) => (address, Some(bits)),
        None => (expression, None),
    };
    let bytes = address_bytes(address)?;
    let width = bytes.len() * 8;
    let bits = match bits {
        None => width,
        Some(bits) => {
            let bits = java_parse_int(bits, 10)?;
            usize::try_from(bits).ok().filter(|bits| *bits <= width)?
        }
    };
    Some((bytes, bits))
}

/// `IPAuthenticationProvider.isValid`.
pub(crate) fn is_valid_ip_expression(expression: &str) -> bool {
    ip_expression(expression).is_some()
}

/// `IPAuthenticationProvider.matches(id, aclExpr)`: the client address `id` is inside the
/// ACL's address or CIDR range, IPv4 with IPv4 and IPv6 with IPv6.
pub(crate) fn ip_matches(client_address: &str, expression: &str) -> bool {
    let Some((mut acl_bytes, bits)) = ip_expression(expression) else {
        return false;
    };
    let Some(mut client_bytes) = address_bytes(client_address) else {
        return false;
    };
    if client_bytes.len() != acl_bytes.len() {
        return false;
    }
    mask(&mut acl_bytes, bits);
    mask(&mut client_bytes, bits);
    acl_bytes == client_bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_vectors() {
        // kazoo's suite configures the super digest of "super:test" as this value.
        assert_eq!(digest("super:test"), "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
        assert_eq!(digest("bob:secret").split_once(':').unwrap().0, "bob");
        // No colon: the whole string is the user and is hashed as is.
        assert!(digest("alice").starts_with("alice:"));
        // Only the first colon separates the user.
        assert!(digest("a:b:c").starts_with("a:"));
        assert_ne!(digest("a:b:c"), digest("a:b"));
    }

    #[test]
    fn digest_authentication_adds_super_when_it_matches() {
        let config = TreeConfig {
            super_digest: Some(digest("super:test")),
            ..TreeConfig::default()
        };
        assert_eq!(
            authenticate("digest", b"super:test", &config).unwrap(),
            vec![
                Id::new("super", ""),
                Id::new("digest", digest("super:test"))
            ]
        );
        assert_eq!(
            authenticate("digest", b"bob:pw", &config).unwrap(),
            vec![Id::new("digest", digest("bob:pw"))]
        );
        assert_eq!(
            authenticate("digest", b"super:test", &TreeConfig::default()).unwrap(),
            vec![Id::new("digest", digest("super:test"))]
        );
        assert_eq!(
            authenticate("kerberos", b"x", &config),
            Err(ErrorCode::AuthFailed)
        );
        assert_eq!(
            authenticate("world", b"anyone", &config),
            Err(ErrorCode::AuthFailed)
        );
        assert_eq!(authenticate("ip", b"", &config), Ok(vec![]));
    }

    #[test]
    fn digest_id_validity_is_java_split_length_two() {
        assert!(is_valid_digest_id("user:hash"));
        assert!(is_valid_digest_id("user:hash:"));
        assert!(is_valid_digest_id(":hash"));
        assert!(!is_valid_digest_id("user"));
        assert!(!is_valid_digest_id("user:"));
        assert!(!is_valid_digest_id("a:b:c"));
        assert!(!is_valid_digest_id(""));
        assert!(!is_valid_digest_id(":"));
    }

    #[test]
    fn ipv4_matching_with_and_without_cidr() {
        assert!(ip_matches("127.0.0.1", "127.0.0.1"));
        assert!(!ip_matches("127.0.0.2", "127.0.0.1"));
        assert!(ip_matches("10.1.2.3", "10.0.0.0/8"));
        assert!(!ip_matches("11.1.2.3", "10.0.0.0/8"));
        assert!(ip_matches("192.168.1.77", "192.168.1.64/26"));
        assert!(!ip_matches("192.168.1.128", "192.168.1.64/26"));
        assert!(ip_matches("1.2.3.4", "0.0.0.0/0"));
        assert!(!ip_matches("1.2.3.4", "1.2.3.4/33"));
        assert!(!ip_matches("1.2.3.4", "1.2.3.4/x"));
        assert!(!ip_matches("::1", "0.0.0.0/0"));
    }

    #[test]
    fn ipv6_matching() {
        assert!(ip_matches("::1", "::1"));
        assert!(ip_matches("0:0:0:0:0:0:0:1", "::1"));
        assert!(ip_matches("2001:db8::42", "2001:db8::/32"));
        assert!(!ip_matches("2001:db9::42", "2001:db8::/32"));
        assert!(ip_matches("fe80::1:2", "fe80::/10"));
        assert!(!ip_matches("127.0.0.1", "::/0"));
    }

    #[test]
    fn ip_expression_validity() {
        for valid in [
            "127.0.0.1",
            "10.0.0.0/8",
            "::1",
            "::",
            "2001:db8::/32",
            "1::",
            "1:2:3:4:5:6:7:8",
        ] {
            assert!(is_valid_ip_expression(valid), "{valid}");
        }
        for invalid in [
            "",
            "localhost",
            "1.2.3",
            "1.2.3.256",
            "1.2.3.4.5",
            "1.2.3.4/",
            "1.2.3.4/-1",
            "1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7:8:9",
            "1::2::3",
            "12345::",
            "g::",
            "1:2:3:4::5:6:7:8",
            "::ffff:1.2.3.4",
        ] {
            assert!(!is_valid_ip_expression(invalid), "{invalid}");
        }
    }
}
