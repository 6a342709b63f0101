//! One ELF object, read lazily from a read-only mapping of its file (or,
//! when the file cannot be opened, from a copy of what a process mapped).
//!
//! Opening reads the ELF header, the program headers and the dynamic
//! section: enough to find a name the way ld.so does, through the GNU hash
//! table (or the SysV one) of `.dynsym`. `.symtab` (the object's own or a
//! separate debug file's) is indexed only the first time a lookup misses
//! every dynamic table, and the version names only when a versioned symbol
//! is met. The file's pages are touched only where a lookup looks.

use super::Kind;
use crate::sys::filemap;
use goblin::container::{Container, Ctx, Endian};
use goblin::elf::program_header::{PT_DYNAMIC, PT_LOAD, PT_NOTE, ProgramHeader};
use goblin::elf::section_header::{SHN_ABS, SHN_UNDEF, SHT_SYMTAB, SectionHeader};
use goblin::elf::{dynamic, header, sym};
use std::cell::OnceCell;
use std::collections::HashMap;
use std::fs::File;

/// One symbol definition.
#[derive(Debug, Clone)]
pub struct Symbol {
    pub value: u64,
    pub kind: Kind,
    /// Global or weak (visible to the dynamic linker); false for locals.
    pub global: bool,
    pub version: Option<String>,
    /// Not a hidden (non-default) version: `name@@VER`, or unversioned.
    pub default: bool,
}

/// File offsets of the dynamic symbol tables.
#[derive(Debug, Default)]
struct Dynamic {
    symtab: usize,
    strtab: usize,
    strsz: usize,
    gnu_hash: Option<usize>,
    sysv_hash: Option<usize>,
    versym: Option<usize>,
    verdef: Option<(usize, usize)>,
}

/// An object's bytes at their file offsets.
enum Bytes {
    /// The file itself, mapped.
    Mapped(filemap::FileMap),
    /// A copy of what a process has mapped of the file, when the file
    /// cannot be opened: its loaded segments (headers, dynamic tables,
    /// code), zeros elsewhere.
    Copied(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(map) => map,
            Bytes::Copied(copy) => copy,
        }
    }
}

pub struct Object {
    bytes: Bytes,
    /// (p_vaddr, p_offset) of each PT_LOAD, with p_filesz.
    loads: Vec<(u64, u64, u64)>,
    /// p_vaddr of PT_DYNAMIC: where `_DYNAMIC` is, before relocation.
    pub dynamic_vaddr: Option<u64>,
    dynamic: Option<Dynamic>,
    /// (offset, size) of PT_DYNAMIC.
    dynamic_at: Option<(usize, usize)>,
    /// (offset, size) of each PT_NOTE, where the build-id is.
    notes: Vec<(usize, usize)>,
    /// Version index → name, from `.gnu.version_d`.
    versions: OnceCell<HashMap<u16, String>>,
    /// `.symtab` (or the debug file's), by name.
    statics: OnceCell<HashMap<Box<str>, Vec<Symbol>>>,
    /// Functions by address, from `.symtab` and `.dynsym` (for naming
    /// code addresses: stacks).
    functions: OnceCell<Vec<Function>>,
    /// The section headers, parsed on first use (empty: none).
    sections: OnceCell<Vec<SectionHeader>>,
}

/// A function as the symbol tables give it, for naming a code address.
#[derive(Debug, Clone)]
pub struct Function {
    /// Its value (an address before relocation).
    pub start: u64,
    /// `st_size`; 0 when the table does not say.
    pub size: u64,
    pub name: Box<str>,
}

/// A compressed section's bytes (`Elf64_Chdr`, then a zlib stream, as
/// distributions ship debug files), inflated; at most 1 GiB.
pub fn inflate(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    const ELFCOMPRESS_ZLIB: u32 = 1;
    const MAX: u64 = 1 << 30;
    // Elf64_Chdr: ch_type, ch_reserved, ch_size, ch_addralign.
    let kind = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
    let size = u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?);
    if kind != ELFCOMPRESS_ZLIB || size > MAX {
        return None;
    }
    let mut out = Vec::with_capacity(size as usize);
    flate2::read::ZlibDecoder::new(bytes.get(24..)?)
        .take(size)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

const SYM_SIZE: usize = 24;
const PAGE: u64 = 4096;
/// `.gnu.version` bit marking a hidden (`name@VER`, not `@@`) version.
const VERSYM_HIDDEN: u16 = 0x8000;
/// The `vd_flags` bit of the version that names the object itself.
const VER_FLG_BASE: u16 = 1;
const NT_GNU_BUILD_ID: u32 = 3;
/// The longest hash chain walked (real ones hold a handful of symbols).
const MAX_CHAIN: u32 = 1 << 16;

impl Object {
    /// Map `file` and read its headers; `None` if it is not a 64-bit
    /// little-endian ELF object.
    pub fn open(file: &File) -> Option<Object> {
        let mut object = Self::parse(Bytes::Mapped(filemap::FileMap::new(file)?))?;
        object.dynamic = object.read_dynamic(None);
        Some(object)
    }

    /// A separate debug file: only its `.symtab` is used (its dynamic
    /// section, if any, is `NOBITS` there).
    pub fn open_debug(file: &File) -> Option<Object> {
        Self::parse(Bytes::Mapped(filemap::FileMap::new(file)?))
    }

    /// An object rebuilt from a process's memory: `image` holds each of its
    /// mappings at the mapping's file offset; `bias` is its load bias there.
    pub fn from_image(image: Vec<u8>, bias: impl FnOnce(&Object) -> Option<u64>) -> Option<Object> {
        let mut object = Self::parse(Bytes::Copied(image))?;
        let bias = bias(&object);
        object.dynamic = object.read_dynamic(bias);
        Some(object)
    }

    fn parse(bytes: Bytes) -> Option<Object> {
        if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
            return None;
        }
        let hdr = goblin::elf::Elf::parse_header(&bytes).ok()?;
        if hdr.e_ident[header::EI_CLASS] != header::ELFCLASS64
            || hdr.e_ident[header::EI_DATA] != header::ELFDATA2LSB
        {
            return None;
        }
        let phdrs =
            ProgramHeader::parse(&bytes, hdr.e_phoff as usize, hdr.e_phnum as usize, ctx()).ok()?;
        let object = Object {
            bytes,
            loads: phdrs
                .iter()
                .filter(|ph| ph.p_type == PT_LOAD)
                .map(|ph| (ph.p_vaddr, ph.p_offset, ph.p_filesz))
                .collect(),
            dynamic_vaddr: phdrs
                .iter()
                .find(|ph| ph.p_type == PT_DYNAMIC)
                .map(|ph| ph.p_vaddr),
            dynamic: None,
            dynamic_at: phdrs
                .iter()
                .find(|ph| ph.p_type == PT_DYNAMIC)
                .map(|ph| (ph.p_offset as usize, ph.p_filesz as usize)),
            notes: phdrs
                .iter()
                .filter(|ph| ph.p_type == PT_NOTE)
                .map(|ph| (ph.p_offset as usize, ph.p_filesz as usize))
                .collect(),
            versions: OnceCell::new(),
            statics: OnceCell::new(),
            functions: OnceCell::new(),
            sections: OnceCell::new(),
        };
        Some(object)
    }

    /// The dynamic tables, from the `DT_*` entries. In a copy of memory,
    /// glibc has already added the load bias to some of them (`bias`;
    /// `elf_get_dynamic_info`), musl has not: both are accepted.
    fn read_dynamic(&self, bias: Option<u64>) -> Option<Dynamic> {
        let (offset, size) = self.dynamic_at?;
        let mut tags: HashMap<u64, u64> = HashMap::new();
        for i in 0..size / 16 {
            let tag = self.u64_at(offset + i * 16)?;
            if tag == dynamic::DT_NULL {
                break;
            }
            tags.entry(tag).or_insert(self.u64_at(offset + i * 16 + 8)?);
        }
        let file_off = |tag| {
            let &v = tags.get(&tag)?;
            self.vaddr_to_offset(v)
                .or_else(|| self.vaddr_to_offset(v.wrapping_sub(bias?)))
        };
        Some(Dynamic {
            symtab: file_off(dynamic::DT_SYMTAB)?,
            strtab: file_off(dynamic::DT_STRTAB)?,
            strsz: *tags.get(&dynamic::DT_STRSZ)? as usize,
            gnu_hash: file_off(dynamic::DT_GNU_HASH),
            sysv_hash: file_off(dynamic::DT_HASH),
            versym: file_off(dynamic::DT_VERSYM),
            verdef: file_off(dynamic::DT_VERDEF)
                .zip(tags.get(&dynamic::DT_VERDEFNUM).map(|&n| n as usize)),
        })
    }

    /// Where vaddr 0 of this object is in a process, given the mappings of
    /// its file there as (start, end, file offset). ld.so (and the kernel,
    /// for the executable) maps each PT_LOAD so that its page-aligned
    /// p_offset lands at the page-aligned p_vaddr + bias
    /// (`_dl_map_segments`, `elf_map`); so bias = start − aligned p_vaddr
    /// for the segment whose aligned p_offset is the mapping's offset.
    pub fn bias(&self, mappings: &[(u64, u64, u64)]) -> Option<u64> {
        mappings.iter().find_map(|&(start, _, off)| {
            self.loads
                .iter()
                .find(|(_, p_offset, _)| p_offset & !(PAGE - 1) == off)
                .map(|(vaddr, _, _)| start.wrapping_sub(vaddr & !(PAGE - 1)))
        })
    }

    /// Whether the object has any symbols at all (dynamic or `.symtab`).
    /// Indexes `.symtab` if the dynamic table is empty.
    pub fn has_symbols(&self, debug: impl FnOnce(&Object) -> Option<Object>) -> bool {
        self.dynsym_count() > 1 || !self.statics(debug).is_empty()
    }

    /// The exported definition of `name` (`version`: a `@VERSION`), as
    /// ld.so would find it: through the hash table of `.dynsym`.
    pub fn dynamic_lookup(&self, name: &str, version: Option<&str>) -> Option<Symbol> {
        pick(&self.dynamic_definitions(name), version).cloned()
    }

    /// The versions `name` is exported with: `name@@DEFAULT`, `name@OLD`.
    pub fn exported_versions(&self, name: &str) -> Vec<String> {
        let mut definitions = self.dynamic_definitions(name);
        definitions.sort_by_key(|s| !s.default);
        definitions
            .into_iter()
            .filter_map(|s| {
                let at = if s.default { "@@" } else { "@" };
                Some(format!("{name}{at}{}", s.version?))
            })
            .collect()
    }

    /// Every exported definition of `name` (one per version).
    fn dynamic_definitions(&self, name: &str) -> Vec<Symbol> {
        let Some(dynamic) = self.dynamic.as_ref() else {
            return Vec::new();
        };
        let indices = match (dynamic.gnu_hash, dynamic.sysv_hash) {
            (Some(at), _) => self.gnu_hash_lookup(dynamic, at, name),
            (None, Some(at)) => self.sysv_hash_lookup(dynamic, at, name),
            (None, None) => (0..self.dynsym_count())
                .filter(|&i| self.dynsym_name(dynamic, i) == Some(name.as_bytes()))
                .collect(),
        };
        indices
            .into_iter()
            .filter_map(|i| self.dynsym(dynamic, i))
            .filter(|s| s.global)
            .collect()
    }

    /// A definition of `name` in `.symtab` (or the separate debug file's
    /// `.symtab`, from `debug`, used when the object has none): global
    /// definitions before local ones.
    pub fn static_lookup(
        &self,
        name: &str,
        version: Option<&str>,
        debug: impl FnOnce(&Object) -> Option<Object>,
    ) -> Option<Symbol> {
        let entries = self.statics(debug).get(name)?;
        pick(entries, version).cloned()
    }

    /// Every name defined in `.dynsym` (exported: true), and in `.symtab`
    /// if it was indexed.
    pub fn names(&self) -> Vec<(&str, bool)> {
        let mut names = Vec::new();
        if let Some(dynamic) = &self.dynamic {
            for i in 1..self.dynsym_count() {
                if let Some(name) = self.dynsym_name(dynamic, i)
                    && let Ok(name) = std::str::from_utf8(name)
                    && self.dynsym(dynamic, i).is_some_and(|s| s.global)
                {
                    names.push((name, true));
                }
            }
        }
        if let Some(statics) = self.statics.get() {
            names.extend(statics.keys().map(|k| (&**k, false)));
        }
        names
    }

    /// The GNU build-id, from a `PT_NOTE` segment.
    pub fn build_id(&self) -> Option<Vec<u8>> {
        for &(offset, size) in &self.notes {
            let mut at = offset;
            while at + 12 <= offset + size {
                let namesz = self.u32_at(at)? as usize;
                let descsz = self.u32_at(at + 4)? as usize;
                let kind = self.u32_at(at + 8)?;
                let name_at = at + 12;
                let desc_at = name_at + namesz.next_multiple_of(4);
                if kind == NT_GNU_BUILD_ID && self.bytes.get(name_at..name_at + namesz)? == b"GNU\0"
                {
                    return self
                        .bytes
                        .get(desc_at..desc_at + descsz)
                        .map(<[u8]>::to_vec);
                }
                at = desc_at + descsz.next_multiple_of(4);
            }
        }
        None
    }

    /// `.gnu_debuglink`: the debug file's name and the CRC-32 of its bytes.
    pub fn debuglink(&self) -> Option<(String, u32)> {
        let link = self.find_section(".gnu_debuglink")?;
        let at = link.sh_offset as usize;
        let name = self.cstr_at(at)?;
        let crc_at = at + (name.len() + 1).next_multiple_of(4);
        Some((
            String::from_utf8_lossy(name).into_owned(),
            self.u32_at(crc_at)?,
        ))
    }

    /// The whole file's bytes (to check a debug file's CRC).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Section `name`: its address range (before relocation) and where its
    /// bytes are in the file (`None` for a section with no file bytes).
    pub fn section(
        &self,
        name: &str,
    ) -> Option<(std::ops::Range<u64>, Option<std::ops::Range<usize>>)> {
        let found = self.find_section(name)?;
        let svma = found.sh_addr..found.sh_addr + found.sh_size;
        let at = found.sh_offset as usize;
        let bytes = (found.sh_type != goblin::elf::section_header::SHT_NOBITS
            && at.checked_add(found.sh_size as usize)? <= self.bytes.len())
        .then(|| at..at + found.sh_size as usize);
        Some((svma, bytes))
    }

    /// The bytes of section `name` as the file holds them, and whether
    /// they are compressed (`SHF_COMPRESSED`: see [`inflate`]).
    pub fn section_raw(&self, name: &str) -> Option<(&[u8], bool)> {
        const SHF_COMPRESSED: u64 = 0x800;
        let compressed = self.find_section(name)?.sh_flags & SHF_COMPRESSED != 0;
        let (_, at) = self.section(name)?;
        Some((self.bytes.get(at?)?, compressed))
    }

    /// The function whose code holds `svma` (an address before
    /// relocation): the one that starts closest below it, within its size
    /// where the table gives one.
    pub fn function_at(&self, svma: u64) -> Option<&Function> {
        let functions = self.functions.get_or_init(|| self.index_functions());
        let i = functions
            .partition_point(|f| f.start <= svma)
            .checked_sub(1)?;
        let f = &functions[i];
        (f.size == 0 || svma < f.start + f.size).then_some(f)
    }

    /// Every function of `.symtab` and `.dynsym`, by address; of two at
    /// one address, the global (or first) one.
    fn index_functions(&self) -> Vec<Function> {
        let mut found: Vec<(Function, bool)> = Vec::new();
        if let Some(sections) = self.section_headers() {
            for table in sections.iter().filter(|s| {
                s.sh_type == SHT_SYMTAB || s.sh_type == goblin::elf::section_header::SHT_DYNSYM
            }) {
                let Some(strings) = sections.get(table.sh_link as usize) else {
                    continue;
                };
                let count = (table.sh_size as usize / SYM_SIZE).min(1 << 24);
                for i in 1..count {
                    let Some(raw) = self.raw_sym(table.sh_offset as usize + i * SYM_SIZE) else {
                        break;
                    };
                    let kind = raw.st_type();
                    if !(kind == sym::STT_FUNC || kind == sym::STT_GNU_IFUNC)
                        || raw.st_shndx == SHN_UNDEF as usize
                        || raw.st_value == 0
                    {
                        continue;
                    }
                    let Some(name) = self.cstr_at(strings.sh_offset as usize + raw.st_name) else {
                        continue;
                    };
                    let function = Function {
                        start: raw.st_value,
                        size: raw.st_size,
                        name: String::from_utf8_lossy(name).into(),
                    };
                    found.push((function, raw.st_bind() != sym::STB_LOCAL));
                }
            }
        }
        found.sort_by(|(a, ga), (b, gb)| a.start.cmp(&b.start).then(gb.cmp(ga)));
        found.dedup_by(|(a, _), (b, _)| a.start == b.start);
        found.into_iter().map(|(f, _)| f).collect()
    }

    fn statics(
        &self,
        debug: impl FnOnce(&Object) -> Option<Object>,
    ) -> &HashMap<Box<str>, Vec<Symbol>> {
        self.statics.get_or_init(|| {
            let own = self.index_symtab();
            if !own.is_empty() {
                return own;
            }
            debug(self).map(|d| d.index_symtab()).unwrap_or_default()
        })
    }

    fn index_symtab(&self) -> HashMap<Box<str>, Vec<Symbol>> {
        let mut index: HashMap<Box<str>, Vec<Symbol>> = HashMap::new();
        let Some(sections) = self.section_headers() else {
            return index;
        };
        let Some(table) = sections.iter().find(|s| s.sh_type == SHT_SYMTAB) else {
            return index;
        };
        let Some(strings) = sections.get(table.sh_link as usize) else {
            return index;
        };
        let count = table.sh_size as usize / SYM_SIZE;
        for i in 1..count {
            let at = table.sh_offset as usize + i * SYM_SIZE;
            let Some(raw) = self.raw_sym(at) else {
                break;
            };
            let Some(kind) = definition_kind(&raw) else {
                continue;
            };
            let Some(name) = self.cstr_at(strings.sh_offset as usize + raw.st_name) else {
                continue;
            };
            let Ok(name) = std::str::from_utf8(name) else {
                continue;
            };
            index.entry(name.into()).or_default().push(Symbol {
                value: raw.st_value,
                kind,
                global: raw.st_bind() != sym::STB_LOCAL,
                version: None,
                default: true,
            });
        }
        index
    }

    /// The section headers (parsed once); `None` if there are none.
    fn section_headers(&self) -> Option<&[SectionHeader]> {
        let sections = self.sections.get_or_init(|| {
            let Ok(hdr) = goblin::elf::Elf::parse_header(&self.bytes) else {
                return Vec::new();
            };
            if hdr.e_shoff == 0 {
                return Vec::new();
            }
            let (at, count) = (hdr.e_shoff as usize, hdr.e_shnum as usize);
            SectionHeader::parse(&self.bytes, at, count, ctx()).unwrap_or_default()
        });
        (!sections.is_empty()).then_some(sections.as_slice())
    }

    /// The header of section `name`.
    fn find_section(&self, name: &str) -> Option<&SectionHeader> {
        let sections = self.section_headers()?;
        let hdr = goblin::elf::Elf::parse_header(&self.bytes).ok()?;
        let names = sections.get(hdr.e_shstrndx as usize)?;
        sections
            .iter()
            .find(|s| self.cstr_at(names.sh_offset as usize + s.sh_name) == Some(name.as_bytes()))
    }

    /// ld.so's lookup (`do_lookup_x` in glibc's `dl-lookup.c`): Bloom
    /// filter, bucket, then the chain of symbols with the same hash
    /// bucket, whose low bit marks the end. Every match is returned (one
    /// per version).
    fn gnu_hash_lookup(&self, dynamic: &Dynamic, at: usize, name: &str) -> Vec<usize> {
        let mut found = Vec::new();
        let (Some(nbuckets), Some(symoffset), Some(bloom_size), Some(bloom_shift)) = (
            self.u32_at(at),
            self.u32_at(at + 4),
            self.u32_at(at + 8),
            self.u32_at(at + 12),
        ) else {
            return found;
        };
        if nbuckets == 0 || bloom_size == 0 {
            return found;
        }
        let hash = gnu_hash(name.as_bytes());
        let bloom_at = at + 16;
        let Some(word) = self.u64_at(bloom_at + 8 * ((hash as usize / 64) % bloom_size as usize))
        else {
            return found;
        };
        let mask = (1u64 << (hash % 64)) | (1u64 << ((hash >> bloom_shift) % 64));
        if word & mask != mask {
            return found;
        }
        let buckets_at = bloom_at + 8 * bloom_size as usize;
        let chain_at = buckets_at + 4 * nbuckets as usize;
        let Some(mut i) = self.u32_at(buckets_at + 4 * (hash % nbuckets) as usize) else {
            return found;
        };
        if i < symoffset {
            return found;
        }
        // A chain ends at its low bit; a file the target made need not
        // have one: never walk more than a chain can hold.
        for _ in 0..MAX_CHAIN {
            let Some(chain) = self.u32_at(chain_at + 4 * (i - symoffset) as usize) else {
                break;
            };
            if chain | 1 == hash | 1
                && self.dynsym_name(dynamic, i as usize) == Some(name.as_bytes())
            {
                found.push(i as usize);
            }
            if chain & 1 == 1 {
                break;
            }
            i += 1;
        }
        found
    }

    /// The System V `DT_HASH` table, for objects built without a GNU one.
    fn sysv_hash_lookup(&self, dynamic: &Dynamic, at: usize, name: &str) -> Vec<usize> {
        let mut found = Vec::new();
        let (Some(nbucket), Some(nchain)) = (self.u32_at(at), self.u32_at(at + 4)) else {
            return found;
        };
        if nbucket == 0 {
            return found;
        }
        let hash = sysv_hash(name.as_bytes());
        let chain_at = at + 8 + 4 * nbucket as usize;
        let mut i = self.u32_at(at + 8 + 4 * (hash % nbucket) as usize);
        let mut steps = 0;
        while let Some(idx) = i
            && idx != 0
            && steps <= nchain.min(MAX_CHAIN)
        {
            if self.dynsym_name(dynamic, idx as usize) == Some(name.as_bytes()) {
                found.push(idx as usize);
            }
            i = self.u32_at(chain_at + 4 * idx as usize);
            steps += 1;
        }
        found
    }

    /// How many entries `.dynsym` has: from `DT_HASH`'s nchain, or from
    /// the end of the last GNU hash chain.
    fn dynsym_count(&self) -> usize {
        let Some(dynamic) = &self.dynamic else {
            return 0;
        };
        if let Some(at) = dynamic.sysv_hash {
            return self.u32_at(at + 4).unwrap_or(0) as usize;
        }
        let Some(at) = dynamic.gnu_hash else {
            return 0;
        };
        let (Some(nbuckets), Some(symoffset), Some(bloom_size)) =
            (self.u32_at(at), self.u32_at(at + 4), self.u32_at(at + 8))
        else {
            return 0;
        };
        let buckets_at = at + 16 + 8 * bloom_size as usize;
        let chain_at = buckets_at + 4 * nbuckets as usize;
        if chain_at > self.bytes.len() {
            return 0;
        }
        let last = (0..nbuckets as usize)
            .filter_map(|b| self.u32_at(buckets_at + 4 * b))
            .max()
            .unwrap_or(0);
        if last < symoffset {
            return symoffset as usize;
        }
        let mut i = last;
        for _ in 0..MAX_CHAIN {
            match self.u32_at(chain_at + 4 * (i - symoffset) as usize) {
                Some(chain) if chain & 1 == 0 => i += 1,
                _ => break,
            }
        }
        i as usize + 1
    }

    fn dynsym_name(&self, dynamic: &Dynamic, i: usize) -> Option<&[u8]> {
        let st_name = self.u32_at(dynamic.symtab + i * SYM_SIZE)? as usize;
        if st_name >= dynamic.strsz {
            return None;
        }
        self.cstr_at(dynamic.strtab + st_name)
    }

    /// Dynamic symbol `i`, if it is a definition reach can use.
    fn dynsym(&self, dynamic: &Dynamic, i: usize) -> Option<Symbol> {
        let raw = self.raw_sym(dynamic.symtab + i * SYM_SIZE)?;
        let kind = definition_kind(&raw)?;
        let versym = dynamic
            .versym
            .and_then(|at| self.bytes.get(at + 2 * i..at + 2 * i + 2))
            .map(|b| u16::from_le_bytes([b[0], b[1]]));
        let version = versym.and_then(|v| self.versions().get(&(v & !VERSYM_HIDDEN)).cloned());
        Some(Symbol {
            value: raw.st_value,
            kind,
            global: raw.st_bind() != sym::STB_LOCAL,
            version,
            default: versym.is_none_or(|v| v & VERSYM_HIDDEN == 0),
        })
    }

    fn versions(&self) -> &HashMap<u16, String> {
        self.versions.get_or_init(|| {
            let mut versions = HashMap::new();
            let Some(dynamic) = &self.dynamic else {
                return versions;
            };
            let Some((mut at, count)) = dynamic.verdef else {
                return versions;
            };
            // Verdef: vd_version u16, vd_flags u16, vd_ndx u16, vd_cnt u16,
            // vd_hash u32, vd_aux u32, vd_next u32; Verdaux: vda_name u32.
            for _ in 0..count {
                let (Some(flags), Some(ndx), Some(aux), Some(next)) = (
                    self.u16_at(at + 2),
                    self.u16_at(at + 4),
                    self.u32_at(at + 12),
                    self.u32_at(at + 16),
                ) else {
                    break;
                };
                if flags & VER_FLG_BASE == 0
                    && let Some(name) = self.u32_at(at + aux as usize)
                    && let Some(name) = self.cstr_at(dynamic.strtab + name as usize)
                {
                    versions.insert(ndx, String::from_utf8_lossy(name).into_owned());
                }
                if next == 0 {
                    break;
                }
                at += next as usize;
            }
            versions
        })
    }

    fn vaddr_to_offset(&self, vaddr: u64) -> Option<usize> {
        self.loads
            .iter()
            .find(|(v, _, size)| (*v..v + size).contains(&vaddr))
            .map(|(v, off, _)| (vaddr - v + off) as usize)
    }

    fn raw_sym(&self, at: usize) -> Option<sym::Sym> {
        Some(sym::Sym {
            st_name: self.u32_at(at)? as usize,
            st_info: *self.bytes.get(at + 4)?,
            st_other: *self.bytes.get(at + 5)?,
            st_shndx: self.u16_at(at + 6)? as usize,
            st_value: self.u64_at(at + 8)?,
            st_size: self.u64_at(at + 16)?,
        })
    }

    fn cstr_at(&self, at: usize) -> Option<&[u8]> {
        let rest = self.bytes.get(at..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some(&rest[..end])
    }

    fn u16_at(&self, at: usize) -> Option<u16> {
        Some(u16::from_le_bytes(
            self.bytes.get(at..at + 2)?.try_into().ok()?,
        ))
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        Some(u32::from_le_bytes(
            self.bytes.get(at..at + 4)?.try_into().ok()?,
        ))
    }

    fn u64_at(&self, at: usize) -> Option<u64> {
        Some(u64::from_le_bytes(
            self.bytes.get(at..at + 8)?.try_into().ok()?,
        ))
    }
}

fn ctx() -> Ctx {
    Ctx::new(Container::Big, Endian::Little)
}

/// The kind of a symbol that defines something callable or readable at an
/// address; `None` for undefined, absolute, TLS, section and file symbols.
fn definition_kind(s: &sym::Sym) -> Option<Kind> {
    if s.st_shndx == SHN_UNDEF as usize || s.st_shndx == SHN_ABS as usize || s.st_value == 0 {
        return None;
    }
    match s.st_type() {
        sym::STT_FUNC | sym::STT_NOTYPE => Some(Kind::Function),
        sym::STT_GNU_IFUNC => Some(Kind::Ifunc),
        sym::STT_OBJECT => Some(Kind::Data),
        _ => None,
    }
}

/// The definition a lookup of `name` (`@version`) would bind to: that
/// version; else the default version (`@@`, or unversioned), globals
/// before locals; else whatever there is (dlsym's fallback to the oldest).
fn pick<'a>(entries: &'a [Symbol], version: Option<&str>) -> Option<&'a Symbol> {
    match version {
        Some(v) => entries.iter().find(|e| e.version.as_deref() == Some(v)),
        None => entries
            .iter()
            .filter(|e| e.default)
            .max_by_key(|e| e.global)
            .or_else(|| entries.first()),
    }
}

/// `dl_new_hash`: Bernstein's hash, h * 33 + c.
fn gnu_hash(name: &[u8]) -> u32 {
    name.iter()
        .fold(5381u32, |h, &c| h.wrapping_mul(33).wrapping_add(c as u32))
}

/// The System V ABI's `elf_hash`.
fn sysv_hash(name: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &c in name {
        h = (h << 4).wrapping_add(c as u32);
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
        }
        h &= !g;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_the_abi_examples() {
        assert_eq!(gnu_hash(b""), 0x0000_1505);
        assert_eq!(gnu_hash(b"printf"), 0x156b_2bb8);
        assert_eq!(sysv_hash(b"printf"), 0x0779_05a6);
    }

    #[test]
    fn finds_libc_symbols_through_the_hash_table() {
        let file = File::open(libc_path()).unwrap();
        let libc = Object::open(&file).unwrap();
        let getpid = libc.dynamic_lookup("getpid", None).unwrap();
        assert_eq!(getpid.kind, Kind::Function);
        assert!(getpid.global);
        let memcpy = libc.dynamic_lookup("memcpy", None).unwrap();
        assert_eq!(memcpy.kind, Kind::Ifunc);
        assert!(libc.dynamic_lookup("no_such_symbol_xyz", None).is_none());
        // glibc keeps an old memcpy@GLIBC_2.2.5 beside memcpy@@GLIBC_2.14.
        let old = libc.dynamic_lookup("memcpy", Some("GLIBC_2.2.5")).unwrap();
        assert!(!old.default);
        assert_eq!(memcpy.version.as_deref(), Some("GLIBC_2.14"));
        assert!(libc.names().contains(&("shutdown", true)));
        assert!(libc.build_id().is_some());
    }

    fn libc_path() -> String {
        // A dynamically linked process's: reach itself may be static.
        crate::process::symbols::tests::Child::start()
            .libc_path()
            .unwrap()
    }
}
