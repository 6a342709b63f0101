//! What reach does to a socket from outside the target: `shutdown`
//! through a copy of the descriptor (`pidfd_getfd`; an injected call on
//! kernels without it), and `destroy`, SOCK_DESTROY by the socket's
//! cookie. Both check first that the descriptor still names the socket it
//! was listed with.

use super::listing::classify;
use super::{Fd, FdError, Kind, ShutdownPath};
use crate::process::target::Target;
use crate::process::{Arg, Error, Result, procinfo};
use crate::sys::{pidfd, socket};
use nix::errno::Errno;

/// Shut socket `fd` down with `how` (`SHUT_RD`, `SHUT_WR`, `SHUT_RDWR`)
/// from outside the target: `pidfd_getfd` gives reach its own copy of the
/// descriptor and `shutdown()` on the copy acts on the shared socket, with
/// no stop window. Where `pidfd_open`/`pidfd_getfd` do not exist (ENOSYS),
/// falls back to calling `shutdown` inside the target. Either way, the
/// descriptor must still name the socket `fd` was listed with.
pub fn shutdown(target: &mut Target, fd: &Fd, how: i64) -> Result<ShutdownPath> {
    if fd.kind != Kind::Socket {
        return Err(FdError::NotASocket {
            fd: fd.fd,
            kind: fd.kind.as_str(),
        }
        .into());
    }
    let how = match how {
        0..=2 => how as i32,
        _ => return Err(FdError::BadHow(how).into()),
    };
    match shutdown_outside(target.pid(), fd, how) {
        Err(Unavailable) => {
            shutdown_injected(target, fd, how)?;
            Ok(ShutdownPath::InjectedCall)
        }
        Ok(result) => result.map(|()| ShutdownPath::Pidfd),
    }
}

/// `pidfd_open` or `pidfd_getfd` is missing from this kernel.
struct Unavailable;

fn shutdown_outside(pid: i32, fd: &Fd, how: i32) -> std::result::Result<Result<()>, Unavailable> {
    let errno_to_error = |errno: Errno| match errno {
        Errno::ESRCH => Error::TargetExited(pid),
        Errno::EPERM | Errno::EACCES => Error::NotPermitted(pid),
        Errno::EBADF => FdError::Closed { pid, fd: fd.fd }.into(),
        errno => Error::Proc {
            pid,
            msg: format!("pidfd: {errno}"),
        },
    };
    let pidfd = match pidfd::open(pid) {
        Ok(p) => p,
        Err(Errno::ENOSYS) => return Err(Unavailable),
        Err(e) => return Ok(Err(errno_to_error(e))),
    };
    let copy = match pidfd::get_fd(&pidfd, fd.fd) {
        Ok(c) => c,
        Err(Errno::ENOSYS) => return Err(Unavailable),
        Err(e) => return Ok(Err(errno_to_error(e))),
    };
    Ok((|| {
        let (now, _) = socket::inode_of(&copy).map_err(errno_to_error)?;
        check_same(fd, now)?;
        socket::shutdown(&copy, how).map_err(|errno| FdError::Shutdown { fd: fd.fd, errno })?;
        Ok(())
    })())
}

fn check_same(fd: &Fd, now: u64) -> Result<()> {
    match fd.inode {
        Some(was) if was != now => Err(FdError::Reused {
            fd: fd.fd,
            was,
            now,
        }
        .into()),
        _ => Ok(()),
    }
}

/// Call `shutdown(fd, how)` inside the target (a stop window). Public so
/// the fallback can be exercised on kernels that have `pidfd_getfd`.
pub fn shutdown_injected(target: &mut Target, fd: &Fd, how: i32) -> Result<()> {
    let pid = target.pid();
    let link = std::fs::read_link(format!("{}/fd/{}", procinfo::dir(pid), fd.fd))
        .map_err(|_| FdError::Closed { pid, fd: fd.fd })?;
    let (_, now, _) = classify(&link.to_string_lossy());
    if let Some(now) = now {
        check_same(fd, now)?;
    }
    let ret = target.call("shutdown", &[Arg::Int(fd.fd as u64), Arg::Int(how as u64)])?;
    if ret != 0 {
        return Err(FdError::Injected {
            fd: fd.fd,
            errno: target.errno(),
        }
        .into());
    }
    Ok(())
}
