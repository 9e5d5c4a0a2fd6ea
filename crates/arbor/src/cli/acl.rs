//! ACLs as zkCli reads and prints them: `scheme:id:perms[,scheme:id:perms...]` in, jute's
//! `'scheme,'id` record text out.

use thiserror::Error;
use zookeeper_client::{Acl, AuthId, Permission};

/// The five ZooKeeper permissions in zkCli's letter order (`ZKUtil.getPermString`).
const PERMISSION_LETTERS: [(char, Permission); 5] = [
    ('c', Permission::CREATE),
    ('d', Permission::DELETE),
    ('r', Permission::READ),
    ('w', Permission::WRITE),
    ('a', Permission::ADMIN),
];

/// Why an ACL argument could not be read. The messages are zkCli's (`AclParser`), which only
/// warns and goes on; we refuse the command instead of sending an ACL the user did not mean.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum AclSyntaxError {
    /// An entry without two colons.
    #[error("{entry} does not have the form scheme:id:perm")]
    NotSchemeIdPerm {
        /// The offending entry.
        entry: String,
    },
    /// A permission letter outside `cdrwa`.
    #[error("Unknown perm type: {letter}")]
    UnknownPermission {
        /// The offending letter.
        letter: char,
    },
}

/// Parses zkCli's ACL syntax. The scheme runs to the first colon and the permissions start after
/// the last one, so a digest id keeps its inner colon: `digest:bob:pw-hash:cdrwa` has the id
/// `bob:pw-hash`.
///
/// # Errors
/// [`AclSyntaxError`] for an entry without `scheme:id:perm` shape or an unknown permission.
pub(crate) fn parse_acl_list(text: &str) -> Result<Vec<Acl>, AclSyntaxError> {
    text.split(',').map(parse_acl_entry).collect()
}

fn parse_acl_entry(entry: &str) -> Result<Acl, AclSyntaxError> {
    let shape_error = || AclSyntaxError::NotSchemeIdPerm {
        entry: entry.to_owned(),
    };
    let first_colon = entry.find(':').ok_or_else(shape_error)?;
    let last_colon = entry.rfind(':').ok_or_else(shape_error)?;
    if first_colon == last_colon {
        return Err(shape_error());
    }
    let scheme = &entry[..first_colon];
    let id = &entry[first_colon + 1..last_colon];
    let permission = parse_permissions(&entry[last_colon + 1..])?;
    Ok(Acl::new(permission, AuthId::new(scheme, id)))
}

fn parse_permissions(letters: &str) -> Result<Permission, AclSyntaxError> {
    letters
        .chars()
        .try_fold(Permission::NONE, |permission, letter| {
            PERMISSION_LETTERS
                .iter()
                .find(|(known, _)| *known == letter)
                .map(|(_, bit)| permission | *bit)
                .ok_or(AclSyntaxError::UnknownPermission { letter })
        })
}

/// The permission letters zkCli prints, in `cdrwa` order.
pub(crate) fn permission_letters(permission: Permission) -> String {
    PERMISSION_LETTERS
        .iter()
        .filter(|(_, bit)| permission.has(*bit))
        .map(|(letter, _)| *letter)
        .collect()
}

/// The two lines zkCli's `getAcl` prints for one entry: Java's `Id.toString()` (a jute record in
/// its text form, which ends with a newline) followed by `": " + perms`.
pub(crate) fn format_acl_entry(acl: &Acl) -> String {
    format!(
        "{},{}\n: {}",
        jute_text_string(acl.scheme()),
        jute_text_string(acl.id()),
        permission_letters(acl.permission())
    )
}

/// A string as jute's `ToStringOutputArchive` writes it: a leading `'`, and the characters that
/// would break its comma-separated form percent-escaped.
fn jute_text_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\0' => out.push_str("%00"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            ',' => out.push_str("%2C"),
            '}' => out.push_str("%7D"),
            '%' => out.push_str("%25"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<(String, String, String)> {
        match parse_acl_list(text) {
            Ok(acls) => acls
                .iter()
                .map(|acl| {
                    (
                        acl.scheme().to_owned(),
                        acl.id().to_owned(),
                        permission_letters(acl.permission()),
                    )
                })
                .collect(),
            Err(error) => panic!("{text}: {error}"),
        }
    }

    fn triple(scheme: &str, id: &str, perms: &str) -> (String, String, String) {
        (scheme.to_owned(), id.to_owned(), perms.to_owned())
    }

    #[test]
    fn world_anyone_all() {
        assert_eq!(
            parse("world:anyone:cdrwa"),
            [triple("world", "anyone", "cdrwa")]
        );
        let acls = parse_acl_list("world:anyone:cdrwa").unwrap_or_default();
        assert_eq!(acls.first().map(Acl::permission), Some(Permission::ALL));
    }

    #[test]
    fn digest_ids_keep_their_inner_colon() {
        assert_eq!(
            parse("digest:bob:KOmBg8z5jJYsKxMqeIFUMYF9xSs=:rw,ip:127.0.0.1:r"),
            [
                triple("digest", "bob:KOmBg8z5jJYsKxMqeIFUMYF9xSs=", "rw"),
                triple("ip", "127.0.0.1", "r")
            ]
        );
    }

    #[test]
    fn letters_in_any_order_print_in_cdrwa_order() {
        assert_eq!(parse("auth::awrdc"), [triple("auth", "", "cdrwa")]);
        assert_eq!(parse("world:anyone:"), [triple("world", "anyone", "")]);
    }

    #[test]
    fn entries_without_two_colons_are_refused() {
        for (text, entry) in [
            ("bad", "bad"),
            ("world:anyone", "world:anyone"),
            ("", ""),
            ("world:anyone:r,x", "x"),
        ] {
            assert_eq!(
                parse_acl_list(text).map_err(|e| e.to_string()),
                Err(format!("{entry} does not have the form scheme:id:perm")),
                "{text}"
            );
        }
    }

    #[test]
    fn unknown_permission_letters_are_refused() {
        assert_eq!(
            parse_acl_list("world:anyone:rz").map_err(|e| e.to_string()),
            Err("Unknown perm type: z".to_owned())
        );
    }

    #[test]
    fn entries_print_as_zkcli_does() {
        let acl = Acl::new(
            Permission::READ | Permission::ADMIN,
            AuthId::new("digest", "bob:x"),
        );
        assert_eq!(format_acl_entry(&acl), "'digest,'bob:x\n: ra");
        let odd = Acl::new(Permission::ALL, AuthId::new("ip", "a,b%}\n"));
        assert_eq!(format_acl_entry(&odd), "'ip,'a%2Cb%25%7D%0A\n: cdrwa");
    }
}
