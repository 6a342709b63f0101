//! Names → addresses in a live process, the way its dynamic linker sees
//! them.
//!
//! Owns: which objects a process has mapped and in which order ld.so
//! searches them (`/proc/PID/maps` + the link map, `linkmap.rs`), reading
//! each object lazily (`elf.rs`), separate debug files (`debugfile.rs`),
//! and the per-reach cache of all of it. Never stops the target: it only
//! reads `/proc` and target memory.
//!
//! Every object is read the way the target sees it: through
//! `/proc/PID/map_files/START-END` (the very file that is mapped, even if
//! it was deleted or replaced on disk since), then `/proc/PID/root/PATH`
//! (the target's mount namespace), never the tool's own view of the path.
//! Objects are cached by (device, inode) and never parsed twice; the list
//! of objects is rebuilt only when `/proc/PID/maps` changed.

mod debugfile;
mod elf;
mod linkmap;

use super::maps::{self, Mapping};
use super::procinfo;
use crate::sys::{filemap, memory, procmap};
use elf::Symbol;
pub use elf::{Object, inflate};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
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
    #[error("symbol {name:?} not found in {where_} (objects searched: {searched}){}{}", did_you_mean(.suggestions), unreadable_note(.unreadable))]
    NotFound {
        name: String,
        /// `pid N`, or `OBJECT in pid N` for a qualified name.
        where_: String,
        searched: usize,
        suggestions: Vec<String>,
        /// Objects that could not be read as the target maps them.
        unreadable: Vec<String>,
    },
    #[error("symbol {name:?} not found: pid {pid} has no symbol table (a static, stripped binary)")]
    NoSymbolTable { name: String, pid: i32 },
    #[error("no object matching {object:?} is mapped in pid {pid}; mapped: {}", .mapped.join(", "))]
    NoSuchObject {
        object: String,
        pid: i32,
        mapped: Vec<String>,
    },
    #[error("{object:?} matches {} objects in pid {pid}: {}; qualify with one of these", .candidates.len(), .candidates.join(", "))]
    AmbiguousObject {
        object: String,
        pid: i32,
        candidates: Vec<String>,
    },
    #[error("cannot read the maps of pid {pid}: {msg}")]
    Maps { pid: i32, msg: String },
    #[error("not permitted to read the memory of pid {0}")]
    NotPermitted(i32),
}

fn maps_error(pid: i32, e: &std::io::Error) -> SymbolError {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => SymbolError::NotPermitted(pid),
        _ => SymbolError::Maps {
            pid,
            msg: e.to_string(),
        },
    }
}

fn unreadable_note(unreadable: &[String]) -> String {
    match unreadable {
        [] => String::new(),
        some => format!("; could not read as mapped: {}", some.join(", ")),
    }
}

fn did_you_mean(suggestions: &[String]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!("; did you mean {one}?"),
        more => format!("; did you mean one of: {}?", more.join(", ")),
    }
}

impl SymbolError {
    pub fn hint(&self) -> Option<String> {
        if let SymbolError::NotPermitted(_) = self {
            return Some(crate::process::procinfo::permission_hint(
                crate::process::procinfo::Access::ReadMemory,
            ));
        }
        let name = match self {
            SymbolError::NotFound { name, .. } | SymbolError::NoSymbolTable { name, .. } => name,
            _ => return None,
        };
        let bare = Query::parse(name).name;
        if syscalls::Sysno::from_str(bare).is_ok() {
            return Some(format!(
                "hint: {bare} is a system call: syscall(\"{bare}\", [...]) makes it without libc"
            ));
        }
        if let SymbolError::NotFound { unreadable, .. } = self
            && !unreadable.is_empty()
        {
            return Some(
                "hint: a library deleted or replaced on disk since it was mapped is read through \
                 /proc/PID/map_files, which needs CAP_SYS_ADMIN: run reach as root"
                    .to_string(),
            );
        }
        matches!(self, SymbolError::NoSymbolTable { .. }).then(|| {
            "hint: system calls work without symbols: syscall(\"name\", [...])".to_string()
        })
    }
}

/// A parsed lookup: `[OBJECT:]NAME[@VERSION | @@VERSION]`.
struct Query<'a> {
    object: Option<&'a str>,
    name: &'a str,
    version: Option<&'a str>,
}

impl<'a> Query<'a> {
    fn parse(text: &'a str) -> Query<'a> {
        // `a::b` is no object qualifier; a library name has no `::`.
        let (object, rest) = match text.split_once(':') {
            Some((o, r)) if !o.is_empty() && !r.is_empty() && !r.starts_with(':') => (Some(o), r),
            _ => (None, text),
        };
        let (name, version) = match rest.split_once('@') {
            Some((n, v)) => (n, Some(v.trim_start_matches('@'))),
            None => (rest, None),
        };
        Query {
            object,
            name,
            version,
        }
    }
}

/// One mapped object (a file mapped at least once) of the target.
struct Module {
    /// As `/proc/PID/maps` shows it, ` (deleted)` included.
    path: String,
    dev: String,
    inode: u64,
    /// (start, end, file offset) of each of its mappings, in address order.
    mappings: Vec<(u64, u64, u64)>,
    /// The load bias the link map gives, if it lists this object.
    bias: Option<u64>,
    /// Filled on first use: `None` inside if it is no ELF object or cannot
    /// be read.
    object: Option<Option<Rc<Object>>>,
}

impl Module {
    fn file_path(&self) -> &str {
        self.path.strip_suffix(" (deleted)").unwrap_or(&self.path)
    }

    fn file_name(&self) -> &str {
        let path = self.file_path();
        path.rsplit('/').next().unwrap_or(path)
    }

    fn contains(&self, addr: u64) -> bool {
        self.mappings
            .iter()
            .any(|&(s, e, _)| (s..e).contains(&addr))
    }
}

/// What one lookup of a process is based on: its maps as last read, and
/// its objects in search order.
struct View {
    pid: i32,
    maps: String,
    modules: Vec<Module>,
    /// `/proc/PID/maps` held open for `PROCMAP_QUERY`; `None` where the
    /// kernel lacks it (before 6.11), and then every lookup re-reads the
    /// maps.
    query: Option<File>,
    /// Names resolved with this view: (result, index of its module).
    answers: HashMap<String, (Resolved, usize)>,
}

impl View {
    /// Is module `i` still mapped where and as it was when the view was
    /// built? One `PROCMAP_QUERY` on its first mapping: same start, same
    /// file offset, same file (device, inode).
    ///
    /// This is all an answer found in module `i` depends on: ld.so only
    /// ever appends objects to the link map (`dlopen`), so an object
    /// loaded since comes after `i` in search order and cannot take a
    /// name from it; an object unloaded since does not matter unless it
    /// is `i` itself, which this catches.
    fn still_mapped(&self, i: usize) -> bool {
        let (Some(maps), Some(module)) = (&self.query, self.modules.get(i)) else {
            return false;
        };
        let Some(&(start, _, offset)) = module.mappings.first() else {
            return false;
        };
        match procmap::query(maps, start) {
            Ok(Some(vma)) => {
                vma.start == start
                    && vma.offset == offset
                    && vma.inode == module.inode
                    && format!("{:02x}:{:02x}", vma.dev_major, vma.dev_minor) == module.dev
            }
            _ => false,
        }
    }
}

/// A per-reach cache of parsed objects and of each target's object list.
#[derive(Default)]
pub struct Symbols {
    /// Every object parsed so far, by (device, inode); `None`: not ELF.
    objects: HashMap<(String, u64), Option<Rc<Object>>>,
    view: Option<View>,
}

/// An object with code mapped in the target, for unwinding its stacks and
/// naming code addresses.
pub struct CodeObject {
    /// As `/proc/PID/maps` shows it.
    pub path: String,
    /// The lowest to the highest address of its mappings.
    pub range: std::ops::Range<u64>,
    /// Its executable mappings.
    pub code: Vec<std::ops::Range<u64>>,
    /// Where its vaddr 0 is in the target.
    pub bias: u64,
    pub object: Rc<Object>,
    pid: i32,
    /// Its separate debug file, looked for on first use.
    debug: std::cell::OnceCell<Option<Rc<Object>>>,
}

impl CodeObject {
    /// Its separate debug file (by build-id or debuglink), if there is one.
    pub fn debug(&self) -> Option<&Rc<Object>> {
        self.debug
            .get_or_init(|| debugfile::find(self.pid, self.file_path(), &self.object).map(Rc::new))
            .as_ref()
    }

    fn file_path(&self) -> &str {
        self.path.strip_suffix(" (deleted)").unwrap_or(&self.path)
    }

    /// The file name, as eu-stack and gdb print it.
    pub fn file_name(&self) -> &str {
        let path = self.file_path();
        path.rsplit('/').next().unwrap_or(path)
    }
}

impl Symbols {
    /// Resolve `name` (`name`, `name@VERSION`, `OBJECT:name`) the way the
    /// program would see it: the first global definition in the dynamic
    /// linker's search order (link-map order: the executable, its
    /// libraries, then `dlopen`ed ones); then `.symtab` and debug files,
    /// globals before locals. `OBJECT` is a file name (`libc.so.6`), a
    /// unique prefix of one (`libc`) or a full path.
    ///
    /// A repeated lookup costs one `PROCMAP_QUERY` (see
    /// [`View::still_mapped`]); `/proc/PID/maps` is re-read only when that
    /// check fails or the name is not found, which is how objects loaded
    /// since the last lookup are found.
    pub fn resolve(&mut self, pid: i32, name: &str) -> Result<Resolved, SymbolError> {
        let mut miss = None;
        if let Some(view) = &self.view
            && view.pid == pid
            && view.query.is_some()
        {
            if let Some((resolved, module)) = view.answers.get(name)
                && view.still_mapped(*module)
            {
                return Ok(resolved.clone());
            }
            match self.lookup(pid, name) {
                Ok(found) if self.view.as_ref().is_some_and(|v| v.still_mapped(found.1)) => {
                    return Ok(self.remember(name, found));
                }
                Ok(_) => {}
                Err(e) => miss = Some(e),
            }
        }
        let changed = self.refresh(pid)?;
        if let Some(e) = miss
            && !changed
        {
            return Err(e);
        }
        let found = self.lookup(pid, name)?;
        Ok(self.remember(name, found))
    }

    fn remember(&mut self, name: &str, (resolved, module): (Resolved, usize)) -> Resolved {
        if let Some(view) = &mut self.view {
            view.answers
                .insert(name.to_string(), (resolved.clone(), module));
        }
        resolved
    }

    /// Look `name` up in the current view: the result and its module.
    fn lookup(&mut self, pid: i32, name: &str) -> Result<(Resolved, usize), SymbolError> {
        let query = Query::parse(name);
        let Symbols { objects, view } = self;
        let Some(view) = view.as_mut() else {
            return Err(SymbolError::Maps {
                pid,
                msg: "not read yet".into(),
            });
        };
        let order: Vec<usize> = match query.object {
            Some(object) => vec![select(view, object)?],
            None => (0..view.modules.len()).collect(),
        };
        // Exported definitions, as ld.so finds them.
        for &i in &order {
            let module = &mut view.modules[i];
            let Some(object) = load(objects, pid, module) else {
                continue;
            };
            if let Some(found) = object.dynamic_lookup(query.name, query.version)
                && let Some(resolved) = located(module, &object, &found)
            {
                return Ok((resolved, i));
            }
        }
        // Then `.symtab` and debug files: globals, then locals.
        let mut local: Option<(Resolved, usize)> = None;
        let mut any_symbols = false;
        for &i in &order {
            let module = &mut view.modules[i];
            let Some(object) = load(objects, pid, module) else {
                continue;
            };
            let path = module.file_path().to_string();
            let debug = |o: &Object| debugfile::find(pid, &path, o);
            let Some(found) = object.static_lookup(query.name, query.version, debug) else {
                any_symbols |= object.has_symbols(|_| None);
                continue;
            };
            any_symbols = true;
            let Some(resolved) = located(module, &object, &found) else {
                continue;
            };
            if found.global {
                return Ok((resolved, i));
            }
            local.get_or_insert((resolved, i));
        }
        if let Some(found) = local {
            return Ok(found);
        }
        let unreadable: Vec<String> = order
            .iter()
            .map(|&i| &view.modules[i])
            .filter(|m| matches!(m.object, Some(None)))
            .map(|m| m.path.clone())
            .collect();
        if !any_symbols && unreadable.is_empty() && query.object.is_none() {
            return Err(SymbolError::NoSymbolTable {
                name: name.into(),
                pid,
            });
        }
        let where_ = match query.object {
            Some(_) => format!("{} in pid {pid}", view.modules[order[0]].file_name()),
            None => format!("pid {pid}"),
        };
        Err(SymbolError::NotFound {
            name: name.into(),
            where_,
            searched: order.len(),
            suggestions: suggestions(view, &order, &query),
            unreadable,
        })
    }

    /// Exported names in `pid` that start with `prefix`, sorted, at most
    /// `limit` of them (REPL completion; objects come from the cache).
    pub fn function_names(&mut self, pid: i32, prefix: &str, limit: usize) -> Vec<String> {
        if self.refresh(pid).is_err() {
            return Vec::new();
        }
        let Symbols { objects, view } = self;
        let Some(view) = view.as_mut() else {
            return Vec::new();
        };
        let mut names = std::collections::BTreeSet::new();
        for module in &mut view.modules {
            let Some(object) = load(objects, pid, module) else {
                continue;
            };
            names.extend(
                object
                    .names()
                    .into_iter()
                    .filter(|(name, exported)| *exported && name.starts_with(prefix))
                    .map(|(name, _)| name.to_string()),
            );
        }
        names.into_iter().take(limit).collect()
    }

    /// Every object of `pid` that has code, with its load bias and debug
    /// file: what unwinding needs (objects come from the cache).
    pub fn code_objects(&mut self, pid: i32) -> Result<Vec<CodeObject>, SymbolError> {
        self.refresh(pid)?;
        let Symbols { objects, view } = self;
        let Some(view) = view.as_mut() else {
            return Ok(Vec::new());
        };
        let mappings = maps::parse(&view.maps);
        let mut found: Vec<CodeObject> = mappings
            .iter()
            .filter(|m| m.path == "[vdso]")
            .filter_map(|m| vdso(pid, m))
            .collect();
        for module in &mut view.modules {
            let Some(object) = load(objects, pid, module) else {
                continue;
            };
            let Some(bias) = module.bias.or_else(|| object.bias(&module.mappings)) else {
                continue;
            };
            let start = module.mappings.iter().map(|m| m.0).min().unwrap_or(0);
            let end = module.mappings.iter().map(|m| m.1).max().unwrap_or(0);
            let code = mappings
                .iter()
                .filter(|m| m.is_executable() && m.inode == module.inode && m.dev == module.dev)
                .map(|m| m.start..m.end)
                .collect();
            found.push(CodeObject {
                path: module.path.clone(),
                range: start..end,
                code,
                bias,
                object,
                pid,
                debug: std::cell::OnceCell::new(),
            });
        }
        Ok(found)
    }

    /// Re-read `/proc/PID/maps`; if it changed since the last lookup (a
    /// `dlopen`, a `dlclose`, another process), rebuild the object list
    /// and say so. Parsed objects survive in the cache.
    fn refresh(&mut self, pid: i32) -> Result<bool, SymbolError> {
        let text = maps::read_text(pid).map_err(|e| maps_error(pid, &e))?;
        if let Some(view) = &self.view
            && view.pid == pid
            && view.maps == text
        {
            return Ok(false);
        }
        let mut modules = group(&maps::parse(&text));
        order(pid, &mut self.objects, &mut modules);
        let query = File::open(format!("/proc/{pid}/maps"))
            .ok()
            .filter(|f| procmap::query(f, 0).is_ok());
        self.view = Some(View {
            pid,
            maps: text,
            modules,
            query,
            answers: HashMap::new(),
        });
        Ok(true)
    }
}

/// The file-backed objects in `mappings` that have code (which leaves out
/// locale files, caches and other data mapped from files), in mapping
/// order. A mapping at file offset 0 starts a new one: ld.so and the
/// kernel map an object's first segment first, at its lowest address, so
/// the same file mapped twice (loaded in two namespaces, or mapped whole
/// by the program) makes two modules.
fn group(mappings: &[Mapping]) -> Vec<Module> {
    let mut modules: Vec<Module> = Vec::new();
    let mut index: HashMap<(&str, u64), usize> = HashMap::new();
    let mut code: Vec<bool> = Vec::new();
    for m in mappings.iter().filter(|m| m.is_file()) {
        let range = (m.start, m.end, m.offset);
        match index.get(&(m.dev.as_str(), m.inode)) {
            Some(&i) if m.offset != 0 => {
                modules[i].mappings.push(range);
                code[i] |= m.is_executable();
            }
            _ => {
                index.insert((m.dev.as_str(), m.inode), modules.len());
                code.push(m.is_executable());
                modules.push(Module {
                    path: m.path.clone(),
                    dev: m.dev.clone(),
                    inode: m.inode,
                    mappings: vec![range],
                    bias: None,
                    object: None,
                });
            }
        }
    }
    let mut code = code.into_iter();
    modules.retain(|_| code.next().unwrap_or(false));
    modules
}

/// Put `modules` in the dynamic linker's search order: link-map order,
/// then whatever the link map does not list (the link map is missing in
/// static programs and before ld.so has set it up). Without a link map:
/// the main executable first, then mapping order.
fn order(
    pid: i32,
    objects: &mut HashMap<(String, u64), Option<Rc<Object>>>,
    modules: &mut Vec<Module>,
) {
    let exe = procinfo::in_dir(pid, |dir| std::fs::read_link(format!("{dir}/exe")))
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    if let Some(i) = modules.iter().position(|m| Some(&m.path) == exe.as_ref()) {
        let main = modules.remove(i);
        modules.insert(0, main);
    }
    let Some(entries) = r_debug(pid, objects, modules).and_then(|r| linkmap::walk(pid, r)) else {
        return;
    };
    let mut ordered = Vec::with_capacity(modules.len());
    for entry in entries {
        if let Some(i) = modules.iter().position(|m| m.contains(entry.ld)) {
            let mut module = modules.remove(i);
            module.bias = Some(entry.bias);
            ordered.push(module);
        }
    }
    ordered.append(modules);
    *modules = ordered;
}

/// Where the target's `r_debug` is: the executable's `DT_DEBUG`, else
/// ld.so's exported `_r_debug` (glibc).
fn r_debug(
    pid: i32,
    objects: &mut HashMap<(String, u64), Option<Rc<Object>>>,
    modules: &mut [Module],
) -> Option<u64> {
    if let Some(main) = modules.first_mut()
        && let Some(object) = load(objects, pid, main)
        && let Some(vaddr) = object.dynamic_vaddr
        && let Some(bias) = object.bias(&main.mappings)
        && let Some(found) = linkmap::r_debug_from_dynamic(pid, bias.wrapping_add(vaddr))
    {
        return Some(found);
    }
    let ld_so = modules
        .iter_mut()
        .find(|m| m.file_name().starts_with("ld-linux") || m.file_name().starts_with("ld-musl"))?;
    let object = load(objects, pid, ld_so)?;
    let found = object.dynamic_lookup("_r_debug", None)?;
    Some(located(ld_so, &object, &found)?.addr)
}

/// The vDSO the kernel mapped into `pid`: a whole ELF image in one
/// mapping, linked at 0, copied from the target's memory.
fn vdso(pid: i32, m: &Mapping) -> Option<CodeObject> {
    const MAX: u64 = 1 << 20;
    if m.end - m.start > MAX {
        return None;
    }
    let mut image = vec![0u8; (m.end - m.start) as usize];
    memory::read(pid, m.start, &mut image).ok()?;
    let object = Rc::new(Object::from_image(image, |_| Some(m.start))?);
    Some(CodeObject {
        path: m.path.clone(),
        range: m.start..m.end,
        code: std::iter::once(m.start..m.end).collect(),
        bias: m.start,
        object,
        pid,
        debug: std::cell::OnceCell::from(None),
    })
}

/// The object behind `module`, opened on first use and cached.
fn load(
    objects: &mut HashMap<(String, u64), Option<Rc<Object>>>,
    pid: i32,
    module: &mut Module,
) -> Option<Rc<Object>> {
    if let Some(object) = &module.object {
        return object.clone();
    }
    let key = (module.dev.clone(), module.inode);
    let object = match objects.get(&key) {
        Some(object) => object.clone(),
        None => {
            let object = open_mapped(pid, module)
                .and_then(|f| Object::open(&f))
                .or_else(|| copy_mapped(pid, module))
                .map(Rc::new);
            objects.insert(key, object.clone());
            object
        }
    };
    module.object = Some(object.clone());
    object
}

/// The file behind `module`, as the target maps it: `map_files` (needs
/// CAP_SYS_ADMIN), else the path in the target's mount namespace — but only
/// if that is still the same inode: a library replaced on disk since it was
/// mapped must not be read in its place.
fn open_mapped(pid: i32, module: &Module) -> Option<File> {
    let &(start, end, _) = module.mappings.iter().min_by_key(|m| m.2)?;
    // Regular files only, opened without blocking: the path is the
    // target's to choose (a FIFO put where a deleted library was).
    let mapped = |dir: &str| filemap::open_regular(&format!("{dir}/map_files/{start:x}-{end:x}"));
    if let Ok(file) = procinfo::in_dir(pid, mapped) {
        return Some(file);
    }
    let rooted = |dir: &str| filemap::open_regular(&format!("{dir}/root{}", module.file_path()));
    let file = procinfo::in_dir(pid, rooted).ok()?;
    (file.metadata().ok()?.ino() == module.inode).then_some(file)
}

/// The largest object rebuilt from target memory.
const MAX_COPY: u64 = 1 << 30;

/// `module` rebuilt from the target's memory, when its file cannot be
/// opened (a deleted or replaced library, without the CAP_SYS_ADMIN that
/// `map_files` needs): each mapping copied to its file offset. Headers,
/// dynamic symbols, hash tables and the build-id note are all in loaded
/// segments, so dynamic lookups (and debug files) work; `.symtab` is not
/// loaded and is lost. Unreadable pages (ld.so's `PROT_NONE` gaps) stay
/// zero.
fn copy_mapped(pid: i32, module: &Module) -> Option<Object> {
    let size = module.mappings.iter().map(|&(s, e, o)| o + (e - s)).max()?;
    if size > MAX_COPY {
        return None;
    }
    let mut image = vec![0u8; size as usize];
    for &(start, end, offset) in &module.mappings {
        let at = offset as usize;
        let _ = memory::read(pid, start, &mut image[at..at + (end - start) as usize]);
    }
    Object::from_image(image, |o| module.bias.or_else(|| o.bias(&module.mappings)))
}

/// A symbol's address in the target.
fn located(module: &Module, object: &Object, symbol: &Symbol) -> Option<Resolved> {
    Some(Resolved {
        addr: module
            .bias
            .or_else(|| object.bias(&module.mappings))?
            .wrapping_add(symbol.value),
        kind: symbol.kind,
        object: module.path.clone(),
    })
}

/// The one module a qualifier names: by full path, file name, or a prefix
/// of the file name up to a `.` or `-` (`libc` for `libc.so.6` or
/// `libc-2.31.so`, not `libcap.so.2`).
fn select(view: &View, qualifier: &str) -> Result<usize, SymbolError> {
    let exact: Vec<usize> = (0..view.modules.len())
        .filter(|&i| {
            let m = &view.modules[i];
            m.file_name() == qualifier || m.file_path() == qualifier
        })
        .collect();
    let matches: Vec<usize> = if exact.is_empty() {
        (0..view.modules.len())
            .filter(|&i| {
                let name = view.modules[i].file_name();
                name.strip_prefix(qualifier)
                    .is_some_and(|rest| rest.starts_with(['.', '-']))
            })
            .collect()
    } else {
        exact
    };
    // The same file mapped twice (say, by the program itself) is one
    // candidate: the first in search order, the one ld.so loaded.
    let mut distinct: Vec<usize> = Vec::new();
    for i in matches {
        let m = &view.modules[i];
        if !distinct.iter().any(|&j| {
            let other = &view.modules[j];
            (other.inode, &other.dev) == (m.inode, &m.dev)
        }) {
            distinct.push(i);
        }
    }
    match distinct.as_slice() {
        [one] => Ok(*one),
        [] => Err(SymbolError::NoSuchObject {
            object: qualifier.into(),
            pid: view.pid,
            mapped: view
                .modules
                .iter()
                .map(|m| m.file_name().to_string())
                .collect(),
        }),
        many => Err(SymbolError::AmbiguousObject {
            object: qualifier.into(),
            pid: view.pid,
            candidates: many
                .iter()
                .map(|&i| view.modules[i].file_path().to_string())
                .collect(),
        }),
    }
}

/// Up to five defined names close to the query, as `name (object)`: for
/// a versioned name, the versions that exist; else names at a small edit
/// distance, or the same letters in another case. The closest first,
/// exported ones before static ones, then in search order.
fn suggestions(view: &View, order: &[usize], query: &Query) -> Vec<String> {
    let name = query.name;
    let limit = if name.len() <= 4 { 1 } else { 2 };
    let mut found: Vec<(usize, bool, String)> = Vec::new();
    for &i in order {
        let module = &view.modules[i];
        let Some(Some(object)) = &module.object else {
            continue;
        };
        if query.version.is_some() {
            for versioned in object.exported_versions(name) {
                found.push((0, false, format!("{versioned} ({})", module.file_name())));
            }
        }
        for (candidate, exported) in object.names() {
            if query.version.is_some() && candidate == name {
                continue;
            }
            if candidate.len().abs_diff(name.len()) > limit {
                continue;
            }
            let distance = if candidate.eq_ignore_ascii_case(name) {
                0
            } else {
                edit_distance(candidate, name)
            };
            let label = format!("{candidate} ({})", module.file_name());
            if distance <= limit && !found.iter().any(|(_, _, l)| *l == label) {
                found.push((distance, !exported, label));
            }
        }
    }
    // Stable: equal ranks stay in search order.
    found.sort_by_key(|(distance, is_static, _)| (*distance, *is_static));
    found
        .into_iter()
        .take(5)
        .map(|(_, _, label)| label)
        .collect()
}

/// Levenshtein distance between two short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// Executable mappings of `pid`: (start, end, path), `[vdso]` first.
pub fn executable_mappings(pid: i32) -> Result<Vec<(u64, u64, String)>, SymbolError> {
    let text = maps::read_text(pid).map_err(|e| maps_error(pid, &e))?;
    let mut exec: Vec<(u64, u64, String)> = maps::parse(&text)
        .into_iter()
        .filter(Mapping::is_executable)
        .map(|m| (m.start, m.end, m.path))
        .collect();
    // The vDSO is tiny, always there, and has a `syscall` instruction.
    exec.sort_by_key(|m| m.2 != "[vdso]");
    Ok(exec)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dynamically linked process (`sleep`), once its libc is mapped:
    /// reach itself may be built static. Killed on drop.
    pub(crate) struct Child(std::process::Child);

    impl Child {
        pub(crate) fn start() -> Child {
            let child = std::process::Command::new("sleep")
                .arg("60")
                .spawn()
                .unwrap();
            let me = Child(child);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while me.libc_path().is_none() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "sleep never mapped libc"
                );
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            me
        }

        pub(crate) fn pid(&self) -> i32 {
            self.0.id() as i32
        }

        /// The libc it maps.
        pub(crate) fn libc_path(&self) -> Option<String> {
            std::fs::read_to_string(format!("/proc/{}/maps", self.pid()))
                .ok()?
                .lines()
                .filter_map(|l| l.split_whitespace().nth(5))
                .find(|p| p.contains("/libc.so") || p.contains("/libc-"))
                .map(str::to_string)
        }

        /// The start of its libc's executable mapping, and its end.
        fn libc_code(&self) -> (u64, u64) {
            let libc = self.libc_path().unwrap();
            let text = std::fs::read_to_string(format!("/proc/{}/maps", self.pid())).unwrap();
            maps::parse(&text)
                .into_iter()
                .find(|m| m.path == libc && m.is_executable())
                .map(|m| (m.start, m.end))
                .unwrap()
        }
    }

    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn lists_exported_names_by_prefix() {
        let child = Child::start();
        let mut symbols = Symbols::default();
        let names = symbols.function_names(child.pid(), "getpi", 50);
        assert!(names.iter().any(|n| n == "getpid"), "{names:?}");
        assert!(names.iter().all(|n| n.starts_with("getpi")));
    }

    #[test]
    fn parses_qualified_and_versioned_names() {
        let q = Query::parse("libc.so.6:memcpy@GLIBC_2.2.5");
        assert_eq!(
            (q.object, q.name, q.version),
            (Some("libc.so.6"), "memcpy", Some("GLIBC_2.2.5"))
        );
        let q = Query::parse("memcpy@@GLIBC_2.14");
        assert_eq!(
            (q.object, q.name, q.version),
            (None, "memcpy", Some("GLIBC_2.14"))
        );
        let q = Query::parse("ns::f");
        assert_eq!((q.object, q.name), (None, "ns::f"));
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("shutdown", "shutdwn"), 1);
        assert_eq!(edit_distance("getpid", "getppid"), 1);
        assert_eq!(edit_distance("abc", "xyz"), 3);
    }

    #[test]
    fn without_procmap_query_every_lookup_rereads_the_maps() {
        let child = Child::start();
        let mut symbols = Symbols::default();
        let first = symbols.resolve(child.pid(), "getpid").unwrap().addr;
        // As on a kernel before 6.11.
        symbols.view.as_mut().unwrap().query = None;
        assert_eq!(symbols.resolve(child.pid(), "getpid").unwrap().addr, first);
        let (start, end) = child.libc_code();
        let getppid = symbols.resolve(child.pid(), "getppid").unwrap().addr;
        assert!((start..end).contains(&getppid));
    }

    #[test]
    fn resolves_a_libc_function_in_a_process() {
        let child = Child::start();
        let pid = child.pid();
        let mut symbols = Symbols::default();
        let found = symbols.resolve(pid, "getpid").unwrap();
        let (start, end) = child.libc_code();
        assert!((start..end).contains(&found.addr), "{found:?}");
        let qualified = symbols.resolve(pid, "libc:getpid").unwrap();
        assert_eq!(qualified.addr, found.addr, "{qualified:?} {found:?}");
        let missing = symbols.resolve(pid, "no_such_symbol_xyz").unwrap_err();
        assert!(missing.hint().is_none());
        let near = symbols.resolve(pid, "getpidd").unwrap_err().to_string();
        assert!(
            near.contains("did you mean one of: getpid (libc.so.6)"),
            "{near}"
        );
    }
}
