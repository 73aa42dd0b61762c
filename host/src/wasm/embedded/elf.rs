//! The `.vigil.components` section of an ELF file: found and read with the
//! `object` crate through a bounded reader, and written (`vigil embed`) by
//! appending the section and a new section header table.
//!
//! Reading never loads the whole binary: the ELF header, the section
//! headers, the section-name table and then the section alone, each read
//! only when it lies inside the file ([`object::ReadCache`] checks every
//! range against the file's length before allocating), the section only up
//! to [`MAX_SECTION`].
//!
//! Writing leaves every byte the kernel and the dynamic loader look at
//! where it was (program headers and segments), so the binary runs as
//! before: the section's bytes, a copy of the section-name table when the
//! name is new, and a new section header table go at the end of the file,
//! and the ELF header's `e_shoff`/`e_shnum` point at them. The section is
//! not allocated (flags 0): not mapped at run time, and kept by GNU
//! `strip`, which drops only debug, symbol and relocation sections (a
//! section with `SHF_ALLOC` outside every segment would be malformed). LLVM's
//! `llvm-strip` drops every non-allocated section outside a segment unless
//! told `--keep-section=.vigil.components` (docs/embedding.md).

use std::fs::File;
use std::path::{Path, PathBuf};

use object::elf::{FileHeader32, FileHeader64, SHN_LORESERVE, SHN_XINDEX, SHT_NOBITS};
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader};
use object::{Endianness, ReadCache, ReadRef};

use super::{EmbedError, Index, MAX_SECTION, SECTION, parse_section};

/// Why a binary's components cannot be read, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("{}: cannot read: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: not an ELF file", path.display())]
    NotElf { path: PathBuf },
    #[error("{}: malformed ELF file: {reason}", path.display())]
    Malformed { path: PathBuf, reason: String },
    #[error("{}: carries no embedded components (no {SECTION} section; add them with `vigil embed`)", path.display())]
    NoSection { path: PathBuf },
    #[error("{}: more than one {SECTION} section", path.display())]
    SeveralSections { path: PathBuf },
    #[error("{}: malformed {SECTION} section: {error}", path.display())]
    Section { path: PathBuf, error: EmbedError },
    #[error("{}: no embedded `{role}` (it carries: {})", path.display(), if roles.is_empty() { "nothing".to_string() } else { roles.join(", ") })]
    MissingRole {
        path: PathBuf,
        role: String,
        roles: Vec<String>,
    },
}

impl BinaryError {
    /// The file does not exist (a missing program is a runtime condition).
    pub fn is_not_found(&self) -> bool {
        matches!(self, BinaryError::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound)
    }
}

/// The section of a binary and what it holds.
#[derive(Debug, Clone)]
pub struct Embedded {
    pub section: Vec<u8>,
    pub index: Index,
}

impl Embedded {
    /// The component of `role`, if embedded.
    pub fn component(&self, role: &str) -> Option<&[u8]> {
        self.index
            .get(role)
            .and_then(|e| self.section.get(e.range.clone()))
    }
}

/// Whether `path` starts with the ELF magic (a cheap look before parsing:
/// a directory scan asks this of every executable).
pub fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == *b"\x7fELF")
}

/// The raw `.vigil.components` section of `path`, `None` when it is an ELF
/// file without one.
pub fn read_section(path: &Path) -> Result<Option<Vec<u8>>, BinaryError> {
    let io = |error| BinaryError::Io {
        path: path.to_path_buf(),
        error,
    };
    let file = File::open(path).map_err(io)?;
    if !file.metadata().map_err(io)?.is_file() {
        return Err(io(std::io::Error::other("not a regular file")));
    }
    let cache = ReadCache::new(file);
    let data = &cache;
    let ident = data.read_bytes_at(0, 5).map_err(|()| BinaryError::NotElf {
        path: path.to_path_buf(),
    })?;
    if ident[..4] != *b"\x7fELF" {
        return Err(BinaryError::NotElf {
            path: path.to_path_buf(),
        });
    }
    let found = if ident[4] == object::elf::ELFCLASS64 {
        find_section::<FileHeader64<Endianness>, _>(data)
    } else {
        find_section::<FileHeader32<Endianness>, _>(data)
    };
    let found = found.map_err(|reason| BinaryError::Malformed {
        path: path.to_path_buf(),
        reason,
    })?;
    match found {
        Found::None => Ok(None),
        Found::Several => Err(BinaryError::SeveralSections {
            path: path.to_path_buf(),
        }),
        Found::One { offset, size } => {
            if size > MAX_SECTION as u64 {
                return Err(BinaryError::Section {
                    path: path.to_path_buf(),
                    error: EmbedError::TooLarge {
                        size: usize::try_from(size).unwrap_or(usize::MAX),
                    },
                });
            }
            let bytes = data
                .read_bytes_at(offset, size)
                .map_err(|()| BinaryError::Malformed {
                    path: path.to_path_buf(),
                    reason: format!("the {SECTION} section lies outside the file"),
                })?;
            Ok(Some(bytes.to_vec()))
        }
    }
}

/// The section of `path`, parsed; an error when there is none.
pub fn read_binary(path: &Path) -> Result<Embedded, BinaryError> {
    let section = read_section(path)?.ok_or_else(|| BinaryError::NoSection {
        path: path.to_path_buf(),
    })?;
    let index = parse_section(&section).map_err(|error| BinaryError::Section {
        path: path.to_path_buf(),
        error,
    })?;
    Ok(Embedded { section, index })
}

/// The component embedded in `path` as `role`.
pub fn component(path: &Path, role: &str) -> Result<Vec<u8>, BinaryError> {
    let embedded = read_binary(path)?;
    match embedded.component(role) {
        Some(bytes) => Ok(bytes.to_vec()),
        None => Err(BinaryError::MissingRole {
            path: path.to_path_buf(),
            role: role.to_string(),
            roles: embedded
                .index
                .roles()
                .into_iter()
                .map(str::to_string)
                .collect(),
        }),
    }
}

enum Found {
    None,
    One { offset: u64, size: u64 },
    Several,
}

/// Where the section lies, by name, checking there is only one.
fn find_section<'data, Elf, R>(data: R) -> Result<Found, String>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    let header = Elf::parse(data).map_err(|e| e.to_string())?;
    let endian = header.endian().map_err(|e| e.to_string())?;
    let sections = header.sections(endian, data).map_err(|e| e.to_string())?;
    let mut found = Found::None;
    for section in sections.iter() {
        let name = sections
            .section_name(endian, section)
            .map_err(|e| e.to_string())?;
        if name != SECTION.as_bytes() {
            continue;
        }
        if section.sh_type(endian) == SHT_NOBITS {
            return Err(format!("the {SECTION} section has no bytes in the file"));
        }
        found = match found {
            Found::None => Found::One {
                offset: section.sh_offset(endian).into(),
                size: section.sh_size(endian).into(),
            },
            _ => Found::Several,
        };
    }
    Ok(found)
}

/// Why `vigil embed` cannot write into a file.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("not an ELF file")]
    NotElf,
    #[error("malformed ELF file: {0}")]
    Malformed(String),
    #[error("{0}")]
    Unsupported(String),
}

/// Field offsets of the ELF class at hand.
struct Layout {
    wide: bool,
    little: bool,
}

impl Layout {
    fn put(&self, out: &mut [u8], at: usize, value: u64, size: usize) {
        let bytes = if self.little {
            value.to_le_bytes()
        } else {
            value.to_be_bytes()
        };
        let bytes = if self.little {
            &bytes[..size]
        } else {
            &bytes[8 - size..]
        };
        out[at..at + size].copy_from_slice(bytes);
    }
    /// An address-sized field (`Elf64_Off`, `Elf32_Off`, ...).
    fn word(&self) -> usize {
        if self.wide { 8 } else { 4 }
    }
    fn e_shoff(&self) -> usize {
        if self.wide { 0x28 } else { 0x20 }
    }
    fn e_shnum(&self) -> usize {
        if self.wide { 0x3c } else { 0x30 }
    }
    fn shentsize(&self) -> usize {
        if self.wide { 64 } else { 40 }
    }
    /// Writes one section header at `at`.
    #[allow(clippy::too_many_arguments)]
    fn section_header(
        &self,
        out: &mut [u8],
        at: usize,
        name: u32,
        kind: u32,
        offset: u64,
        size: u64,
        align: u64,
    ) {
        let w = self.word();
        // sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size,
        // sh_link, sh_info, sh_addralign, sh_entsize
        let mut p = at;
        self.put(out, p, name.into(), 4);
        p += 4;
        self.put(out, p, kind.into(), 4);
        p += 4;
        for value in [0, 0, offset, size] {
            self.put(out, p, value, w);
            p += w;
        }
        self.put(out, p, 0, 4);
        self.put(out, p + 4, 0, 4);
        p += 8;
        self.put(out, p, align, w);
        self.put(out, p + w, 0, w);
    }
    /// Sets the offset and size of the section header at `at`, keeping
    /// its other fields.
    fn relocate(&self, out: &mut [u8], at: usize, offset: u64, size: u64) {
        let w = self.word();
        let field = at + 8 + 2 * w;
        self.put(out, field, offset, w);
        self.put(out, field + w, size, w);
    }
}

/// `elf` with its `.vigil.components` section set to `section`: added, or
/// replaced when it has one (also one the SDK placed in a segment: its
/// header then points at the new bytes; the old ones stay mapped, unused).
pub fn write_section(elf: &[u8], section: &[u8]) -> Result<Vec<u8>, WriteError> {
    if elf.len() < 5 || elf[..4] != *b"\x7fELF" {
        return Err(WriteError::NotElf);
    }
    let wide = elf[4] == object::elf::ELFCLASS64;
    let out = if wide {
        write_with::<FileHeader64<Endianness>>(elf, section, true)?
    } else {
        write_with::<FileHeader32<Endianness>>(elf, section, false)?
    };
    // What is written must read back: a file whose own headers are
    // inconsistent (a section-name table out of place, say) can take the
    // new section and still not show it to the reader. Refused here, so
    // that `vigil embed` never leaves a binary it cannot read (found by
    // the `embedded-elf` fuzz target).
    let found = if wide {
        find_section::<FileHeader64<Endianness>, _>(&out[..])
    } else {
        find_section::<FileHeader32<Endianness>, _>(&out[..])
    };
    let read_back = match found {
        Ok(Found::One { offset, size }) => usize::try_from(offset)
            .ok()
            .zip(usize::try_from(size).ok())
            .and_then(|(offset, size)| out.get(offset..offset.checked_add(size)?)),
        _ => None,
    };
    if read_back != Some(section) {
        return Err(WriteError::Malformed(
            "its section headers do not read back once the section is added (inconsistent headers)"
                .into(),
        ));
    }
    Ok(out)
}

fn write_with<Elf: FileHeader<Endian = Endianness>>(
    elf: &[u8],
    section: &[u8],
    wide: bool,
) -> Result<Vec<u8>, WriteError> {
    let bad = |e: object::Error| WriteError::Malformed(e.to_string());
    let header = Elf::parse(elf).map_err(bad)?;
    let endian = header.endian().map_err(bad)?;
    let layout = Layout {
        wide,
        little: endian == Endianness::Little,
    };
    let shoff: u64 = header.e_shoff(endian).into();
    let shnum = usize::from(header.e_shnum(endian));
    let shstrndx = header.e_shstrndx(endian);
    if shoff == 0 || shnum == 0 {
        return Err(WriteError::Unsupported(
            "it has no section headers (stripped with --strip-sections?)".into(),
        ));
    }
    if shnum + 1 >= usize::from(SHN_LORESERVE) || shstrndx == SHN_XINDEX {
        return Err(WriteError::Unsupported(
            "too many sections (extended section numbering)".into(),
        ));
    }
    if usize::from(header.e_shentsize(endian)) != layout.shentsize() {
        return Err(WriteError::Malformed(
            "unexpected section header size".into(),
        ));
    }
    let sections = header.section_headers(endian, elf).map_err(bad)?;
    let segments = header.program_headers(endian, elf).map_err(bad)?;
    let strtab_header = sections
        .get(usize::from(shstrndx))
        .ok_or_else(|| WriteError::Malformed("no section name table".into()))?;
    let strtab = strtab_header.data(endian, elf).map_err(bad)?;
    let name_of = |s: &Elf::SectionHeader| -> &[u8] {
        let start = s.sh_name(endian) as usize;
        let rest = strtab.get(start..).unwrap_or_default();
        &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
    };
    let existing: Vec<usize> = (0..sections.len())
        .filter(|&i| name_of(&sections[i]) == SECTION.as_bytes())
        .collect();
    if existing.len() > 1 {
        return Err(WriteError::Unsupported(format!(
            "it has {} {SECTION} sections",
            existing.len()
        )));
    }
    let replaced = existing.first().copied();

    // What stays: everything any segment or other section covers. The old
    // section header table (rewritten below) and a replaced section's old
    // bytes at the end (an earlier `vigil embed`) are dropped, so embedding
    // again does not grow the file; any other trailing bytes are kept.
    let range = |offset: u64, size: u64| (offset, offset.saturating_add(size));
    let mut covered = vec![range(0, u64::from(header.e_ehsize(endian)))];
    let phoff: u64 = header.e_phoff(endian).into();
    covered.push(range(
        phoff,
        u64::from(header.e_phnum(endian)) * u64::from(header.e_phentsize(endian)),
    ));
    for segment in segments {
        covered.push(range(
            segment.p_offset(endian).into(),
            segment.p_filesz(endian).into(),
        ));
    }
    let mut dropped = vec![range(shoff, (shnum * layout.shentsize()) as u64)];
    for (i, s) in sections.iter().enumerate() {
        if s.sh_type(endian) == SHT_NOBITS || i == 0 {
            continue;
        }
        let r = range(s.sh_offset(endian).into(), s.sh_size(endian).into());
        if Some(i) == replaced {
            dropped.push(r);
        } else {
            covered.push(r);
        }
    }
    let len = elf.len() as u64;
    let keep = covered.iter().map(|r| r.1).max().unwrap_or(0).min(len);
    let tail_is_ours = (keep..len)
        .all(|at| dropped.iter().any(|r| (r.0..r.1).contains(&at)) || elf[at as usize] == 0);
    let keep = if tail_is_ours { keep } else { len } as usize;

    let mut out = elf[..keep].to_vec();
    let align = |out: &mut Vec<u8>, to: usize| out.resize(out.len().next_multiple_of(to), 0);
    // The name: in the table already when replacing, else a new table
    // (the old one plus the name) at the end.
    let (name, new_strtab) = match replaced {
        Some(i) => (sections[i].sh_name(endian), None),
        None => {
            let name = u32::try_from(strtab.len())
                .map_err(|_| WriteError::Unsupported("huge section name table".into()))?;
            let offset = out.len() as u64;
            out.extend_from_slice(strtab);
            out.extend_from_slice(SECTION.as_bytes());
            out.push(0);
            (name, Some((offset, out.len() as u64 - offset)))
        }
    };
    align(&mut out, 8);
    let section_offset = out.len() as u64;
    out.extend_from_slice(section);
    align(&mut out, layout.word());
    let new_shoff = out.len();
    let old_table = shoff as usize..shoff as usize + shnum * layout.shentsize();
    let table = elf
        .get(old_table)
        .ok_or_else(|| WriteError::Malformed("section headers outside the file".into()))?;
    out.extend_from_slice(table);
    let new_shnum = match replaced {
        Some(_) => shnum,
        None => {
            out.resize(out.len() + layout.shentsize(), 0);
            shnum + 1
        }
    };
    let slot = new_shoff + replaced.unwrap_or(shnum) * layout.shentsize();
    layout.section_header(
        &mut out,
        slot,
        name,
        object::elf::SHT_PROGBITS,
        section_offset,
        section.len() as u64,
        1,
    );
    if let Some((offset, size)) = new_strtab {
        let at = new_shoff + usize::from(shstrndx) * layout.shentsize();
        layout.relocate(&mut out, at, offset, size);
    }
    layout.put(&mut out, layout.e_shoff(), new_shoff as u64, layout.word());
    layout.put(&mut out, layout.e_shnum(), new_shnum as u64, 2);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wasm::embedded::encode;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vigil-elf-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    /// `/bin/true` (any real ELF executable of this machine) with a
    /// section added reads back; replacing it keeps the file's size when
    /// the new section is as large, and the program headers are untouched.
    #[test]
    fn added_and_replaced_sections_read_back() {
        let original = std::fs::read("/bin/true").expect("/bin/true");
        let dir = scratch("add");
        let one = encode(&[("readiness", b"\0asm\x0d\0\x01\0one")]).expect("encodes");
        let two = encode(&[("readiness", b"\0asm\x0d\0\x01\0two")]).expect("encodes");
        let first = write_section(&original, &one).expect("adds");
        let path = dir.join("first");
        std::fs::write(&path, &first).expect("write");
        assert_eq!(read_section(&path).expect("reads"), Some(one.clone()));
        let again = write_section(&first, &two).expect("replaces");
        assert_eq!(again.len(), first.len(), "embedding again does not grow");
        std::fs::write(&path, &again).expect("write");
        assert_eq!(read_section(&path).expect("reads"), Some(two));
        // What the kernel reads is unchanged: header up to e_shoff, and
        // the program headers.
        assert_eq!(first[..0x28], original[..0x28]);
        let plain = dir.join("plain");
        std::fs::write(&plain, &original).expect("write");
        assert_eq!(read_section(&plain).expect("reads"), None);
        assert!(matches!(
            read_binary(&plain),
            Err(BinaryError::NoSection { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Hostile files: every truncation of a binary carrying a section, and
    /// non-ELF files, give an error or `None`, never a panic or a read
    /// past the end.
    #[test]
    fn truncated_and_foreign_files_are_errors() {
        let original = std::fs::read("/bin/true").expect("/bin/true");
        let section = encode(&[("loader", b"\0asm\x0d\0\x01\0loader")]).expect("encodes");
        let full = write_section(&original, &section).expect("adds");
        let dir = scratch("hostile");
        let path = dir.join("bin");
        let step = (full.len() / 300).max(1);
        for len in (0..full.len())
            .step_by(step)
            .chain(full.len() - 64..full.len())
        {
            std::fs::write(&path, &full[..len]).expect("write");
            let _ = read_section(&path);
            let _ = write_section(&full[..len], &section);
        }
        std::fs::write(&path, b"#!/bin/sh\necho hi\n").expect("write");
        assert!(matches!(
            read_section(&path),
            Err(BinaryError::NotElf { .. })
        ));
        assert!(matches!(
            write_section(b"#!/bin/sh", &section),
            Err(WriteError::NotElf)
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
