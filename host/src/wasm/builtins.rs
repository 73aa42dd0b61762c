//! The bundled checks, embedded in the binary: `builtin:http`,
//! `builtin:tcp`, `builtin:process`, `builtin:file`, `builtin:redis`,
//! `builtin:postgres` and `builtin:grpc`.
//!
//! Each is a standalone crate under `checks/`, written with `vigil-sdk`
//! like any third-party check. `host/build.rs` compiles them for
//! wasm32-wasip2 and generates the constants included here, so a manifest
//! can name a builtin without shipping a file. Their settings are
//! documented in `docs/writing-checks-rust.md`.

mod generated {
    include!(concat!(env!("OUT_DIR"), "/builtins.rs"));
}

pub use generated::{FILE, GRPC, HTTP, POSTGRES, PROCESS, REDIS, TCP};

/// The component for `builtin:<name>`, `name` given without the
/// `builtin:` prefix; `None` for an unknown name.
pub fn lookup(name: &str) -> Option<&'static [u8]> {
    generated::ALL
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| *bytes)
}

/// The names of all bundled checks, without the `builtin:` prefix, in
/// documentation order (http, tcp, process, file, redis, postgres, log, grpc).
pub fn names() -> &'static [&'static str] {
    generated::NAMES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_resolves_to_a_component() {
        assert_eq!(
            names(),
            [
                "http", "tcp", "process", "file", "redis", "postgres", "log", "grpc"
            ]
        );
        for name in names() {
            let bytes =
                lookup(name).unwrap_or_else(|| panic!("builtin:{name} is listed but missing"));
            // `\0asm`, then the component-model layer (version 0x0d, layer 1).
            assert_eq!(&bytes[..4], b"\0asm", "builtin:{name}");
            assert_eq!(
                &bytes[4..8],
                [0x0d, 0x00, 0x01, 0x00],
                "builtin:{name} is not a component"
            );
        }
    }

    #[test]
    fn unknown_names_and_prefixes_are_none() {
        assert!(lookup("nope").is_none());
        assert!(lookup("builtin:http").is_none());
        assert!(lookup("").is_none());
    }
}
