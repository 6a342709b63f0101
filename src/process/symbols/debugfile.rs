//! Separate debug files (Debian's `*-dbg` / `*-dbgsym` packages): the
//! `.symtab` that `strip` removed, kept elsewhere. Looked up as gdb does
//! ("Separate Debug Files" in the gdb manual): by build-id under
//! `/usr/lib/debug/.build-id/`, then by `.gnu_debuglink` name beside the
//! object, in `.debug/`, and under `/usr/lib/debug`. Each place is tried in
//! the target's filesystem first, then in reach's.
//!
//! The debug link is the target's to write: a name with a `/` in it (which
//! could lead root's reach anywhere on the host, `../../etc/shadow`) is
//! ignored, as are FIFOs and devices (opened without blocking, regular
//! files only), and files too large to checksum in reasonable time.

use super::elf::Object;
use crate::process::procinfo;
use crate::sys::filemap;
use std::path::Path;

const DEBUG_DIR: &str = "/usr/lib/debug";
/// The largest debug file checksummed (glibc's is 10 MB; Chromium's, a
/// few GB, would take seconds).
const MAX_DEBUG_FILE: usize = 1 << 30;

/// The debug file of `object` (mapped in `pid` from `path`), if installed.
pub fn find(pid: i32, path: &str, object: &Object) -> Option<Object> {
    let roots = [format!("{}/root", procinfo::dir(pid)), String::new()];
    if let Some(id) = object.build_id().filter(|id| id.len() >= 2) {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        for root in &roots {
            let candidate = format!(
                "{root}{DEBUG_DIR}/.build-id/{}/{}.debug",
                &hex[..2],
                &hex[2..]
            );
            if let Some(debug) = open(&candidate)
                && debug.build_id().as_ref() == Some(&id)
            {
                return Some(debug);
            }
        }
    }
    let (name, crc) = object.debuglink()?;
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return None;
    }
    let dir = Path::new(path).parent()?.to_string_lossy().into_owned();
    let dir = dir.trim_end_matches('/');
    for root in &roots {
        for candidate in [
            format!("{root}{dir}/{name}"),
            format!("{root}{dir}/.debug/{name}"),
            format!("{root}{DEBUG_DIR}{dir}/{name}"),
        ] {
            if let Some(debug) = open(&candidate)
                && debug.bytes().len() <= MAX_DEBUG_FILE
                && crc32(debug.bytes())? == crc
            {
                return Some(debug);
            }
        }
    }
    None
}

fn open(path: &str) -> Option<Object> {
    Object::open_debug(&filemap::open_regular(path).ok()?)
}

/// The CRC-32 (IEEE 802.3, as zlib's `crc32`) that `.gnu_debuglink`
/// records of the debug file; `None` if reach is asked to stop meanwhile
/// (Ctrl-C).
fn crc32(bytes: &[u8]) -> Option<u32> {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = [0u32; 256];
        for (i, entry) in table.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *entry = c;
        }
        table
    });
    let mut c = !0u32;
    for chunk in bytes.chunks(1 << 20) {
        if crate::sys::interrupt::pending().is_some() {
            return None;
        }
        c = chunk.iter().fold(c, |c, &b| {
            table[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8)
        });
    }
    Some(!c)
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32_matches_zlib() {
        assert_eq!(super::crc32(b"123456789"), Some(0xcbf4_3926));
        assert_eq!(super::crc32(b""), Some(0));
    }
}
