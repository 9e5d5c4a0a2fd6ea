//! The `arbor` binary: placeholder until the server lands.
fn main() {}
