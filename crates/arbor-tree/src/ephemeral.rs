//! What a node's stored `ephemeralOwner` means, bit for bit as ZooKeeper 3.9's
//! `zookeeper-server/.../server/EphemeralType.java` defines it.
//!
//! - `0`: a plain persistent node.
//! - `Long.MIN_VALUE` (`0x8000_0000_0000_0000`): a container (`CONTAINER_EPHEMERAL_OWNER`).
//! - with extended types enabled, top byte `0xff`, reserved bits 40..56 zero
//!   (`EXTENDED_BIT_TTL`), low 40 bits the TTL in milliseconds: a TTL node.
//! - anything else: the id of the session that owns an ephemeral node.

use arbor_proto::{CreateMode, ErrorCode, SessionId};

/// `EphemeralType.CONTAINER_EPHEMERAL_OWNER`.
pub(crate) const CONTAINER_EPHEMERAL_OWNER: i64 = i64::MIN;
/// `EphemeralType.EXTENDED_MASK`: the top byte marks an extended type.
const EXTENDED_MASK: i64 = 0xff00_0000_0000_0000_u64 as i64;
/// `EphemeralType.RESERVED_BITS_MASK`: which extended type (0 is TTL).
const RESERVED_BITS_MASK: i64 = 0x00ff_ff00_0000_0000;
/// `EXTENDED_FEATURE_VALUE_MASK = ~(EXTENDED_MASK | RESERVED_BITS_MASK)`.
const EXTENDED_FEATURE_VALUE_MASK: i64 = !(EXTENDED_MASK | RESERVED_BITS_MASK);
/// `EphemeralType.TTL.maxValue()`: 2^40 − 1 ms, about 34 years.
pub(crate) const TTL_MS_MAX: i64 = EXTENDED_FEATURE_VALUE_MASK;

/// The kind of node an `ephemeralOwner` value encodes (`EphemeralType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EphemeralType {
    /// Not ephemeral (`VOID`).
    Persistent,
    /// Owned by a session (`NORMAL`).
    Session(SessionId),
    /// A container (`CONTAINER`).
    Container,
    /// A TTL node with its time to live in milliseconds (`TTL`).
    Ttl(i64),
}

impl EphemeralType {
    /// `EphemeralType.get(ephemeralOwner)`. An extended owner with unknown reserved bits
    /// (ZooKeeper throws) is read as a session owner; apply never stores one.
    pub(crate) fn of(ephemeral_owner: i64, extended_types_enabled: bool) -> EphemeralType {
        if extended_types_enabled
            && ephemeral_owner & EXTENDED_MASK == EXTENDED_MASK
            && ephemeral_owner & RESERVED_BITS_MASK == 0
        {
            return EphemeralType::Ttl(ephemeral_owner & EXTENDED_FEATURE_VALUE_MASK);
        }
        match ephemeral_owner {
            CONTAINER_EPHEMERAL_OWNER => EphemeralType::Container,
            0 => EphemeralType::Persistent,
            owner => EphemeralType::Session(SessionId(owner)),
        }
    }

    /// The owner a client sees in `Stat.ephemeralOwner`: only a session owner; containers
    /// and TTL nodes show 0 (`DataNode.getClientEphemeralOwner`).
    pub(crate) fn client_owner(ephemeral_owner: i64, extended_types_enabled: bool) -> i64 {
        match EphemeralType::of(ephemeral_owner, extended_types_enabled) {
            EphemeralType::Session(session) => session.0,
            _ => 0,
        }
    }
}

/// `EphemeralType.TTL.toEphemeralOwner(ttl)`.
///
/// # Errors
/// [`ErrorCode::BadArguments`] when `ttl` is not in `1..=TTL_MS_MAX`.
pub(crate) fn ttl_owner(ttl_ms: i64) -> Result<i64, ErrorCode> {
    if ttl_ms <= 0 || ttl_ms > TTL_MS_MAX {
        return Err(ErrorCode::BadArguments);
    }
    Ok(EXTENDED_MASK | ttl_ms)
}

/// `EphemeralType.validateTTL(mode, ttl)` as `PrepRequestProcessor.validateCreateRequest`
/// maps it: a TTL mode needs a TTL in range, any other mode needs a negative one (plain
/// creates pass −1).
///
/// # Errors
/// [`ErrorCode::BadArguments`] otherwise.
pub(crate) fn validate_ttl(mode: CreateMode, ttl_ms: i64) -> Result<(), ErrorCode> {
    if mode.is_ttl() {
        ttl_owner(ttl_ms).map(|_| ())
    } else if ttl_ms >= 0 {
        Err(ErrorCode::BadArguments)
    } else {
        Ok(())
    }
}

/// Whether a session id can own ephemerals without being mistaken for another marker: not
/// 0, not the container marker, and (with extended types) not in the TTL range. ZooKeeper
/// avoids the clash by capping server ids at 254 (`EphemeralType.MAX_EXTENDED_SERVER_ID`).
pub(crate) fn is_valid_session_owner(session_id: SessionId, extended_types_enabled: bool) -> bool {
    matches!(
        EphemeralType::of(session_id.0, extended_types_enabled),
        EphemeralType::Session(_)
    ) && !(extended_types_enabled && session_id.0 & EXTENDED_MASK == EXTENDED_MASK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_patterns_match_ephemeral_type_java() {
        assert_eq!(CONTAINER_EPHEMERAL_OWNER as u64, 0x8000_0000_0000_0000);
        assert_eq!(TTL_MS_MAX, 0x0000_00ff_ffff_ffff);
        assert_eq!(ttl_owner(1).unwrap() as u64, 0xff00_0000_0000_0001);
        assert_eq!(ttl_owner(TTL_MS_MAX).unwrap() as u64, 0xff00_00ff_ffff_ffff);
        assert_eq!(ttl_owner(0), Err(ErrorCode::BadArguments));
        assert_eq!(ttl_owner(-1), Err(ErrorCode::BadArguments));
        assert_eq!(ttl_owner(TTL_MS_MAX + 1), Err(ErrorCode::BadArguments));
    }

    #[test]
    fn owners_decode_to_their_kind() {
        let ttl = ttl_owner(5000).unwrap();
        assert_eq!(EphemeralType::of(ttl, true), EphemeralType::Ttl(5000));
        assert_eq!(
            EphemeralType::of(ttl, false),
            EphemeralType::Session(SessionId(ttl))
        );
        assert_eq!(
            EphemeralType::of(CONTAINER_EPHEMERAL_OWNER, true),
            EphemeralType::Container
        );
        assert_eq!(EphemeralType::of(0, true), EphemeralType::Persistent);
        assert_eq!(
            EphemeralType::of(0x0100_0000_0000_0001, true),
            EphemeralType::Session(SessionId(0x0100_0000_0000_0001))
        );
        assert_eq!(EphemeralType::client_owner(ttl, true), 0);
        assert_eq!(
            EphemeralType::client_owner(CONTAINER_EPHEMERAL_OWNER, true),
            0
        );
        assert_eq!(EphemeralType::client_owner(42, true), 42);
    }

    #[test]
    fn ttl_validation_per_mode() {
        assert_eq!(validate_ttl(CreateMode::PersistentWithTtl, 10), Ok(()));
        assert_eq!(
            validate_ttl(CreateMode::PersistentWithTtl, -1),
            Err(ErrorCode::BadArguments)
        );
        assert_eq!(validate_ttl(CreateMode::Persistent, -1), Ok(()));
        assert_eq!(
            validate_ttl(CreateMode::Persistent, 0),
            Err(ErrorCode::BadArguments)
        );
    }

    #[test]
    fn session_owner_validity() {
        assert!(is_valid_session_owner(
            SessionId(0x0100_0000_0000_0001),
            true
        ));
        assert!(!is_valid_session_owner(SessionId(0), true));
        assert!(!is_valid_session_owner(SessionId(i64::MIN), true));
        assert!(!is_valid_session_owner(SessionId(-1), true));
        assert!(is_valid_session_owner(SessionId(-1), false));
    }
}
