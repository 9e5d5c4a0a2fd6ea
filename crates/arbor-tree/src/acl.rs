//! ACLs: the shared table every node points into (ZooKeeper's `ReferenceCountedACLCache`
//! idea: each distinct list is stored once), validation of a new ACL (`fixupACL`) and the
//! permission check (`ZooKeeperServer.checkACL`).

use std::sync::Arc;

use arbor_proto::{Acl, ErrorCode, Id};
use imbl::OrdMap;

use crate::auth::{
    IP_SCHEME, SUPER_SCHEME, ip_matches, is_valid_digest_id, is_valid_ip_expression,
};
use crate::config::TreeConfig;

/// Index of an ACL list in the [`AclTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct AclId(pub(crate) u32);

#[derive(Clone, Debug, PartialEq, Eq)]
struct AclEntry {
    acl: Arc<[Acl]>,
    /// Invariant: the number of nodes whose `acl` is this entry's id; never 0 in the table.
    references: u64,
}

/// Every distinct ACL list in use, each stored once and reference counted. Deterministic:
/// ids come from a counter, so every replica assigns the same id to the same list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct AclTable {
    by_id: OrdMap<AclId, AclEntry>,
    by_list: OrdMap<Arc<[Acl]>, AclId>,
    next_id: u32,
}

impl AclTable {
    /// Takes one reference to `acl`, adding it if new.
    pub(crate) fn acquire(&mut self, acl: &[Acl]) -> AclId {
        if let Some(&id) = self.by_list.get(acl) {
            let entry = self.by_id.get_mut(&id);
            let entry = entry.unwrap_or_else(|| panic!("acl table: list maps to missing {id:?}"));
            entry.references += 1;
            return id;
        }
        let id = self.free_id();
        let list: Arc<[Acl]> = Arc::from(acl);
        self.by_list.insert(list.clone(), id);
        self.by_id.insert(
            id,
            AclEntry {
                acl: list,
                references: 1,
            },
        );
        id
    }

    /// Drops one reference; the list goes when nothing uses it.
    ///
    /// # Panics
    /// If `id` is not in the table (a node pointing at a missing list is a bug).
    pub(crate) fn release(&mut self, id: AclId) {
        let entry = self.by_id.get_mut(&id);
        let entry = entry.unwrap_or_else(|| panic!("acl table: release of missing {id:?}"));
        assert!(entry.references > 0, "acl table: {id:?} has no references");
        entry.references -= 1;
        if entry.references == 0 {
            let list = entry.acl.clone();
            self.by_id.remove(&id);
            self.by_list.remove(&*list);
        }
    }

    /// The shared list behind `id` (a cheap clone).
    ///
    /// # Panics
    /// If `id` is not in the table.
    pub(crate) fn get_shared(&self, id: AclId) -> Arc<[Acl]> {
        match self.by_id.get(&id) {
            Some(entry) => entry.acl.clone(),
            None => panic!("acl table: lookup of missing {id:?}"),
        }
    }

    /// The list behind `id`.
    ///
    /// # Panics
    /// If `id` is not in the table.
    pub(crate) fn get(&self, id: AclId) -> &[Acl] {
        match self.by_id.get(&id) {
            Some(entry) => &entry.acl,
            None => panic!("acl table: lookup of missing {id:?}"),
        }
    }

    /// The lowest unused id at or after the counter, wrapping: deterministic, and never
    /// exhausted while fewer than 2^32 lists are live.
    fn free_id(&mut self) -> AclId {
        loop {
            let id = AclId(self.next_id);
            self.next_id = self.next_id.wrapping_add(1);
            if !self.by_id.contains_key(&id) {
                return id;
            }
        }
    }

    /// Number of distinct lists.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// The counter the next new list's id starts from (part of the replicated state).
    pub(crate) fn next_id(&self) -> u32 {
        self.next_id
    }

    /// Entries in id order with their reference counts, for snapshots and checks.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (AclId, &[Acl], u64)> {
        self.by_id
            .iter()
            .map(|(id, entry)| (*id, &*entry.acl, entry.references))
    }

    /// Rebuilds a table from a snapshot: lists with ids, all with zero references until the
    /// nodes are loaded and [`AclTable::add_reference`] counts them.
    pub(crate) fn restore(next_id: u32) -> AclTable {
        AclTable {
            next_id,
            ..AclTable::default()
        }
    }

    /// Adds a list under a given id while restoring. Returns false on a duplicate id or list.
    pub(crate) fn restore_entry(&mut self, id: AclId, acl: Vec<Acl>) -> bool {
        let list: Arc<[Acl]> = Arc::from(acl);
        if self.by_id.contains_key(&id) || self.by_list.contains_key(&*list) {
            return false;
        }
        self.by_list.insert(list.clone(), id);
        self.by_id.insert(
            id,
            AclEntry {
                acl: list,
                references: 0,
            },
        );
        true
    }

    /// Counts a node's reference while restoring. Returns false if the id is unknown.
    pub(crate) fn add_reference(&mut self, id: AclId) -> bool {
        match self.by_id.get_mut(&id) {
            Some(entry) => {
                entry.references += 1;
                true
            }
            None => false,
        }
    }
}

/// `PrepRequestProcessor.fixupACL`: removes duplicates, rejects an empty list, unknown
/// schemes and malformed ids, and expands `auth` into the caller's authenticated ids.
///
/// # Errors
/// [`ErrorCode::InvalidAcl`].
pub(crate) fn fixup_acl(
    acl: &[Acl],
    identities: &[Id],
    config: &TreeConfig,
) -> Result<Vec<Acl>, ErrorCode> {
    let mut unique: Vec<&Acl> = Vec::with_capacity(acl.len());
    for entry in acl {
        if !unique.contains(&entry) {
            unique.push(entry);
        }
    }
    if unique.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut fixed = Vec::with_capacity(unique.len());
    for entry in unique {
        let id = &entry.id;
        if id.scheme == "world" && id.id == "anyone" {
            fixed.push(entry.clone());
        } else if id.scheme == "auth" {
            // Only ids of providers whose isAuthenticated() is true: digest and the configured
            // schemes; not ip (IPAuthenticationProvider.isAuthenticated is false), and not
            // super or world, which have no provider.
            let before = fixed.len();
            for identity in identities {
                if config.is_equality_scheme(&identity.scheme) {
                    fixed.push(Acl {
                        perms: entry.perms,
                        id: identity.clone(),
                    });
                }
            }
            if fixed.len() == before {
                return Err(ErrorCode::InvalidAcl);
            }
        } else if is_valid_id(id, config) {
            fixed.push(entry.clone());
        } else {
            return Err(ErrorCode::InvalidAcl);
        }
    }
    Ok(fixed)
}

fn is_valid_id(id: &Id, config: &TreeConfig) -> bool {
    match id.scheme.as_str() {
        crate::auth::DIGEST_SCHEME => is_valid_digest_id(&id.id),
        IP_SCHEME => is_valid_ip_expression(&id.id),
        scheme => config.is_equality_scheme(scheme),
    }
}

/// `ZooKeeperServer.checkACL`: passes if the list is empty, the caller has a `super`
/// identity, or an entry granting any bit of `perm` is `world:anyone` or matches one of the
/// caller's identities under its scheme's provider.
///
/// # Errors
/// [`ErrorCode::NoAuth`].
/// Whether `identities` may READ a node with this ACL: the test a watch event must pass
/// before it is delivered (ZOOKEEPER-4799).
pub fn readable_by(acl: &[Acl], identities: &[Id], config: &TreeConfig) -> bool {
    check_acl(acl, arbor_proto::perms::READ, identities, config).is_ok()
}

pub(crate) fn check_acl(
    acl: &[Acl],
    perm: i32,
    identities: &[Id],
    config: &TreeConfig,
) -> Result<(), ErrorCode> {
    if acl.is_empty() || identities.iter().any(|id| id.scheme == SUPER_SCHEME) {
        return Ok(());
    }
    for entry in acl.iter().filter(|entry| entry.perms & perm != 0) {
        let scheme = entry.id.scheme.as_str();
        if scheme == "world" && entry.id.id == "anyone" {
            return Ok(());
        }
        let candidates = identities.iter().filter(|id| id.scheme == scheme);
        let matched = if scheme == IP_SCHEME {
            candidates
                .into_iter()
                .any(|id| ip_matches(&id.id, &entry.id.id))
        } else if config.is_equality_scheme(scheme) {
            candidates.into_iter().any(|id| id.id == entry.id.id)
        } else {
            false
        };
        if matched {
            return Ok(());
        }
    }
    Err(ErrorCode::NoAuth)
}

/// What `getACL` shows a caller without ADMIN (`FinalRequestProcessor`, 3.9): digest ids
/// with everything after the colon replaced, Java's `id.replaceAll(":.*", ":x")`.
pub(crate) fn redact_digests(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|entry| {
            if entry.id.scheme == crate::auth::DIGEST_SCHEME {
                Acl {
                    perms: entry.perms,
                    id: Id::new(
                        entry.id.scheme.clone(),
                        java_replace_colon_tail(&entry.id.id),
                    ),
                }
            } else {
                entry.clone()
            }
        })
        .collect()
}

/// `text.replaceAll(":.*", ":x")`: `.` stops at Java's line terminators.
fn java_replace_colon_tail(text: &str) -> String {
    let is_line_terminator =
        |c: char| matches!(c, '\n' | '\r' | '\u{0085}' | '\u{2028}' | '\u{2029}');
    let mut out = String::with_capacity(text.len());
    let mut skipping = false;
    for c in text.chars() {
        if skipping && !is_line_terminator(c) {
            continue;
        }
        skipping = false;
        if c == ':' {
            out.push_str(":x");
            skipping = true;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use arbor_proto::perms;

    use super::*;
    use crate::auth::digest;

    fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl {
            perms,
            id: Id::new(scheme, id),
        }
    }

    #[test]
    fn table_shares_lists_and_frees_unused_ones() {
        let mut table = AclTable::default();
        let open = Acl::open_unsafe();
        let a = table.acquire(&open);
        let b = table.acquire(&open);
        assert_eq!(a, b);
        assert_eq!(table.len(), 1);
        let read = table.acquire(&Acl::read_unsafe());
        assert_ne!(read, a);
        table.release(a);
        assert_eq!(table.get(b), &open[..]);
        table.release(b);
        assert_eq!(table.len(), 1);
        let again = table.acquire(&open);
        assert_ne!(
            again, a,
            "ids come from a counter, not reuse of the freed slot first"
        );
    }

    #[test]
    fn fixup_rejects_empty_unknown_and_malformed() {
        let config = TreeConfig::default();
        let none: &[Id] = &[];
        assert_eq!(fixup_acl(&[], none, &config), Err(ErrorCode::InvalidAcl));
        for bad in [
            acl(perms::ALL, "world", "somebody"),
            acl(perms::ALL, "kerberos", "x"),
            acl(perms::ALL, "super", ""),
            acl(perms::ALL, "digest", "nocolon"),
            acl(perms::ALL, "ip", "300.0.0.1"),
            acl(perms::ALL, "ip", "10.0.0.0/40"),
            acl(perms::ALL, "x509", "CN=a"),
        ] {
            assert_eq!(
                fixup_acl(std::slice::from_ref(&bad), none, &config),
                Err(ErrorCode::InvalidAcl),
                "{bad:?}"
            );
        }
        let with_x509 = TreeConfig {
            additional_auth_schemes: vec!["x509".into()],
            ..TreeConfig::default()
        };
        assert!(fixup_acl(&[acl(perms::ALL, "x509", "CN=a")], none, &with_x509).is_ok());
    }

    #[test]
    fn fixup_removes_duplicates_and_keeps_order() {
        let config = TreeConfig::default();
        let list = vec![
            acl(perms::READ, "ip", "10.0.0.0/8"),
            acl(perms::ALL, "world", "anyone"),
            acl(perms::READ, "ip", "10.0.0.0/8"),
        ];
        assert_eq!(fixup_acl(&list, &[], &config).unwrap(), list[..2].to_vec());
    }

    #[test]
    fn auth_scheme_expands_to_authenticated_ids_only() {
        let config = TreeConfig::default();
        let bob = Id::new("digest", digest("bob:pw"));
        let identities = vec![
            Id::new("ip", "127.0.0.1"),
            Id::new("super", ""),
            bob.clone(),
        ];
        assert_eq!(
            fixup_acl(&[acl(perms::READ, "auth", "")], &identities, &config).unwrap(),
            vec![Acl {
                perms: perms::READ,
                id: bob
            }]
        );
        let ip_only = vec![Id::new("ip", "127.0.0.1")];
        assert_eq!(
            fixup_acl(&[acl(perms::READ, "auth", "")], &ip_only, &config),
            Err(ErrorCode::InvalidAcl)
        );
    }

    #[test]
    fn check_matrix() {
        let config = TreeConfig::default();
        let bob = Id::new("digest", digest("bob:pw"));
        let list = vec![
            acl(perms::READ, "ip", "10.0.0.0/8"),
            Acl {
                perms: perms::WRITE | perms::ADMIN,
                id: bob.clone(),
            },
        ];
        let lan = Id::new("ip", "10.2.3.4");
        let wan = Id::new("ip", "8.8.8.8");
        assert_eq!(
            check_acl(&list, perms::READ, std::slice::from_ref(&lan), &config),
            Ok(())
        );
        assert_eq!(
            check_acl(&list, perms::READ, std::slice::from_ref(&wan), &config),
            Err(ErrorCode::NoAuth)
        );
        assert_eq!(
            check_acl(&list, perms::WRITE, std::slice::from_ref(&lan), &config),
            Err(ErrorCode::NoAuth)
        );
        assert_eq!(
            check_acl(&list, perms::WRITE, &[wan.clone(), bob.clone()], &config),
            Ok(())
        );
        assert_eq!(
            check_acl(&list, perms::DELETE, std::slice::from_ref(&bob), &config),
            Err(ErrorCode::NoAuth)
        );
        // Either bit of a combined request passes (getACL asks READ | ADMIN).
        assert_eq!(
            check_acl(
                &list,
                perms::READ | perms::ADMIN,
                std::slice::from_ref(&bob),
                &config
            ),
            Ok(())
        );
        assert_eq!(
            check_acl(&list, perms::DELETE, &[Id::new("super", "")], &config),
            Ok(())
        );
        assert_eq!(check_acl(&[], perms::DELETE, &[], &config), Ok(()));
        assert_eq!(
            check_acl(&Acl::read_unsafe(), perms::READ, &[], &config),
            Ok(())
        );
        assert_eq!(
            check_acl(&Acl::read_unsafe(), perms::WRITE, &[], &config),
            Err(ErrorCode::NoAuth)
        );
        // A digest id does not match under another scheme.
        let impostor = Id::new("x509", bob.id.clone());
        assert_eq!(
            check_acl(&list, perms::WRITE, &[impostor], &config),
            Err(ErrorCode::NoAuth)
        );
    }

    #[test]
    fn redaction_hides_digest_hashes() {
        let list = vec![
            acl(perms::ALL, "digest", "bob:abc="),
            acl(perms::READ, "ip", "1.2.3.4"),
        ];
        assert_eq!(
            redact_digests(&list),
            vec![
                acl(perms::ALL, "digest", "bob:x"),
                acl(perms::READ, "ip", "1.2.3.4")
            ]
        );
        assert_eq!(java_replace_colon_tail("a:b:c"), "a:x");
        assert_eq!(java_replace_colon_tail("a:b\nc:d"), "a:x\nc:x");
        assert_eq!(java_replace_colon_tail("nocolon"), "nocolon");
    }
}
