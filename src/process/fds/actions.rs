//! What reach does to a socket from outside the target: `shutdown`
//! through a copy of the descriptor (`pidfd_getfd`; an injected call on
//! kernels without it), and `destroy`, SOCK_DESTROY by the socket's
//! cookie. Both check first that the descriptor still names the socket it
//! was listed with.

use super::listing::classify;
use super::{Fd, FdError, Kind, ShutdownPath};
use crate::process::target::Target;
use crate::process::{Arg, Error, Result, procinfo};
use crate::sys::sock_diag::{DiagError, DiagSocket, Family, Protocol};
use crate::sys::{pidfd, socket};
use nix::errno::Errno;
use std::ops::ControlFlow;

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
        Errno::EPERM | Errno::EACCES => Error::NotPermitted {
            pid,
            access: crate::process::procinfo::Access::TakeFd,
        },
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

/// Abort TCP socket `fd` of `pid` with `SOCK_DESTROY`, as `ss -K` and
/// BSD's `tcpdrop` do: the kernel resets the connection (the peer gets an
/// RST), a thread blocked on it wakes with ECONNABORTED, and the
/// descriptor stays valid in the target (no number can be reused under a
/// thread). No stop window. The socket is found again by inode in the
/// target's network namespace, and must still have the cookie it was
/// listed with.
pub fn destroy(pid: i32, fd: &Fd) -> Result<()> {
    let not_tcp = |what: String| FdError::NotTcp { fd: fd.fd, what };
    if fd.kind != Kind::Socket {
        return Err(not_tcp(format!("a {}", fd.kind.as_str())).into());
    }
    let family = match fd.proto.as_deref() {
        Some("tcp") => Family::V4,
        Some("tcp6") => Family::V6,
        other => return Err(not_tcp(format!("a {} socket", other.unwrap_or("?"))).into()),
    };
    let dir = procinfo::dir(pid);
    let link = std::fs::read_link(format!("{dir}/fd/{}", fd.fd))
        .map_err(|_| FdError::Closed { pid, fd: fd.fd })?;
    let (_, now, _) = classify(&link.to_string_lossy());
    check_same(fd, now.unwrap_or(0))?;
    let refused = |why: String| FdError::Destroy { fd: fd.fd, why };
    let mut diag = DiagSocket::for_pid(pid, &dir).map_err(|e| refused(e.to_string()))?;
    let mut found = None;
    diag.dump_inet(family, Protocol::Tcp, |s| {
        if Some(s.inode) == fd.inode {
            found = Some(s);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })
    .map_err(|e| refused(e.to_string()))?;
    let Some(sock) = found else {
        return Err(
            refused("it is in no TCP table of the kernel's (closed already)".into()).into(),
        );
    };
    if fd.cookie.is_some_and(|c| c != sock.cookie) {
        return Err(
            refused("its socket changed since it was listed; list fds() again".into()).into(),
        );
    }
    diag.destroy(&sock).map_err(|e| {
        let why = match e {
            DiagError::Refused(Errno::EOPNOTSUPP) => {
                "this kernel was built without CONFIG_INET_DIAG_DESTROY".to_string()
            }
            DiagError::Refused(Errno::EPERM | Errno::EACCES) => {
                "SOCK_DESTROY needs CAP_NET_ADMIN".to_string()
            }
            DiagError::Refused(Errno::ENOENT) => "it was closed meanwhile".to_string(),
            e => e.to_string(),
        };
        refused(why).into()
    })
}
