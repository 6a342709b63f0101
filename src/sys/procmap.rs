//! `PROCMAP_QUERY` (Linux ≥ 6.11): ask `/proc/PID/maps` about the one
//! mapping at an address with a single ioctl, instead of reading (and
//! having the kernel format) the whole file. See `Documentation/
//! filesystems/proc.rst` and `struct procmap_query` in `linux/fs.h`.

use nix::errno::Errno;
use std::fs::File;
use std::os::fd::AsRawFd;

/// The mapping covering an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vma {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    pub inode: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
}

/// `struct procmap_query`, as the kernel defines it (104 bytes).
#[repr(C)]
#[derive(Default)]
struct ProcmapQuery {
    size: u64,
    query_flags: u64,
    query_addr: u64,
    vma_start: u64,
    vma_end: u64,
    vma_flags: u64,
    vma_page_size: u64,
    vma_offset: u64,
    inode: u64,
    dev_major: u32,
    dev_minor: u32,
    vma_name_size: u32,
    build_id_size: u32,
    vma_name_addr: u64,
    build_id_addr: u64,
}

/// `_IOWR('f', 17, struct procmap_query)`.
const PROCMAP_QUERY: u64 =
    (3 << 30) | ((size_of::<ProcmapQuery>() as u64) << 16) | (0x66 << 8) | 17;

/// The mapping that covers `addr`, asked through `maps` (an open
/// `/proc/PID/maps`). `Ok(None)`: nothing is mapped there. `Err(ENOTTY)`
/// (or `EINVAL`): the kernel is older than 6.11.
pub fn query(maps: &File, addr: u64) -> Result<Option<Vma>, Errno> {
    let mut q = ProcmapQuery {
        size: size_of::<ProcmapQuery>() as u64,
        // 0: only the mapping covering the address, not the next one.
        query_flags: 0,
        query_addr: addr,
        ..ProcmapQuery::default()
    };
    // SAFETY: `q` is a valid, initialised `struct procmap_query` whose
    // `size` says how much the kernel may read and write; name and
    // build-id buffers are not requested (sizes 0).
    let rc = unsafe { libc::ioctl(maps.as_raw_fd(), PROCMAP_QUERY as _, &mut q) };
    match Errno::result(rc) {
        Ok(_) => Ok(Some(Vma {
            start: q.vma_start,
            end: q.vma_end,
            offset: q.vma_offset,
            inode: q.inode,
            dev_major: q.dev_major,
            dev_minor: q.dev_minor,
        })),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_mapping_of_this_function() {
        assert_eq!(size_of::<ProcmapQuery>(), 104);
        let maps = File::open("/proc/self/maps").unwrap();
        let here = finds_the_mapping_of_this_function as *const () as u64;
        match query(&maps, here) {
            Ok(Some(vma)) => {
                assert!(vma.start <= here && here < vma.end);
                assert_ne!(vma.inode, 0);
            }
            Ok(None) => panic!("this code is not mapped?"),
            Err(Errno::ENOTTY | Errno::EINVAL) => eprintln!("kernel without PROCMAP_QUERY"),
            Err(e) => panic!("{e}"),
        }
        assert_eq!(query(&maps, 8).ok().flatten(), None);
    }
}
