//! ZooKeeper transaction ids derived from the Raft log.
//!
//! A zxid is `(term << 32) | position`, where `position` is the entry's place within its term:
//! the no-op a new leader appends is position 0, the first proposal of the term position 1.
//! Because terms grow along the log and positions grow within a term, zxids order exactly as
//! log indexes do (ZAB's epoch/counter split).

use std::fmt;

use thiserror::Error;

use crate::types::Term;

/// A ZooKeeper transaction id: `(term << 32) | position within the term`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Zxid(pub u64);

/// Why a zxid cannot be formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ZxidError {
    /// The term does not fit in the upper 32 bits.
    #[error("term {term} does not fit in a zxid's 32-bit epoch")]
    TermTooLarge {
        /// The offending term.
        term: Term,
    },
    /// The term already holds 2^32 entries; no further entry can get a position.
    #[error("term {term} has no zxid position left")]
    PositionExhausted {
        /// The exhausted term.
        term: Term,
    },
}

impl Zxid {
    /// Builds the zxid of the entry at `position` within `term`.
    ///
    /// # Errors
    /// [`ZxidError::TermTooLarge`] when `term` exceeds `u32::MAX`.
    pub fn new(term: Term, position: u32) -> Result<Zxid, ZxidError> {
        if term.0 > u64::from(u32::MAX) {
            return Err(ZxidError::TermTooLarge { term });
        }
        Ok(Zxid((term.0 << 32) | u64::from(position)))
    }

    /// The term (ZooKeeper's epoch) part.
    pub fn term(self) -> Term {
        Term(self.0 >> 32)
    }

    /// The position within the term (ZooKeeper's counter).
    pub fn position(self) -> u32 {
        (self.0 & u64::from(u32::MAX)) as u32
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.0)
    }
}

/// The position the entry after one at `position` gets within the same term.
///
/// # Errors
/// [`ZxidError::PositionExhausted`] when `position` is already `u32::MAX`.
pub(crate) fn next_position(term: Term, position: u32) -> Result<u32, ZxidError> {
    position
        .checked_add(1)
        .ok_or(ZxidError::PositionExhausted { term })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxid_orders_by_term_then_position() {
        let a = Zxid::new(Term(1), u32::MAX).unwrap();
        let b = Zxid::new(Term(2), 0).unwrap();
        assert!(a < b);
        assert_eq!(b.term(), Term(2));
        assert_eq!(a.position(), u32::MAX);
    }

    #[test]
    fn zxid_rejects_a_term_beyond_32_bits() {
        let term = Term(u64::from(u32::MAX) + 1);
        assert_eq!(Zxid::new(term, 0), Err(ZxidError::TermTooLarge { term }));
    }

    #[test]
    fn position_exhaustion_is_an_error() {
        assert!(next_position(Term(3), u32::MAX).is_err());
        assert_eq!(next_position(Term(3), 7), Ok(8));
    }
}
