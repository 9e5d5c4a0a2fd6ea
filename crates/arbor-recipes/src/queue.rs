//! Distributed FIFO and priority queues, compatible with Curator's `DistributedQueue` and
//! `DistributedPriorityQueue` (node names and item encoding), so Java producers and Rust
//! consumers (or the reverse) share one queue.
//!
//! Layout: each put is a persistent sequential child `queue-<seq>` (priority queue:
//! `queue-<p><seq>` where `<p>` is `1` or `0` for a non-negative or negative priority followed
//! by its 32-bit two's complement in 8 upper-case hex digits); consumers take children in name
//! order. The data is Curator's `ItemSerializer` frame: a 4-byte version `0x00010001`, then for
//! each item the byte `0x01`, a 4-byte big-endian length and the bytes, then the byte `0x02`.
//!
//! # Guarantees
//! - Items come out in name order: FIFO for the queue, lowest priority number first (FIFO
//!   within one priority) for the priority queue.
//! - Each item is taken by exactly one consumer: a consumer owns an item once its
//!   version-checked delete succeeds ("at most once": an item taken by a consumer that then
//!   dies is gone, as with Curator without a lock path).
//! - A put whose reply is lost to a connection drop may or may not have been applied; it is
//!   not retried blindly (that could enqueue twice): [`RecipeError::Indeterminate`].

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;
use zookeeper_client as zk;

use crate::error::{RecipeError, Result};
use crate::nodes::{self, retry};

/// Curator's queue item node name.
pub const QUEUE_ITEM_NAME: &str = "queue-";

/// `ItemSerializer`'s format version.
const ITEM_FORMAT_VERSION: u32 = 0x0001_0001;
const ITEM_OPCODE: u8 = 0x01;
const EOF_OPCODE: u8 = 0x02;

/// Largest number of items one node may carry when decoding (a bound on what a corrupt or
/// hostile node can make us allocate; the node's own size is bounded by the server's frame
/// limit).
pub const ITEMS_PER_NODE_MAX: usize = 1 << 20;

/// Encodes items as Curator's `ItemSerializer` does.
///
/// # Errors
/// [`RecipeError::InvalidArgument`] for an item longer than Java's `int` can say.
pub fn encode_items<I, B>(items: I) -> Result<Vec<u8>>
where
    I: IntoIterator<Item = B>,
    B: AsRef<[u8]>,
{
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&ITEM_FORMAT_VERSION.to_be_bytes());
    for item in items {
        let item = item.as_ref();
        let length = i32::try_from(item.len())
            .map_err(|_| RecipeError::InvalidArgument("a queue item longer than 2 GiB"))?;
        bytes.push(ITEM_OPCODE);
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend_from_slice(item);
    }
    bytes.push(EOF_OPCODE);
    Ok(bytes)
}

/// Decodes Curator's `ItemSerializer` frame.
///
/// # Errors
/// A static reason when the bytes are not such a frame.
pub fn decode_items(mut bytes: &[u8]) -> std::result::Result<Vec<Vec<u8>>, &'static str> {
    fn take<'a>(bytes: &mut &'a [u8], count: usize) -> std::result::Result<&'a [u8], &'static str> {
        if bytes.len() < count {
            return Err("truncated item frame");
        }
        let (head, tail) = bytes.split_at(count);
        *bytes = tail;
        Ok(head)
    }
    let version = take(&mut bytes, 4)?;
    if version != ITEM_FORMAT_VERSION.to_be_bytes() {
        return Err("not an item frame (wrong version)");
    }
    let mut items = Vec::new();
    loop {
        match take(&mut bytes, 1)?[0] {
            EOF_OPCODE => return Ok(items),
            ITEM_OPCODE => {
                if items.len() >= ITEMS_PER_NODE_MAX {
                    return Err("too many items in one node");
                }
                let mut length = [0; 4];
                length.copy_from_slice(take(&mut bytes, 4)?);
                let length = i32::from_be_bytes(length);
                let length = usize::try_from(length).map_err(|_| "negative item size")?;
                items.push(take(&mut bytes, length)?.to_vec());
            }
            _ => return Err("unknown item opcode"),
        }
    }
}

/// Curator's `DistributedPriorityQueue.priorityToString`.
pub fn priority_to_string(priority: i32) -> String {
    let sign = if priority >= 0 { '1' } else { '0' };
    format!("{sign}{:08X}", priority as u32)
}

/// A FIFO queue (Curator `DistributedQueue` layout). Each handle keeps items it took from a
/// multi-item node until they are handed out.
#[derive(Debug)]
pub struct DistributedQueue {
    client: zk::Client,
    path: String,
    taken: VecDeque<Vec<u8>>,
}

impl DistributedQueue {
    /// A handle on the queue at `path`.
    ///
    /// # Errors
    /// [`RecipeError::InvalidArgument`] for a malformed path.
    pub fn new(client: &zk::Client, path: &str) -> Result<DistributedQueue> {
        nodes::validate_path(path)?;
        Ok(DistributedQueue {
            client: client.clone(),
            path: path.to_owned(),
            taken: VecDeque::new(),
        })
    }

    /// Appends one item.
    ///
    /// # Errors
    /// [`RecipeError::Indeterminate`] if the connection dropped before the reply; ZooKeeper
    /// errors.
    pub async fn put(&self, item: &[u8]) -> Result<()> {
        self.put_node(QUEUE_ITEM_NAME, &encode_items([item])?).await
    }

    /// Appends several items as one node (Curator `putMulti`): they come out together, in
    /// order.
    ///
    /// # Errors
    /// As [`DistributedQueue::put`].
    pub async fn put_multi<B: AsRef<[u8]>>(&self, items: &[B]) -> Result<()> {
        self.put_node(QUEUE_ITEM_NAME, &encode_items(items)?).await
    }

    pub(crate) async fn put_node(&self, name: &str, data: &[u8]) -> Result<()> {
        let path = nodes::join(&self.path, name);
        let options = zk::CreateMode::PersistentSequential.with_acls(nodes::open_acls());
        for _ in 0..nodes::PARENT_CREATE_ATTEMPTS_MAX {
            match self.client.create(&path, data, &options).await {
                Ok(_) => return Ok(()),
                Err(zk::Error::NoNode) => {
                    nodes::ensure_path(&self.client, &self.path, zk::CreateMode::Persistent)
                        .await?;
                }
                Err(zk::Error::ConnectionLoss) => {
                    return Err(RecipeError::Indeterminate { path });
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(RecipeError::ZooKeeper(zk::Error::NoNode))
    }

    /// Takes the head item, waiting at most `timeout` (`None`: as long as it takes) for one
    /// to arrive. `Ok(None)` on timeout.
    ///
    /// # Errors
    /// [`RecipeError::BadData`] for a node that is not an item frame (it is consumed all the
    /// same, so it cannot block the queue); ZooKeeper errors.
    pub async fn take(&mut self, timeout: Option<Duration>) -> Result<Option<Vec<u8>>> {
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        loop {
            if let Some(item) = self.taken.pop_front() {
                return Ok(Some(item));
            }
            let (mut children, watcher) =
                match retry(|| self.client.list_and_watch_children(&self.path)).await {
                    Ok(found) => found,
                    Err(zk::Error::NoNode) => {
                        nodes::ensure_path(&self.client, &self.path, zk::CreateMode::Persistent)
                            .await?;
                        continue;
                    }
                    Err(error) => return Err(error.into()),
                };
            children.retain(|child| child.starts_with(QUEUE_ITEM_NAME));
            children.sort();
            for child in children {
                let path = nodes::join(&self.path, &child);
                if let Some(items) = self.take_node(&path).await? {
                    self.taken.extend(items);
                    break;
                }
            }
            if !self.taken.is_empty() {
                continue;
            }
            let event = match deadline {
                None => watcher.changed().await,
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline, watcher.changed()).await {
                        Ok(event) => event,
                        Err(_) => return Ok(None),
                    }
                }
            };
            if event.event_type == zk::EventType::Session && event.session_state.is_terminated() {
                return Err(RecipeError::SessionEnded(zk::Error::SessionExpired));
            }
        }
    }

    /// Reads and deletes one item node (version-checked); `None` when another consumer got
    /// it first.
    async fn take_node(&self, path: &str) -> Result<Option<Vec<Vec<u8>>>> {
        let (data, stat) = match retry(|| self.client.get_data(path)).await {
            Ok(found) => found,
            Err(zk::Error::NoNode) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        match self.client.delete(path, Some(stat.version)).await {
            Ok(()) => {}
            Err(zk::Error::NoNode | zk::Error::BadVersion) => return Ok(None),
            Err(zk::Error::ConnectionLoss) => {
                // Ours if it is gone now and nobody else... we cannot tell who deleted it: the
                // item is reported as not taken by us only if it still exists.
                match retry(|| self.client.check_stat(path)).await? {
                    Some(_) => match self.client.delete(path, Some(stat.version)).await {
                        Ok(()) => {}
                        Err(zk::Error::NoNode | zk::Error::BadVersion) => return Ok(None),
                        Err(error) => return Err(error.into()),
                    },
                    None => {
                        return Err(RecipeError::Indeterminate {
                            path: path.to_owned(),
                        });
                    }
                }
            }
            Err(error) => return Err(error.into()),
        }
        decode_items(&data)
            .map(Some)
            .map_err(|reason| RecipeError::BadData {
                path: path.to_owned(),
                reason: reason.to_owned(),
            })
    }

    /// Number of item nodes waiting (a node put with `put_multi` counts once).
    ///
    /// # Errors
    /// ZooKeeper errors.
    pub async fn len(&self) -> Result<usize> {
        match retry(|| self.client.list_children(&self.path)).await {
            Ok(children) => Ok(children
                .iter()
                .filter(|child| child.starts_with(QUEUE_ITEM_NAME))
                .count()),
            Err(zk::Error::NoNode) => Ok(0),
            Err(error) => Err(error.into()),
        }
    }
}

/// A priority queue (Curator `DistributedPriorityQueue` layout): lower numbers come out first.
#[derive(Debug)]
pub struct PriorityQueue {
    queue: DistributedQueue,
}

impl PriorityQueue {
    /// A handle on the priority queue at `path`.
    ///
    /// # Errors
    /// [`RecipeError::InvalidArgument`] for a malformed path.
    pub fn new(client: &zk::Client, path: &str) -> Result<PriorityQueue> {
        Ok(PriorityQueue {
            queue: DistributedQueue::new(client, path)?,
        })
    }

    /// Adds one item with `priority` (lower comes out first).
    ///
    /// # Errors
    /// As [`DistributedQueue::put`].
    pub async fn put(&self, item: &[u8], priority: i32) -> Result<()> {
        let name = format!("{QUEUE_ITEM_NAME}{}", priority_to_string(priority));
        self.queue.put_node(&name, &encode_items([item])?).await
    }

    /// Takes the item with the lowest priority number (oldest first among equals).
    ///
    /// # Errors
    /// As [`DistributedQueue::take`].
    pub async fn take(&mut self, timeout: Option<Duration>) -> Result<Option<Vec<u8>>> {
        self.queue.take(timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_frames_round_trip() {
        let bytes = encode_items([b"one".as_slice(), b"".as_slice(), b"three".as_slice()])
            .expect("encodes");
        assert_eq!(&bytes[..4], &[0, 1, 0, 1]);
        assert_eq!(*bytes.last().unwrap_or(&0), EOF_OPCODE);
        let items = decode_items(&bytes).expect("decodes");
        assert_eq!(items, vec![b"one".to_vec(), Vec::new(), b"three".to_vec()]);
    }

    #[test]
    fn corrupt_item_frames_are_refused() {
        assert!(decode_items(b"").is_err());
        assert!(decode_items(&[0, 1, 0, 2, EOF_OPCODE]).is_err());
        assert!(decode_items(&[0, 1, 0, 1, ITEM_OPCODE, 0, 0, 0, 9, 1]).is_err());
        assert!(decode_items(&[0, 1, 0, 1, ITEM_OPCODE, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode_items(&[0, 1, 0, 1, 7]).is_err());
    }

    #[test]
    fn priorities_sort_as_curator_encodes_them() {
        assert_eq!(priority_to_string(0), "100000000");
        assert_eq!(priority_to_string(10), "10000000A");
        assert_eq!(priority_to_string(-1), "0FFFFFFFF");
        let mut encoded: Vec<_> = [5, -3, 0, i32::MIN, i32::MAX, -1]
            .iter()
            .map(|priority| priority_to_string(*priority))
            .collect();
        encoded.sort();
        let expected: Vec<_> = [i32::MIN, -3, -1, 0, 5, i32::MAX]
            .iter()
            .map(|priority| priority_to_string(*priority))
            .collect();
        assert_eq!(encoded, expected);
    }
}
