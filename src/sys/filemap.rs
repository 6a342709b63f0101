//! Read-only mappings of files, so an ELF object is paged in only where a
//! lookup looks (its hash table, a few symbols, a few strings) — and
//! files opened the way reach opens anything a target controls.
//!
//! The files are the target's (its libraries, through
//! `/proc/PID/map_files`, and their debug files), and the target can
//! truncate them under reach: touching a mapped page past the new end of
//! file raises SIGBUS. reach survives that: a SIGBUS inside one of these
//! mappings is answered by mapping a page of zeros where the file's page
//! was, and the read goes on (the parsers bound every access and take
//! zeros for what they are). Any other SIGBUS keeps its default action.

use memmap2::Mmap;
use std::fs::File;
use std::ops::Deref;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

/// A read-only, private mapping of a whole file.
pub struct FileMap {
    map: Mmap,
    slot: usize,
}

/// How many mappings can be guarded at once; beyond that, files are read
/// into memory instead.
const SLOTS: usize = 4096;
/// (start, end) of each guarded mapping; (0, 0) is a free slot.
static RANGES: [(AtomicU64, AtomicU64); SLOTS] =
    [const { (AtomicU64::new(0), AtomicU64::new(0)) }; SLOTS];

impl FileMap {
    /// Map all of `file` read-only and private, guarded against the file
    /// shrinking under reach. `None` if it cannot be mapped or every slot
    /// is taken.
    pub fn new(file: &File) -> Option<FileMap> {
        install_handler();
        // SAFETY: reach never writes through this mapping, and only reads
        // it through bounds-checked slices; a page the file loses meanwhile
        // turns into zeros (see the module comment), not undefined
        // behaviour of reach's.
        let map = unsafe { Mmap::map(file) }.ok()?;
        let start = map.as_ptr() as u64;
        let end = start + map.len() as u64;
        let slot = (0..SLOTS).find(|&i| {
            RANGES[i]
                .0
                .compare_exchange(0, start, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        })?;
        RANGES[slot].1.store(end, Ordering::SeqCst);
        Some(FileMap { map, slot })
    }
}

impl Deref for FileMap {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        RANGES[self.slot].1.store(0, Ordering::SeqCst);
        RANGES[self.slot].0.store(0, Ordering::SeqCst);
    }
}

fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: the handler only reads atomics and makes mmap/sigaction
        // system calls.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigbus as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
        }
    });
}

extern "C" fn on_sigbus(sig: i32, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as u64;
    let guarded = RANGES.iter().any(|(s, e)| {
        let (s, e) = (s.load(Ordering::SeqCst), e.load(Ordering::SeqCst));
        s != 0 && (s..e).contains(&addr)
    });
    if guarded {
        let page = addr & !4095;
        // SAFETY: replaces one page of a mapping reach owns (checked just
        // above) with zeros; the faulting read is then retried.
        let p = unsafe {
            libc::mmap(
                page as *mut libc::c_void,
                4096,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            return;
        }
    }
    // Not ours: the default action, as if reach had no handler.
    // SAFETY: resetting a disposition and returning re-raises the fault.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
    }
}

/// Open `path` for reading without blocking (a FIFO or a device cannot
/// hang reach) and only if it is a regular file.
pub fn open_regular(path: &str) -> std::io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_truncated_under_the_mapping_reads_as_zeros() {
        let path = std::env::temp_dir().join(format!("reach-filemap-{}", std::process::id()));
        let mut f = File::create(&path).unwrap();
        f.write_all(&vec![7u8; 3 * 4096]).unwrap();
        let map = FileMap::new(&File::open(&path).unwrap()).unwrap();
        assert_eq!(map[2 * 4096], 7);
        f.set_len(4096).unwrap();
        // Past the new end of file: SIGBUS, answered with a zero page.
        assert_eq!(map[2 * 4096 + 10], 0);
        assert_eq!(map[10], 7);
        drop(map);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn fifos_and_devices_are_refused_without_blocking() {
        let fifo = std::env::temp_dir().join(format!("reach-fifo-{}", std::process::id()));
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(open_regular(fifo.to_str().unwrap()).is_err());
        std::fs::remove_file(&fifo).unwrap();
        assert!(open_regular("/dev/zero").is_err());
        assert!(open_regular("/proc/self/status").is_ok());
    }
}
