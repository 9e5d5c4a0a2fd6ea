//! The jute binary encoding ZooKeeper uses on the wire: big-endian integers, length-prefixed
//! buffers, strings and vectors, where a length of −1 means "null".

use bytes::{BufMut, Bytes};
use thiserror::Error;

/// Why bytes could not be decoded into a record.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended before the record did.
    #[error("record truncated: needed {needed} more bytes, {remaining} left")]
    UnexpectedEof {
        /// Bytes the next field needed.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A length prefix was negative (other than the −1 that means null) or larger than the input.
    #[error("invalid length {length} for {what}")]
    InvalidLength {
        /// The length read.
        length: i32,
        /// What was being read (buffer, string, vector).
        what: &'static str,
    },
    /// A string was not UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// The request header named an opcode we do not know.
    #[error("unknown opcode {0}")]
    UnknownOpCode(i32),
    /// An opcode that is valid in ZooKeeper but not allowed where it appeared.
    #[error("opcode {0} is not allowed here")]
    UnexpectedOpCode(i32),
    /// A field held a value outside its domain (an unknown enum value, for instance).
    #[error("invalid value {value} for {field}")]
    InvalidValue {
        /// The field.
        field: &'static str,
        /// The value read.
        value: i64,
    },
    /// A frame's length prefix was negative or over the configured maximum.
    #[error("frame of {length} bytes is over the limit of {max} bytes")]
    FrameTooLarge {
        /// The announced length.
        length: i64,
        /// The configured maximum.
        max: u32,
    },
}

/// A cursor over a received frame; every read checks the bounds, so hostile input yields
/// `Err`, never a panic or an allocation larger than the input.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    input: &'a [u8],
    position: usize,
    /// The frame the input belongs to, so buffers can be sliced without copying.
    backing: Option<&'a Bytes>,
}

impl<'a> Reader<'a> {
    /// A reader over a plain slice (buffers are copied out).
    pub fn new(input: &'a [u8]) -> Self {
        Reader {
            input,
            position: 0,
            backing: None,
        }
    }

    /// A reader over shared bytes: buffers are returned as zero-copy slices of `input`.
    pub fn from_bytes(input: &'a Bytes) -> Self {
        Reader {
            input: input.as_ref(),
            position: 0,
            backing: Some(input),
        }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.input.len() - self.position
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.position
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < count {
            return Err(DecodeError::UnexpectedEof {
                needed: count,
                remaining: self.remaining(),
            });
        }
        let start = self.position;
        self.position += count;
        Ok(&self.input[start..self.position])
    }

    /// Reads a big-endian `int`.
    pub fn read_i32(&mut self) -> Result<i32, DecodeError> {
        let bytes = self.take(4)?;
        Ok(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// Reads a big-endian `long`.
    pub fn read_i64(&mut self) -> Result<i64, DecodeError> {
        let bytes = self.take(8)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        Ok(i64::from_be_bytes(array))
    }

    /// Reads a `boolean` (one byte; any non-zero value is true, as in Java's DataInput).
    pub fn read_bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.take(1)?[0] != 0)
    }

    /// Reads the length prefix of a buffer, string or vector: `None` for null (−1).
    fn read_length(&mut self, what: &'static str) -> Result<Option<usize>, DecodeError> {
        let length = self.read_i32()?;
        match length {
            -1 => Ok(None),
            length if length < 0 => Err(DecodeError::InvalidLength { length, what }),
            length => Ok(Some(length as usize)),
        }
    }

    /// Reads a `buffer`; null reads as `None`.
    pub fn read_buffer_opt(&mut self) -> Result<Option<Bytes>, DecodeError> {
        let Some(length) = self.read_length("buffer")? else {
            return Ok(None);
        };
        let start = self.position;
        let slice = self.take(length)?;
        Ok(Some(match self.backing {
            Some(backing) => backing.slice(start..start + length),
            None => Bytes::copy_from_slice(slice),
        }))
    }

    /// Reads a `buffer`; null reads as empty.
    pub fn read_buffer(&mut self) -> Result<Bytes, DecodeError> {
        Ok(self.read_buffer_opt()?.unwrap_or_default())
    }

    /// Reads a `ustring`; null reads as empty.
    pub fn read_string(&mut self) -> Result<String, DecodeError> {
        let Some(length) = self.read_length("string")? else {
            return Ok(String::new());
        };
        let bytes = self.take(length)?;
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text.to_owned()),
            Err(_) => decode_cesu8(bytes).ok_or(DecodeError::InvalidUtf8),
        }
    }

    /// Reads a `vector<T>`; null reads as empty. Capacity is bounded by the input left, so a
    /// forged count cannot make us allocate more than the frame's size.
    pub fn read_vec<T: Jute>(&mut self) -> Result<Vec<T>, DecodeError> {
        let Some(count) = self.read_length("vector")? else {
            return Ok(Vec::new());
        };
        if count > self.remaining() {
            // Every element takes at least one byte, so such a count cannot be honest.
            return Err(DecodeError::InvalidLength {
                length: count as i32,
                what: "vector",
            });
        }
        // Reserve no more bytes than the input has left: an element can be far larger in
        // memory than on the wire (an `Acl` is 56 bytes against 12), so reserving `count`
        // elements let a 1 MiB frame claim 56 MiB. Honest vectors grow past this as they decode.
        let capacity = count.min(self.remaining() / std::mem::size_of::<T>().max(1));
        let mut items = Vec::with_capacity(capacity);
        for _ in 0..count {
            items.push(T::decode(self)?);
        }
        Ok(items)
    }
}

/// Decodes CESU-8: UTF-8 in which a character outside the Basic Multilingual Plane is written
/// as two 3-byte surrogate halves. Java's jute writer encodes strings one UTF-16 unit at a time,
/// so an emoji in a path arrives this way; ZooKeeper mangles it into replacement characters,
/// we recover the character. Anything else that is not UTF-8 stays an error.
fn decode_cesu8(bytes: &[u8]) -> Option<String> {
    let mut units: Vec<u16> = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let rest = &bytes[index..];
        let width = match rest[0] {
            0x00..=0x7f => 1,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            _ => return None,
        };
        let chunk = rest.get(..width)?;
        // Each chunk decodes to one UTF-16 unit; surrogates are the 0xED 0xA0..0xBF chunks.
        let unit = match *chunk {
            [a] => u16::from(a),
            [a, b] if b & 0xc0 == 0x80 => (u16::from(a & 0x1f) << 6) | u16::from(b & 0x3f),
            [a, b, c] if b & 0xc0 == 0x80 && c & 0xc0 == 0x80 => {
                (u16::from(a & 0x0f) << 12) | (u16::from(b & 0x3f) << 6) | u16::from(c & 0x3f)
            }
            _ => return None,
        };
        units.push(unit);
        index += width;
    }
    // Unpaired surrogates are refused rather than replaced.
    String::from_utf16(&units).ok()
}

/// A value with a jute encoding: the primitives, strings, buffers, vectors and records.
pub trait Jute: Sized {
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Decodes one value.
    ///
    /// # Errors
    /// Any [`DecodeError`] when the input is truncated or malformed.
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// The encoding of `self` as a fresh vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes a value from the start of `bytes` (trailing bytes are ignored, as ZooKeeper does).
    ///
    /// # Errors
    /// Any [`DecodeError`] when the input is truncated or malformed.
    fn from_slice(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::decode(&mut Reader::new(bytes))
    }
}

impl Jute for i32 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_i32(*self);
    }
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        reader.read_i32()
    }
}

impl Jute for i64 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_i64(*self);
    }
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        reader.read_i64()
    }
}

impl Jute for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(u8::from(*self));
    }
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        reader.read_bool()
    }
}

impl Jute for String {
    fn encode(&self, out: &mut Vec<u8>) {
        write_length(out, self.len());
        out.put_slice(self.as_bytes());
    }
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        reader.read_string()
    }
}

impl Jute for Bytes {
    fn encode(&self, out: &mut Vec<u8>) {
        write_length(out, self.len());
        out.put_slice(self);
    }
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        reader.read_buffer()
    }
}

/// A buffer that may be null: ZooKeeper keeps `null` data apart from empty data (a node created
/// with null data reads back as null), so the data fields of create, setData and getData carry
/// the distinction.
impl Jute for Option<Bytes> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Some(bytes) => bytes.encode(out),
            None => out.put_i32(-1),
        }
    }
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        reader.read_buffer_opt()
    }
}

impl<T: Jute> Jute for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        write_length(out, self.len());
        for item in self {
            item.encode(out);
        }
    }
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        reader.read_vec()
    }
}

/// Writes a length prefix. Lengths come from values that passed the frame limit (far below
/// `i32::MAX`), so the saturation never triggers on anything we would send.
fn write_length(out: &mut Vec<u8>, length: usize) {
    out.put_i32(i32::try_from(length).unwrap_or(i32::MAX));
}

/// Declares a jute record: a struct whose encoding is its fields in order.
macro_rules! record {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$field_meta:meta])* pub $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub struct $name {
            $( $(#[$field_meta])* pub $field: $ty ),*
        }

        impl $crate::jute::Jute for $name {
            #[allow(unused_variables)]
            fn encode(&self, out: &mut Vec<u8>) {
                $( $crate::jute::Jute::encode(&self.$field, out); )*
            }
            #[allow(unused_variables)]
            fn decode(
                reader: &mut $crate::jute::Reader<'_>,
            ) -> Result<Self, $crate::jute::DecodeError> {
                Ok(Self { $( $field: $crate::jute::Jute::decode(reader)?, )* })
            }
        }
    };
}
pub(crate) use record;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_string_and_buffer_read_as_empty() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        let mut reader = Reader::new(&bytes);
        assert_eq!(reader.read_string().unwrap(), "");
        assert_eq!(reader.read_buffer_opt().unwrap(), None);
    }

    #[test]
    fn forged_vector_count_is_rejected_without_allocating() {
        let bytes = [0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1];
        let error = Reader::new(&bytes).read_vec::<i32>().unwrap_err();
        assert!(matches!(
            error,
            DecodeError::InvalidLength { what: "vector", .. }
        ));
    }

    #[test]
    fn negative_length_other_than_null_is_rejected() {
        let bytes = (-2i32).to_be_bytes();
        let error = Reader::new(&bytes).read_buffer().unwrap_err();
        assert_eq!(
            error,
            DecodeError::InvalidLength {
                length: -2,
                what: "buffer"
            }
        );
    }

    #[test]
    fn truncated_long_is_eof() {
        let error = Reader::new(&[1, 2, 3]).read_i64().unwrap_err();
        assert_eq!(
            error,
            DecodeError::UnexpectedEof {
                needed: 8,
                remaining: 3
            }
        );
    }

    #[test]
    fn buffers_from_shared_bytes_are_zero_copy_slices() {
        let mut frame = Vec::new();
        Bytes::from_static(b"hello").encode(&mut frame);
        let frame = Bytes::from(frame);
        let buffer = Reader::from_bytes(&frame).read_buffer().unwrap();
        assert_eq!(&buffer[..], b"hello");
        assert_eq!(buffer.as_ptr(), frame[4..].as_ptr());
    }

    #[test]
    fn java_surrogate_pairs_decode_to_the_character() {
        // U+1F600 as Java writes it: D83D DE00, each as a 3-byte sequence.
        let java = [0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80];
        let mut bytes = (java.len() as i32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&java);
        assert_eq!(Reader::new(&bytes).read_string().unwrap(), "\u{1F600}");
        let lone = [0xed, 0xa0, 0xbd];
        let mut bytes = (lone.len() as i32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&lone);
        assert_eq!(
            Reader::new(&bytes).read_string().unwrap_err(),
            DecodeError::InvalidUtf8
        );
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut bytes = 2i32.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0xc3, 0x28]);
        assert_eq!(
            Reader::new(&bytes).read_string().unwrap_err(),
            DecodeError::InvalidUtf8
        );
    }
}
