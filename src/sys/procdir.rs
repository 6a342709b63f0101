//! A `/proc` directory held open, so that per-entry reads resolve a single
//! name against it (`readlinkat`, `openat`) instead of walking
//! `/proc/PID/fd/N` from the root each time: with thousands of descriptors
//! the walk is a quarter of the cost.

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, readlinkat};
use nix::sys::stat::Mode;
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

pub struct ProcDir {
    dir: OwnedFd,
}

impl ProcDir {
    pub fn open(path: &Path) -> Result<ProcDir, Errno> {
        let dir = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(ProcDir { dir })
    }

    /// The size `stat` reports for this directory: for `/proc/PID/fd`,
    /// the number of open descriptors (Linux 6.2+, `proc_fd_getattr`;
    /// 0 before).
    pub fn size(&self) -> Result<u64, Errno> {
        Ok(nix::sys::stat::fstat(&self.dir)?.st_size as u64)
    }

    /// The target of the symlink `name` in this directory.
    pub fn readlink(&self, name: &str) -> Result<OsString, Errno> {
        readlinkat(self.dir.as_fd(), name)
    }

    /// The target of the symlink named by the number `n` (an entry of
    /// `/proc/PID/fd`), as text (lossy), read into a stack buffer: with
    /// thousands of descriptors, the allocations of [`ProcDir::readlink`]
    /// show up. A target too long for the buffer takes that path.
    pub fn readlink_number(&self, n: i32) -> Result<String, Errno> {
        // The decimal name, NUL-terminated.
        let mut name = [0u8; 12];
        let mut at = name.len() - 1;
        let mut rest = n.unsigned_abs();
        loop {
            at -= 1;
            name[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if n < 0 {
            at -= 1;
            name[at] = b'-';
        }
        let mut buf = [0u8; 256];
        // SAFETY: a NUL-terminated name, and a buffer whose length is
        // passed along; the directory fd is owned and open.
        let len = unsafe {
            libc::readlinkat(
                self.dir.as_raw_fd(),
                name[at..].as_ptr().cast(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if len < 0 {
            return Err(Errno::last());
        }
        let len = len as usize;
        if len == buf.len() {
            // Possibly truncated.
            return self
                .readlink(&n.to_string())
                .map(|t| t.to_string_lossy().into_owned());
        }
        Ok(String::from_utf8_lossy(&buf[..len]).into_owned())
    }

    /// The whole of file `name` in this directory, appended to `buf`.
    pub fn read_to_string(&self, name: &str, buf: &mut String) -> Result<(), Errno> {
        let fd = openat(
            self.dir.as_fd(),
            name,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        File::from(fd)
            .read_to_string(buf)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_fd_links_and_fdinfo() {
        let dir = ProcDir::open(Path::new("/proc/self/fd")).unwrap();
        let target = dir.readlink("0");
        assert!(target.is_ok() || target == Err(Errno::ENOENT));
        let file = File::open("/proc/self/status").unwrap();
        let n = file.as_raw_fd();
        assert_eq!(
            dir.readlink_number(n).unwrap(),
            dir.readlink(&n.to_string()).unwrap().to_string_lossy()
        );
        assert_eq!(dir.readlink_number(-1), Err(Errno::ENOENT));
        assert_eq!(dir.readlink_number(i32::MAX), Err(Errno::ENOENT));
        assert!(dir.size().is_ok());
        let info = ProcDir::open(Path::new("/proc/self")).unwrap();
        let mut s = String::new();
        info.read_to_string("status", &mut s).unwrap();
        assert!(s.starts_with("Name:"));
    }
}
