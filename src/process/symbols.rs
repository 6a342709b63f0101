//! Names → addresses in a live process: `/proc/PID/maps` + ELF (goblin).
//!
//! Every object is read the way the target sees it: through
//! `/proc/PID/map_files/START-END` (the very file that is mapped, even if it
//! was deleted or replaced on disk since), then `/proc/PID/root/PATH` (the
//! target's mount namespace), never the tool's own view of the path.
//! Parsed objects are cached by (device, inode), so a later lookup in the
//! same reach process parses nothing again.

use goblin::elf::{Elf, program_header::PT_LOAD, sym};
use std::collections::HashMap;
use std::rc::Rc;
use std::str::FromStr;

/// What a resolved symbol is, which decides how to call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Function,
    /// `STT_GNU_IFUNC`: the address is a resolver returning the function.
    Ifunc,
    Data,
}

#[derive(Debug, Clone)]
pub struct Resolved {
    pub addr: u64,
    pub kind: Kind,
    /// The path of the object that defines it, as the target maps it.
    pub object: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SymbolError {
    #[error("symbol {name:?} not found in pid {pid} ({searched} objects searched)")]
    NotFound {
        name: String,
        pid: i32,
        searched: usize,
    },
    #[error("symbol {name:?} not found: pid {pid} has no symbol table (a static, stripped binary)")]
    NoSymbolTable { name: String, pid: i32 },
    #[error("cannot read the maps of pid {pid}: {msg}")]
    Maps { pid: i32, msg: String },
}

impl SymbolError {
    pub fn hint(&self) -> Option<String> {
        let name = match self {
            SymbolError::NotFound { name, .. } | SymbolError::NoSymbolTable { name, .. } => name,
            SymbolError::Maps { .. } => return None,
        };
        let bare = name.split('@').next().unwrap_or(name);
        syscalls::Sysno::from_str(bare).ok().map(|_| {
            format!(
                "hint: {bare} is a system call: syscall(\"{bare}\", [...]) makes it without libc"
            )
        })
    }
}

/// One mapped object (a file mapped at least once) of the target.
#[derive(Debug, Clone)]
struct Module {
    path: String,
    dev: String,
    inode: u64,
    /// (start, end, file offset) of each of its mappings, in address order.
    mappings: Vec<(u64, u64, u64)>,
}

/// What reach keeps of one parsed ELF object.
#[derive(Debug, Default)]
struct Object {
    /// (p_vaddr, p_offset) of each PT_LOAD.
    loads: Vec<(u64, u64)>,
    symbols: HashMap<String, Vec<Symbol>>,
}

#[derive(Debug, Clone)]
struct Symbol {
    value: u64,
    kind: Kind,
    /// Global or weak (visible to the dynamic linker); false for locals.
    global: bool,
    version: Option<String>,
    /// Not a hidden (non-default) version: `name@@VER`, or unversioned.
    default: bool,
}

/// A per-reach cache of parsed objects.
#[derive(Default)]
pub struct Symbols {
    objects: HashMap<(String, u64), Rc<Object>>,
}

const PAGE: u64 = 4096;

impl Symbols {
    /// Resolve `name` (`name`, `name@VERSION` or `name@@VERSION`) the way
    /// the program would see it: the main executable first, then every
    /// other object in mapping order; global definitions before locals.
    pub fn resolve(&mut self, pid: i32, name: &str) -> Result<Resolved, SymbolError> {
        let (bare, version) = match name.split_once('@') {
            Some((b, v)) => (b, Some(v.trim_start_matches('@'))),
            None => (name, None),
        };
        let modules = modules(pid)?;
        let mut local: Option<Resolved> = None;
        let mut any_symbols = false;
        for module in &modules {
            let Some(object) = self.object(pid, module) else {
                continue;
            };
            any_symbols |= !object.symbols.is_empty();
            let Some(found) = object.find(bare, version) else {
                continue;
            };
            let Some(bias) = object.bias(module) else {
                continue;
            };
            let resolved = Resolved {
                addr: bias.wrapping_add(found.value),
                kind: found.kind,
                object: module.path.clone(),
            };
            if found.global {
                return Ok(resolved);
            }
            local.get_or_insert(resolved);
        }
        if let Some(resolved) = local {
            return Ok(resolved);
        }
        if !any_symbols {
            return Err(SymbolError::NoSymbolTable {
                name: name.into(),
                pid,
            });
        }
        Err(SymbolError::NotFound {
            name: name.into(),
            pid,
            searched: modules.len(),
        })
    }

    /// Names of the functions `pid` maps that start with `prefix`, sorted,
    /// at most `limit` of them (for completion: objects are parsed once and
    /// cached, so a second look costs a map scan).
    pub fn function_names(&mut self, pid: i32, prefix: &str, limit: usize) -> Vec<String> {
        let Ok(modules) = modules(pid) else {
            return Vec::new();
        };
        let mut names = std::collections::BTreeSet::new();
        for module in &modules {
            let Some(object) = self.object(pid, module) else {
                continue;
            };
            names.extend(
                object
                    .symbols
                    .iter()
                    .filter(|(name, _)| name.starts_with(prefix))
                    .filter(|(_, entries)| entries.iter().any(|e| e.global && e.kind != Kind::Data))
                    .map(|(name, _)| name.clone()),
            );
        }
        names.into_iter().take(limit).collect()
    }

    fn object(&mut self, pid: i32, module: &Module) -> Option<Rc<Object>> {
        let key = (module.dev.clone(), module.inode);
        if let Some(object) = self.objects.get(&key) {
            return Some(object.clone());
        }
        let bytes = read_mapped_file(pid, module)?;
        let object = Rc::new(Object::parse(&bytes)?);
        self.objects.insert(key, object.clone());
        Some(object)
    }
}

/// The bytes of the file behind `module`, as the target maps it.
fn read_mapped_file(pid: i32, module: &Module) -> Option<Vec<u8>> {
    let &(start, end, _) = module.mappings.iter().min_by_key(|m| m.2)?;
    let mapped = format!("/proc/{pid}/map_files/{start:x}-{end:x}");
    if let Ok(bytes) = std::fs::read(mapped) {
        return Some(bytes);
    }
    let path = module.path.trim_end_matches(" (deleted)");
    std::fs::read(format!("/proc/{pid}/root{path}")).ok()
}

impl Object {
    fn parse(bytes: &[u8]) -> Option<Object> {
        let elf = Elf::parse(bytes).ok()?;
        let loads = elf
            .program_headers
            .iter()
            .filter(|ph| ph.p_type == PT_LOAD)
            .map(|ph| (ph.p_vaddr, ph.p_offset))
            .collect();
        let mut object = Object {
            loads,
            symbols: HashMap::new(),
        };
        // Version index → name, from .gnu.version_d.
        let mut versions: HashMap<u16, String> = HashMap::new();
        if let Some(verdef) = &elf.verdef {
            for def in verdef.iter() {
                if let Some(aux) = def.iter().next()
                    && let Some(name) = elf.dynstrtab.get_at(aux.vda_name)
                {
                    versions.insert(def.vd_ndx, name.to_string());
                }
            }
        }
        for (i, s) in elf.dynsyms.iter().enumerate() {
            let Some(name) = elf.dynstrtab.get_at(s.st_name) else {
                continue;
            };
            let versym = elf.versym.as_ref().and_then(|v| v.get_at(i));
            let version = versym
                .as_ref()
                .and_then(|v| versions.get(&v.version()).cloned());
            let default = versym.as_ref().is_none_or(|v| !v.is_hidden());
            object.add(name, &s, version, default);
        }
        for s in elf.syms.iter() {
            if let Some(name) = elf.strtab.get_at(s.st_name) {
                object.add(name, &s, None, true);
            }
        }
        Some(object)
    }

    fn add(&mut self, name: &str, s: &sym::Sym, version: Option<String>, default: bool) {
        let kind = match s.st_type() {
            sym::STT_FUNC | sym::STT_NOTYPE => Kind::Function,
            sym::STT_GNU_IFUNC => Kind::Ifunc,
            sym::STT_OBJECT => Kind::Data,
            _ => return,
        };
        if s.st_shndx == 0
            || s.st_shndx == goblin::elf::section_header::SHN_ABS as usize
            || s.st_value == 0
            || name.is_empty()
        {
            return;
        }
        // `.symtab` repeats `.dynsym`'s globals; keep the versioned entry.
        let global = s.st_bind() != sym::STB_LOCAL;
        let entries = self.symbols.entry(name.to_string()).or_default();
        if version.is_none() && entries.iter().any(|e| e.value == s.st_value) {
            return;
        }
        entries.push(Symbol {
            value: s.st_value,
            kind,
            global,
            version,
            default,
        });
    }

    fn find(&self, name: &str, version: Option<&str>) -> Option<&Symbol> {
        let entries = self.symbols.get(name)?;
        match version {
            Some(v) => entries.iter().find(|e| e.version.as_deref() == Some(v)),
            None => entries
                .iter()
                .filter(|e| e.default)
                .max_by_key(|e| e.global)
                .or_else(|| entries.first()),
        }
    }

    /// Load bias: where the object's vaddr 0 is in the target. A mapping at
    /// `start` with file offset `off` holds the PT_LOAD whose page-aligned
    /// offset is `off`; that segment's page-aligned vaddr sits at `start`
    /// (ld.so's _dl_map_segments maps each segment that way).
    fn bias(&self, module: &Module) -> Option<u64> {
        module.mappings.iter().find_map(|&(start, _, off)| {
            self.loads
                .iter()
                .find(|(_, p_offset)| p_offset & !(PAGE - 1) == off)
                .map(|(vaddr, _)| start.wrapping_sub(vaddr & !(PAGE - 1)))
        })
    }
}

/// The file-backed objects mapped in `pid`, main executable first.
fn modules(pid: i32) -> Result<Vec<Module>, SymbolError> {
    let maps =
        std::fs::read_to_string(format!("/proc/{pid}/maps")).map_err(|e| SymbolError::Maps {
            pid,
            msg: e.to_string(),
        })?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    let mut modules: Vec<Module> = Vec::new();
    for line in maps.lines() {
        let Some(map) = parse_maps_line(line) else {
            continue;
        };
        let (start, end, offset, dev, inode, path) = map;
        if inode == 0 || !path.starts_with('/') {
            continue;
        }
        match modules
            .iter_mut()
            .find(|m| m.inode == inode && m.dev == dev)
        {
            Some(m) => m.mappings.push((start, end, offset)),
            None => modules.push(Module {
                path: path.to_string(),
                dev: dev.to_string(),
                inode,
                mappings: vec![(start, end, offset)],
            }),
        }
    }
    if let Some(exe) = exe
        && let Some(i) = modules.iter().position(|m| m.path == exe)
    {
        let main = modules.remove(i);
        modules.insert(0, main);
    }
    Ok(modules)
}

/// `start-end perms offset dev inode path`, see proc_pid_maps(5).
fn parse_maps_line(line: &str) -> Option<(u64, u64, u64, &str, u64, &str)> {
    let mut fields = line.splitn(6, ' ');
    let (start, end) = fields.next()?.split_once('-')?;
    let _perms = fields.next()?;
    let offset = fields.next()?;
    let dev = fields.next()?;
    let inode = fields.next()?;
    let path = fields.next().unwrap_or("").trim_start();
    Some((
        u64::from_str_radix(start, 16).ok()?,
        u64::from_str_radix(end, 16).ok()?,
        u64::from_str_radix(offset, 16).ok()?,
        dev,
        inode.parse().ok()?,
        path,
    ))
}

/// Executable mappings of `pid`: (start, end, path), `[vdso]` first.
pub fn executable_mappings(pid: i32) -> Result<Vec<(u64, u64, String)>, SymbolError> {
    let maps =
        std::fs::read_to_string(format!("/proc/{pid}/maps")).map_err(|e| SymbolError::Maps {
            pid,
            msg: e.to_string(),
        })?;
    let mut exec: Vec<(u64, u64, String)> = maps
        .lines()
        .filter(|l| l.split(' ').nth(1).is_some_and(|p| p.contains('x')))
        .filter_map(|l| {
            let (start, end, _, _, _, path) = parse_maps_line(l)?;
            Some((start, end, path.to_string()))
        })
        .collect();
    // The vDSO is tiny, always there, and has a `syscall` instruction.
    exec.sort_by_key(|m| m.2 != "[vdso]");
    Ok(exec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_maps_line() {
        let line = "7f0c1a200000-7f0c1a228000 r--p 00001000 fd:01 1234   /usr/lib/x86_64-linux-gnu/libc.so.6";
        let (start, end, off, dev, inode, path) = parse_maps_line(line).unwrap();
        assert_eq!((start, end, off), (0x7f0c1a200000, 0x7f0c1a228000, 0x1000));
        assert_eq!(
            (dev, inode, path),
            ("fd:01", 1234, "/usr/lib/x86_64-linux-gnu/libc.so.6")
        );
    }

    #[test]
    fn resolves_a_libc_function_in_this_process() {
        let mut symbols = Symbols::default();
        let me = std::process::id() as i32;
        let found = symbols.resolve(me, "getpid").unwrap();
        assert_eq!(found.addr, libc::getpid as *const () as u64);
        let hint = symbols.resolve(me, "no_such_symbol_xyz").unwrap_err();
        assert!(hint.hint().is_none());
    }

    #[test]
    fn lists_function_names_by_prefix() {
        let mut symbols = Symbols::default();
        let me = std::process::id() as i32;
        let names = symbols.function_names(me, "getpi", 50);
        assert!(names.iter().any(|n| n == "getpid"), "{names:?}");
        assert!(names.iter().all(|n| n.starts_with("getpi")));
    }
}
