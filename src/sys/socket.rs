//! Sockets seen from outside their owner: `shutdown(2)` on a descriptor
//! reach holds (a `pidfd_getfd` copy), the inode behind a descriptor, and
//! the protocol name the kernel keeps for every socket inode.

use nix::errno::Errno;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `shutdown(fd, how)` with `how` one of `SHUT_RD`, `SHUT_WR`, `SHUT_RDWR`.
///
/// Shutdown acts on the socket, not the descriptor: every descriptor that
/// shares it (the target's included) sees it, and a reader blocked in it
/// wakes with end-of-file (net/socket.c, `__sys_shutdown_sock`).
pub fn shutdown(fd: &OwnedFd, how: i32) -> Result<(), Errno> {
    // SAFETY: two integers; the fd is owned and open.
    let ret = unsafe { libc::shutdown(fd.as_raw_fd(), how) };
    if ret < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// The inode number and file type bits (`st_mode & S_IFMT`) of an open fd.
pub fn inode_of(fd: &OwnedFd) -> Result<(u64, u32), Errno> {
    let st = nix::sys::stat::fstat(fd)?;
    Ok((st.st_ino, st.st_mode & libc::S_IFMT))
}

/// The protocol name of the socket that `path` (a `/proc/PID/fd/N` link)
/// refers to: `TCP`, `TCPv6`, `UDP`, `UNIX-STREAM`, `NETLINK`, `PACKET`, …
///
/// Every socket inode carries it as the extended attribute
/// `system.sockprotoname` (net/socket.c, `sockfs_getxattr`), so this works
/// for protocols that have no table under `/proc/net`.
pub fn protocol_name(path: &Path) -> Option<String> {
    let cpath = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut buf = [0u8; 64];
    // SAFETY: a NUL-terminated path, a NUL-terminated name, and a buffer
    // whose length is passed along.
    let n = unsafe {
        libc::getxattr(
            cpath.as_ptr(),
            c"system.sockprotoname".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n <= 0 {
        return None;
    }
    let bytes = &buf[..n as usize];
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    Some(String::from_utf8_lossy(bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn protocol_name_of_a_unix_socket() {
        let (a, _b) = UnixStream::pair().unwrap();
        let path = format!("/proc/self/fd/{}", a.as_raw_fd());
        let name = protocol_name(Path::new(&path)).unwrap();
        assert!(name.starts_with("UNIX"), "{name}");
    }

    #[test]
    fn shutdown_wakes_the_peer() {
        use std::io::Read;
        let (a, mut b) = UnixStream::pair().unwrap();
        let owned: OwnedFd = a.as_fd().try_clone_to_owned().unwrap();
        shutdown(&owned, libc::SHUT_RDWR).unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(b.read(&mut buf).unwrap(), 0);
        let (ino, kind) = inode_of(&owned).unwrap();
        assert!(ino > 0);
        assert_eq!(kind, libc::S_IFSOCK);
    }
}
