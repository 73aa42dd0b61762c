//! Fuzz targets (see `crate::fuzz`) for components carried in an ELF
//! binary: the section's own format, and reading and rewriting the ELF
//! file around it. A hostile binary in a service directory must give a
//! clear error, never a panic or an allocation beyond its own size.

use super::*;
use crate::fuzz;
use crate::test_support::TempDir;

const SECTION_DICT: &[&str] = &[
    "VIGILEMB",
    "\u{1}\0",
    "\0\0\0\0",
    "\u{ff}\u{ff}\u{ff}\u{ff}",
    "readiness",
    "liveness",
    "loader",
    "\0asm",
];

/// Every parsed entry names a valid role once and lies inside the input;
/// `encode` of what was read parses to the same roles.
#[test]
fn fuzz_embedded_section() {
    fuzz::run("embedded-section", SECTION_DICT, 16 << 10, |input| {
        let Ok(index) = parse_section(input) else {
            return;
        };
        let mut parts = Vec::new();
        for entry in &index.entries {
            assert!(vigil_embed::valid_role(&entry.role), "{:?}", entry.role);
            assert!(entry.range.start < entry.range.end, "{entry:?}");
            assert!(entry.range.end <= input.len(), "{entry:?} beyond the input");
            parts.push((entry.role.as_str(), &input[entry.range.clone()]));
        }
        let again = encode(&parts).expect("what was read encodes");
        assert_eq!(
            parse_section(&again).expect("and parses").roles(),
            index.roles()
        );
    });
}

/// An ELF file of any shape: reading its section gives a value or an
/// error, and adding a section either fails cleanly or gives a file whose
/// section reads back as written.
#[test]
fn fuzz_embedded_elf() {
    let scratch = TempDir::new("fuzz-elf");
    let path = scratch.0.join("bin");
    let section = encode(&[("readiness", b"\0asm\x0d\0\x01\0ready")]).expect("encodes");
    fuzz::run_with("embedded-elf", SECTION_DICT, 64 << 10, 300, |input| {
        std::fs::write(&path, input).expect("write the scratch binary");
        let _ = elf::read_section(&path);
        if let Ok(out) = elf::write_section(input, &section) {
            std::fs::write(&path, &out).expect("write the rewritten binary");
            let read = elf::read_section(&path).expect("a file vigil wrote reads back");
            assert_eq!(read.as_deref(), Some(&section[..]));
        }
    });
}
