//! A target's open descriptors with socket details, read from `/proc` and
//! sock_diag without stopping it, and the actions on a socket from outside
//! (shutdown, SOCK_DESTROY).
//!
//! - `listing.rs`: walking `/proc/PID/fd` and `fdinfo` (one `readlink` and
//!   one `fdinfo` read per descriptor, split with a helper thread);
//! - `sockets.rs`: the socket tables of the **target's** network namespace
//!   (sock_diag dumps, `/proc/PID/net/…` text where those cannot be had),
//!   joined to the descriptors by inode;
//! - `waiters.rs`: which threads wait on which descriptor, however they
//!   wait (a `read`, a `poll` array, a `select` set, an epoll instance);
//! - `actions.rs`: `shutdown` (pidfd_getfd, else an injected call) and
//!   `destroy` (SOCK_DESTROY).
//!
//! Odd data never aborts the listing: a descriptor closed meanwhile is
//! left out, a field that does not parse reads `?`.

mod actions;
mod listing;
mod sockets;
mod waiters;

pub use actions::{destroy, shutdown, shutdown_injected};
pub use listing::flag_names;

use super::{Error, Result, procinfo};
use crate::sys::procdir::ProcDir;
use crate::sys::sock_diag::DiagError;
pub use crate::sys::sock_diag::{SockTimer, TcpInfo};
use listing::{Walker, fd_numbers, numbers_to_try};
use nix::errno::Errno;
use sockets::{EARLY_TABLES, SockRow, Tables, join_sockets};
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use waiters::add_waiters;

/// What a descriptor refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Socket,
    File,
    Dir,
    /// An anonymous pipe or a named FIFO.
    Pipe,
    /// An anon inode: eventfd, epoll, timerfd, signalfd, inotify, …
    Anon,
    Char,
    Block,
    /// A namespace (`net:[…]`, `mnt:[…]`, …).
    Ns,
    /// Vanished or unrecognised.
    Unknown,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Socket => "socket",
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Pipe => "pipe",
            Kind::Anon => "anon",
            Kind::Char => "char",
            Kind::Block => "block",
            Kind::Ns => "ns",
            Kind::Unknown => "?",
        }
    }
}

/// One open descriptor of the target. Socket fields are `None` for other
/// kinds; a socket field the kernel's table did not make clear is `"?"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fd {
    pub fd: i32,
    pub kind: Kind,
    /// What `/proc/PID/fd/N` links to (` (deleted)` included).
    pub path: String,
    /// The file was unlinked (or is a memfd).
    pub deleted: bool,
    /// For anon inodes: `eventfd`, `epoll`, `timerfd`, `signalfd`, …
    pub anon: Option<String>,
    pub inode: Option<u64>,
    /// File offset, from `/proc/PID/fdinfo/N`.
    pub pos: Option<u64>,
    /// Open flags (`O_*`, octal in fdinfo), from `/proc/PID/fdinfo/N`.
    pub flags: Option<u32>,
    /// `tcp`, `tcp6`, `udp`, `udp6`, `unix`, `netlink`, `raw`, `packet`, …
    pub proto: Option<String>,
    /// `stream`, `dgram`, `seqpacket`, `raw`.
    pub sock_type: Option<String>,
    /// `ESTABLISHED`, `CLOSE_WAIT`, `LISTEN`, … (the kernel's spelling,
    /// as netstat and lsof show it; `ss` abbreviates and uses dashes:
    /// `ESTAB`, `CLOSE-WAIT`); `UNCONN` for an unconnected datagram
    /// socket; `CLOSE` for a TCP socket in no table of the kernel's (never
    /// bound, or shut down and released).
    pub state: Option<String>,
    /// `ip:port` (`[ip6]:port`), a unix path (`@name` if abstract), …
    pub local: Option<String>,
    pub remote: Option<String>,
    pub local_port: Option<u16>,
    pub remote_port: Option<u16>,
    /// Bytes queued to read (for LISTEN: connections waiting for accept).
    pub rx_queue: Option<u64>,
    /// Bytes queued to send (for LISTEN: the backlog limit, as `ss` shows
    /// it; 0 where only `/proc/PID/net` could be read, which lacks it).
    pub tx_queue: Option<u64>,
    /// The kernel's cookie for the socket (sock_diag): what `destroy`
    /// aims at.
    pub cookie: Option<u64>,
    /// What `ss -i` shows of a TCP socket (sock_diag only).
    pub tcp: Option<TcpInfo>,
    /// Its pending TCP timer, as `ss -o` shows it.
    pub timer: Option<SockTimer>,
    /// A connected unix socket's peer: its inode, and who holds it where
    /// reach found it (this process or another).
    pub peer_inode: Option<u64>,
    pub peer: Option<Peer>,
    /// Threads blocked in a system call on this descriptor.
    pub waiters: Vec<i32>,
}

/// Where the other end of a unix socket is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub pid: i32,
    pub fd: i32,
    /// The holder's `comm`.
    pub name: String,
    /// The holder is the process listed.
    pub same_process: bool,
}

impl Fd {
    fn new(fd: i32, kind: Kind, path: String) -> Fd {
        Fd {
            fd,
            kind,
            path,
            deleted: false,
            anon: None,
            inode: None,
            pos: None,
            flags: None,
            proto: None,
            sock_type: None,
            state: None,
            local: None,
            remote: None,
            local_port: None,
            remote_port: None,
            rx_queue: None,
            tx_queue: None,
            cookie: None,
            tcp: None,
            timer: None,
            peer_inode: None,
            peer: None,
            waiters: Vec::new(),
        }
    }

    /// The open flags by name: `O_RDWR|O_NONBLOCK|O_CLOEXEC`.
    pub fn flag_names(&self) -> Option<String> {
        self.flags.map(flag_names)
    }

    fn set_socket(&mut self, s: SockRow) {
        self.proto = Some(s.proto.to_string());
        self.sock_type = s.sock_type.map(str::to_string);
        self.state = Some(s.state);
        self.local = Some(s.local);
        self.remote = s.remote;
        self.local_port = s.local_port;
        self.remote_port = s.remote_port;
        self.rx_queue = s.rx_queue;
        self.tx_queue = s.tx_queue;
        self.cookie = s.cookie;
        self.tcp = s.tcp;
        self.timer = s.timer;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FdError {
    #[error("fd {fd} is a {kind}, not a socket")]
    NotASocket { fd: i32, kind: &'static str },
    #[error("shutdown how must be SHUT_RD (0), SHUT_WR (1) or SHUT_RDWR (2), not {0}")]
    BadHow(i64),
    #[error("fd {fd} is no longer open in pid {pid}")]
    Closed { pid: i32, fd: i32 },
    #[error(
        "fd {fd} now refers to another file (inode {now}, was {was}): the target closed it and reused the number; list fds() again"
    )]
    Reused { fd: i32, was: u64, now: u64 },
    #[error("shutdown of fd {fd} failed: {errno}")]
    Shutdown { fd: i32, errno: Errno },
    #[error("shutdown of fd {fd} inside the target failed: {}", errno.map_or("unknown error".to_string(), |e| Errno::from_raw(e).to_string()))]
    Injected { fd: i32, errno: Option<i32> },
    #[error("socket details by sock_diag: {0}")]
    SockDiag(#[from] DiagError),
    #[error("fd {fd} is {what}, not a TCP connection: only TCP sockets can be destroyed")]
    NotTcp { fd: i32, what: String },
    #[error("cannot destroy fd {fd}: {why}; nothing was changed")]
    Destroy { fd: i32, why: String },
}

/// Where TCP and UDP socket details come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketSource {
    /// sock_diag netlink, and the `/proc/PID/net` text tables where that
    /// cannot be had (no CAP_SYS_ADMIN to enter the target's namespace,
    /// no `tcp_diag`/`udp_diag` module, …). What [`list`] uses.
    Auto,
    /// Only the `/proc/PID/net` text tables: the fallback, forced.
    ProcNet,
    /// Only sock_diag for TCP and UDP: an error if it cannot be had.
    SockDiag,
}

/// How a socket was shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownPath {
    /// `pidfd_getfd` copied the descriptor into reach and `shutdown()` ran
    /// on the copy: no stop window at all.
    Pidfd,
    /// `pidfd_getfd` is unavailable (Linux < 5.6), so `shutdown()` was
    /// called inside the target.
    InjectedCall,
}

impl ShutdownPath {
    /// `pidfd_getfd` or `injected call`, as results name it.
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownPath::Pidfd => "pidfd_getfd",
            ShutdownPath::InjectedCall => "injected call",
        }
    }

    /// How it was done, as the line narrating it says.
    pub fn told(self) -> &'static str {
        match self {
            ShutdownPath::Pidfd => "through pidfd_getfd, without stopping it",
            ShutdownPath::InjectedCall => {
                "through an injected shutdown() call (pidfd_getfd is unavailable)"
            }
        }
    }
}

fn proc_error(pid: i32, e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => Error::NoSuchProcess(format!("pid {pid}")),
        std::io::ErrorKind::PermissionDenied => Error::NotPermitted {
            pid,
            access: crate::process::procinfo::Access::ReadFds,
        },
        _ => Error::Proc {
            pid,
            msg: e.to_string(),
        },
    }
}

/// Every open descriptor of `pid`, in fd order, with socket details and
/// waiters.
pub fn list(pid: i32) -> Result<Vec<Fd>> {
    list_with(pid, SocketSource::Auto)
}

/// [`list`], with TCP and UDP details taken from `source`.
///
/// Two threads share the work: this one walks the descriptors while a
/// second one reads the first socket tables (the TCP ones, by far the
/// largest in practice) and then helps with the walk. One `readlink` per
/// descriptor is the bulk of the cost and there is nothing cheaper that
/// names every kind of descriptor (`stat` through the link costs the
/// same), so it is what gets split. If the target turns out to hold no
/// socket, the table read is abandoned.
pub fn list_with(pid: i32, source: SocketSource) -> Result<Vec<Fd>> {
    let dir = procinfo::dir(pid);
    let fd_path = format!("{dir}/fd");
    let fd_dir = ProcDir::open(Path::new(&fd_path)).map_err(|e| proc_error(pid, e.into()))?;
    let walker = Walker {
        dir: &dir,
        fd_dir,
        info_dir: ProcDir::open(Path::new(&format!("{dir}/fdinfo"))).ok(),
        numbers: OnceLock::new(),
        next: AtomicUsize::new(0),
    };
    let abandon = AtomicBool::new(false);
    std::thread::scope(|s| {
        let helper = s.spawn(|| {
            let mut tables = Tables::new(pid, &dir, source);
            let early = (0..EARLY_TABLES)
                .map(|t| tables.load(t, &abandon))
                .collect::<std::result::Result<Vec<_>, _>>();
            (tables, early, walker.walk())
        });
        // Which numbers to read is the first part of the walk: the
        // helper's tables are under way meanwhile.
        let numbers = match numbers_to_try(&dir, &walker.fd_dir) {
            Some(numbers) => Ok(numbers),
            None => std::fs::read_dir(&fd_path).map(fd_numbers),
        };
        let (numbers, failed) = match numbers {
            Ok(numbers) => (numbers, None),
            // The helper waits for a list: give it an empty one.
            Err(e) => (Vec::new(), Some(e)),
        };
        let _ = walker.numbers.set(numbers);
        if let Some(e) = failed {
            abandon.store(true, Ordering::Relaxed);
            return Err(proc_error(pid, e));
        }
        let mut chunks = walker.walk();
        // Every descriptor is claimed by now; the helper only walks once
        // its tables are read, so what it holds does not matter here.
        if !chunks
            .iter()
            .flat_map(|(_, c)| c)
            .any(|f| f.kind == Kind::Socket)
        {
            abandon.store(true, Ordering::Relaxed);
        }
        let (tables, early, theirs) = helper
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        // Chunks in the order of `numbers` give fd order: no sort of the
        // (large) Fd values needed.
        chunks.extend(theirs);
        chunks.sort_unstable_by_key(|(start, _)| *start);
        let mut fds = Vec::with_capacity(chunks.iter().map(|(_, c)| c.len()).sum());
        for (_, chunk) in chunks {
            fds.extend(chunk);
        }
        if !fds.is_sorted_by_key(|f| f.fd) {
            fds.sort_unstable_by_key(|f| f.fd);
        }
        join_sockets(&dir, &mut fds, tables, early.map_err(FdError::from)?)
            .map_err(FdError::from)?;
        add_waiters(pid, &mut fds);
        Ok(fds)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_own_descriptors() {
        use std::io::{Seek, SeekFrom, Write};
        use std::os::fd::AsRawFd;
        let me = std::process::id() as i32;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let path = std::env::temp_dir().join(format!("reach-fds-unit-{me}"));
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(b"hello world").unwrap();
        file.seek(SeekFrom::Start(5)).unwrap();
        std::fs::remove_file(&path).unwrap();
        let fds = list(me).unwrap();
        let by_fd = |n: i32| fds.iter().find(|f| f.fd == n).unwrap();
        let l = by_fd(listener.as_raw_fd());
        assert_eq!(l.kind, Kind::Socket);
        assert_eq!(l.proto.as_deref(), Some("tcp"));
        assert_eq!(l.state.as_deref(), Some("LISTEN"));
        assert_eq!(l.local_port, Some(port));
        let u = by_fd(a.as_raw_fd());
        assert_eq!(u.proto.as_deref(), Some("unix"));
        assert_eq!(u.state.as_deref(), Some("ESTABLISHED"));
        let f = by_fd(file.as_raw_fd());
        assert_eq!(f.kind, Kind::File);
        assert_eq!(f.pos, Some(5));
        assert!(f.deleted);
    }
}
