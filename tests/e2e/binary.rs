//! The `vigil` binary as linked: what host/build.rs promises about it.

use object::elf;
use object::read::elf::{Dyn, ElfFile64, FileHeader, SectionHeader};
use object::{Endianness, Object, ObjectSection};
use std::path::Path;

/// Where the build linked with packed relative relocations (glibc 2.36+,
/// native), the binary carries DT_RELR and only a handful of RELA
/// entries: an exec probe pays for every relocation entry the loader reads
/// before `main` (BENCHMARKS.md, "Exec probe"), and a linker or flag change
/// that silently drops `-z pack-relative-relocs` would bring back ~47,000.
#[test]
fn the_binary_is_linked_with_packed_relative_relocations() {
    if option_env!("VIGIL_PACKED_RELOCS").is_none() {
        eprintln!(
            "skipped: this build does not pack relocations (not glibc >= 2.36, or VIGIL_NO_RELR)"
        );
        return;
    }
    assert_packed(Path::new(env!("CARGO_BIN_EXE_vigil")));
}

/// The same for the static binaries (`make static`, which `make test`
/// runs first): a static-pie relocates itself before `main` with the musl
/// it carries. `vigil-probe` exists to be cheap to start: it is linked at
/// a fixed address, with nothing to relocate.
#[test]
fn the_static_binaries_are_linked_with_packed_relative_relocations() {
    if option_env!("VIGIL_PACKED_RELOCS").is_none() {
        eprintln!("skipped: this build does not pack relocations (VIGIL_NO_RELR)");
        return;
    }
    let target_dir = Path::new(env!("CARGO_BIN_EXE_vigil"))
        .parent()
        .and_then(Path::parent)
        .expect("binary under <target>/release");
    let dir = target_dir.join("x86_64-unknown-linux-musl/release");
    if !dir.join("vigil").is_file() {
        eprintln!("skipped: no static build (`make static`)");
        return;
    }
    assert_packed(&dir.join("vigil"));
    // `make static` links the probe as a fixed-address executable, which
    // carries no relocations at all (PROBE_PIE=1: packed like vigil).
    let probe = dir.join("vigil-probe");
    let data = std::fs::read(&probe).expect("read vigil-probe");
    let file = ElfFile64::<Endianness>::parse(&*data).expect("a 64-bit ELF");
    if file.elf_header().e_type(file.endian()) == elf::ET_EXEC {
        let relocations: u64 = file
            .sections()
            .filter(|section| section.name().is_ok_and(|name| name.starts_with(".rel")))
            .map(|section| section.size())
            .sum();
        assert_eq!(
            relocations,
            0,
            "{}: a fixed-address executable with relocations",
            probe.display()
        );
    } else {
        assert_packed(&probe);
    }
}

fn assert_packed(path: &Path) {
    let path = path.display().to_string();
    let data = std::fs::read(&path).expect("read the binary");
    let file = ElfFile64::<Endianness>::parse(&*data).expect("a 64-bit ELF");
    let endian = file.endian();
    let sections = file.elf_section_table();
    let mut relr = false;
    for header in sections.iter() {
        if let Some((entries, _)) = header
            .dynamic(endian, &*data)
            .expect("dynamic section reads")
        {
            relr |= entries
                .iter()
                .any(|entry| entry.d_tag(endian) == elf::DT_RELR);
        }
    }
    assert!(
        relr,
        "{path} has no DT_RELR tag: -z pack-relative-relocs was not applied"
    );
    let rela_dyn = file
        .section_by_name(".rela.dyn")
        .map(|section| section.size())
        .unwrap_or(0);
    // 24 bytes an entry: what is left are relocations against symbols.
    assert!(
        rela_dyn / 24 < 5_000,
        "{path}: .rela.dyn still has {} entries",
        rela_dyn / 24
    );
}
