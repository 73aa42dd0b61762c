//! Fuzz target (see `crate::fuzz`) for the `grpc.health.v1` request a
//! client sends: a service name or a status, never a panic.

use super::decode_request;
use crate::fuzz;

#[test]
fn fuzz_grpc_request() {
    let dict = &[
        "\0\0\0\0\x05\x0a\x03web",
        "\0\0\0\0\x07\x10\x01",
        "\x0a",
        "\x12",
        "\x11\0\0\0\0\0\0\0\0",
        "\x0d\0\0\0\0",
        "\x7f\x7f",
        "\u{80}\u{80}\u{80}",
        "\x01",
        "\x0b",
        "\x0f",
    ];
    fuzz::run("grpc-request", dict, 4096, |input| {
        match decode_request(input) {
            Ok(service) => assert!(service.len() <= input.len()),
            Err(why) => assert!(!why.is_empty()),
        }
    });
}
