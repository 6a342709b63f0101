//! The dynamic linker's own list of loaded objects, read from target memory:
//! `r_debug.r_map`, the `link_map` chain that glibc and musl both keep for
//! debuggers (<link.h>; the SVR4 debugger interface). Its order is load
//! order, the order ld.so searches the global scope in: the executable, its
//! preloads and needed libraries breadth first, then `dlopen`ed objects.

use crate::sys::memory;
use goblin::elf::dynamic::{DT_DEBUG, DT_NULL};

/// One `struct link_map` entry.
#[derive(Debug, Clone, Copy)]
pub struct LinkEntry {
    /// `l_addr`: the load bias, as ld.so computed it.
    pub bias: u64,
    /// `l_ld`: the address of the object's dynamic section. It lies in one
    /// of the object's mappings, and so identifies it (`l_name` can be
    /// relative, or empty for the executable).
    pub ld: u64,
}

/// More entries than this means a corrupt or looping list.
const MAX_ENTRIES: usize = 65536;

/// The address of `r_debug`, from the `DT_DEBUG` entry of the executable's
/// dynamic section in memory: ld.so stores it there at startup for
/// debuggers (glibc `dl_main`, musl `__dls3`). 0 until then, and absent in
/// static programs.
pub fn r_debug_from_dynamic(pid: i32, dynamic: u64) -> Option<u64> {
    let mut buf = [0u8; 16 * 64];
    let mut at = dynamic;
    for _ in 0..16 {
        memory::read(pid, at, &mut buf).ok()?;
        for entry in buf.chunks_exact(16) {
            let tag = u64::from_le_bytes(entry[..8].try_into().ok()?);
            let value = u64::from_le_bytes(entry[8..].try_into().ok()?);
            match tag {
                DT_NULL => return None,
                DT_DEBUG if value != 0 => return Some(value),
                _ => {}
            }
        }
        at += buf.len() as u64;
    }
    None
}

/// The chain from `r_debug` (`int r_version; struct link_map *r_map; …`):
/// each `link_map` is `l_addr, l_name, l_ld, l_next, l_prev`, 8 bytes each.
/// `None` if the chain cannot be read or is not yet set up.
pub fn walk(pid: i32, r_debug: u64) -> Option<Vec<LinkEntry>> {
    let mut head = [0u8; 16];
    memory::read(pid, r_debug, &mut head).ok()?;
    let version = i32::from_le_bytes(head[..4].try_into().ok()?);
    if version < 1 {
        return None;
    }
    let mut next = u64::from_le_bytes(head[8..].try_into().ok()?);
    let mut entries = Vec::new();
    while next != 0 {
        if entries.len() >= MAX_ENTRIES {
            return None;
        }
        let mut raw = [0u8; 32];
        memory::read(pid, next, &mut raw).ok()?;
        let word = |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap());
        entries.push(LinkEntry {
            bias: word(0),
            ld: word(2),
        });
        next = word(3);
    }
    (!entries.is_empty()).then_some(entries)
}
