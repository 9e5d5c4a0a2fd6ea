//! The frame decoder a server runs on untrusted input: `split_frame` over an arbitrary byte
//! stream, the first frame as `ConnectRequest`, the rest as `RequestHeader` + `Request`, under
//! the default and a small frame limit. See `src/decode_stream.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/decode_stream.rs"]
mod decode_stream;

fuzz_target!(|bytes: &[u8]| {
    decode_stream::decode_stream(bytes);
});
