//! Read-only mappings of files, so an ELF object is paged in only where a
//! lookup looks (its hash table, a few symbols, a few strings).

use memmap2::Mmap;
use std::fs::File;

/// Map all of `file` read-only and private.
///
/// Unsafe in general because the bytes change if someone writes to the file
/// while it is mapped, and touching a page past a truncation raises SIGBUS.
/// reach maps shared libraries and executables that the target itself has
/// mapped: writing to or truncating those in place would crash the target
/// too (upgrades replace them by rename, which leaves this mapping intact).
pub fn map_readonly(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: see above; the mapping is never written and reach only reads
    // it through bounds-checked slices.
    unsafe { Mmap::map(file) }
}
