//! A shared counter, compatible with Curator's `SharedCount`: a persistent node holding a
//! 4-byte big-endian signed integer, changed only by compare-and-set on the node's version.
//!
//! # Guarantees
//! - [`SharedCounter::try_set`] succeeds only if nobody changed the counter since the
//!   [`Versioned`] value it was given was read (ZooKeeper's conditional `setData`).
//! - [`SharedCounter::add`] is a CAS loop: every successful add is applied exactly once.
//! - A CAS whose reply is lost to a connection drop may or may not have been applied: it is
//!   reported as [`RecipeError::Indeterminate`], never retried blindly (a retry could apply an
//!   increment twice, or report a failure for a write that succeeded).

use std::time::Duration;

use tokio::time::Instant;
use zookeeper_client as zk;

use crate::error::{RecipeError, Result};
use crate::nodes::{self, retry};

/// Compare-and-set attempts [`SharedCounter::add`] makes before giving up under contention.
pub const ADD_ATTEMPTS_MAX: u32 = 1_000;

/// A value with the node version it was read at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Versioned {
    /// The counter's value.
    pub value: i32,
    /// The node's data version when it was read.
    pub version: i32,
}

/// A handle on a shared counter.
#[derive(Clone, Debug)]
pub struct SharedCounter {
    client: zk::Client,
    path: String,
}

fn decode(path: &str, data: &[u8]) -> Result<i32> {
    let bytes: [u8; 4] = data.try_into().map_err(|_| RecipeError::BadData {
        path: path.to_owned(),
        reason: format!("a counter holds 4 bytes, found {}", data.len()),
    })?;
    Ok(i32::from_be_bytes(bytes))
}

impl SharedCounter {
    /// Opens the counter at `path`, creating it with `seed` if it does not exist.
    ///
    /// # Errors
    /// [`RecipeError::InvalidArgument`] for a malformed path; ZooKeeper errors.
    pub async fn open(client: &zk::Client, path: &str, seed: i32) -> Result<SharedCounter> {
        nodes::validate_path(path)?;
        nodes::ensure_parents(client, path).await?;
        let options = zk::CreateMode::Persistent.with_acls(nodes::open_acls());
        // An unconditional create of a fixed path is idempotent: NodeExists is success.
        match retry(|| client.create(path, &seed.to_be_bytes(), &options)).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(error) => return Err(error.into()),
        }
        Ok(SharedCounter {
            client: client.clone(),
            path: path.to_owned(),
        })
    }

    /// The current value and its version.
    ///
    /// # Errors
    /// [`RecipeError::BadData`] if the node does not hold 4 bytes; ZooKeeper errors.
    pub async fn get(&self) -> Result<Versioned> {
        let (data, stat) = retry(|| self.client.get_data(&self.path)).await?;
        Ok(Versioned {
            value: decode(&self.path, &data)?,
            version: stat.version,
        })
    }

    /// Sets `value` if the counter is still at `previous.version`: `Ok(true)` if set,
    /// `Ok(false)` if someone changed it first.
    ///
    /// # Errors
    /// [`RecipeError::Indeterminate`] on connection loss during the write; ZooKeeper errors.
    pub async fn try_set(&self, previous: Versioned, value: i32) -> Result<bool> {
        match self
            .client
            .set_data(&self.path, &value.to_be_bytes(), Some(previous.version))
            .await
        {
            Ok(_) => Ok(true),
            Err(zk::Error::BadVersion) => Ok(false),
            Err(zk::Error::ConnectionLoss) => Err(RecipeError::Indeterminate {
                path: self.path.clone(),
            }),
            Err(error) => Err(error.into()),
        }
    }

    /// Sets `value` unconditionally (idempotent, so retried on connection loss).
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn set(&self, value: i32) -> Result<()> {
        retry(|| self.client.set_data(&self.path, &value.to_be_bytes(), None)).await?;
        Ok(())
    }

    /// Adds `delta` (wrapping) with a CAS loop and returns the new value.
    ///
    /// # Errors
    /// [`RecipeError::Indeterminate`] on connection loss during a write;
    /// [`RecipeError::InvalidState`] after [`ADD_ATTEMPTS_MAX`] lost races; ZooKeeper errors.
    pub async fn add(&self, delta: i32) -> Result<i32> {
        for _ in 0..ADD_ATTEMPTS_MAX {
            let current = self.get().await?;
            let value = current.value.wrapping_add(delta);
            if self.try_set(current, value).await? {
                return Ok(value);
            }
        }
        Err(RecipeError::InvalidState(
            "the counter changed under every compare-and-set attempt",
        ))
    }

    /// Waits at most `timeout` for the counter to change from `known` (a value read
    /// earlier) and returns the new value; `Ok(None)` on timeout.
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn wait_change(
        &self,
        known: Versioned,
        timeout: Duration,
    ) -> Result<Option<Versioned>> {
        let deadline = Instant::now() + timeout;
        loop {
            let (data, stat, watcher) =
                retry(|| self.client.get_and_watch_data(&self.path)).await?;
            if stat.version != known.version {
                return Ok(Some(Versioned {
                    value: decode(&self.path, &data)?,
                    version: stat.version,
                }));
            }
            match tokio::time::timeout_at(deadline, watcher.changed()).await {
                Ok(event) => {
                    if event.event_type == zk::EventType::Session
                        && event.session_state.is_terminated()
                    {
                        return Err(RecipeError::SessionEnded(zk::Error::SessionExpired));
                    }
                }
                Err(_) => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_four_big_endian_bytes() {
        assert_eq!(decode("/c", &[0, 0, 1, 2]), Ok(258));
        assert_eq!(decode("/c", &[0xff, 0xff, 0xff, 0xff]), Ok(-1));
        assert!(decode("/c", &[1, 2, 3]).is_err());
    }
}
