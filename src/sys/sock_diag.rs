//! TCP and UDP sockets of a network namespace through `NETLINK_SOCK_DIAG`
//! (sock_diag(7)): one `SOCK_DIAG_BY_FAMILY` dump per family and protocol,
//! answered as binary records, instead of the text the kernel formats one
//! page at a time for `/proc/PID/net/tcp` (several times slower with
//! thousands of sockets). What `ss` uses.
//!
//! A dump answers for the namespace the netlink socket was created in
//! (`sock_net(skb->sk)` in net/ipv4/inet_diag.c), so [`DiagSocket::for_pid`]
//! creates it inside the target's namespace when that is not reach's own.
//! The messages are built and parsed by the rust-netlink crates.

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use netlink_sys::{Socket, SocketAddr as NetlinkAddr};
use nix::errno::Errno;
use nix::sched::CloneFlags;
use std::fs::File;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::os::unix::fs::MetadataExt;

#[derive(Debug, thiserror::Error)]
pub enum DiagError {
    #[error("cannot open the network namespace of pid {pid}: {source}")]
    Namespace { pid: i32, source: std::io::Error },
    #[error("cannot enter the network namespace of pid {pid}: {errno}")]
    Setns { pid: i32, errno: Errno },
    #[error("cannot open a sock_diag netlink socket: {0}")]
    Socket(std::io::Error),
    #[error("sock_diag netlink: {0}")]
    Io(std::io::Error),
    /// The kernel answered the dump with an error: `ENOENT` when the
    /// protocol's diag module (`tcp_diag`, `udp_diag`) is missing.
    #[error("sock_diag refused the dump: {0}")]
    Refused(Errno),
    #[error("malformed sock_diag answer: {0}")]
    Malformed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
}

/// One socket of a dump (`struct inet_diag_msg`,
/// include/uapi/linux/inet_diag.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InetSock {
    /// The TCP state number (include/net/tcp_states.h), also used by UDP.
    pub state: u8,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// `idiag_rqueue`: bytes to read, or for LISTEN the accept backlog.
    pub rqueue: u32,
    /// `idiag_wqueue`: bytes unacknowledged (TCP) or allocated for
    /// sending (UDP); for LISTEN the backlog limit.
    pub wqueue: u32,
    pub inode: u64,
}

/// A `NETLINK_SOCK_DIAG` socket bound to one network namespace.
pub struct DiagSocket {
    socket: Socket,
    buf: Vec<u8>,
    sequence: u32,
    /// A dump was stopped early and its remaining messages are still
    /// queued: the kernel runs one dump per socket at a time.
    mid_dump: bool,
}

impl DiagSocket {
    /// A socket that answers for the network namespace of `pid`, whose
    /// `/proc` directory is `dir`.
    ///
    /// If that is reach's own, the socket is made here. Otherwise a
    /// short-lived thread `setns(CLONE_NEWNET)`s into it (CAP_SYS_ADMIN
    /// needed) and makes the socket there: a socket keeps the namespace it
    /// was created in, and the thread, whose namespace changed, ends.
    pub fn for_pid(pid: i32, dir: &str) -> Result<DiagSocket, DiagError> {
        let ns_error = |source| DiagError::Namespace { pid, source };
        let theirs = File::open(format!("{dir}/ns/net")).map_err(ns_error)?;
        let their_ns = theirs.metadata().map_err(ns_error)?;
        // thread-self, not self: a namespace is per thread.
        let ours = std::fs::metadata("/proc/thread-self/ns/net").map_err(ns_error)?;
        let socket = if (their_ns.dev(), their_ns.ino()) == (ours.dev(), ours.ino()) {
            new_socket()?
        } else {
            std::thread::Builder::new()
                .name("reach-netns".into())
                .stack_size(64 << 10)
                .spawn(move || {
                    nix::sched::setns(&theirs, CloneFlags::CLONE_NEWNET)
                        .map_err(|errno| DiagError::Setns { pid, errno })?;
                    new_socket()
                })
                .map_err(DiagError::Socket)?
                .join()
                .map_err(|_| DiagError::Socket(std::io::Error::other("netns thread panicked")))??
        };
        Ok(DiagSocket {
            socket,
            buf: vec![0; 64 << 10],
            sequence: 0,
            mid_dump: false,
        })
    }

    /// Every socket of `family` and `protocol` in the namespace, passed to
    /// `each` as it arrives; `each` may stop the dump early.
    ///
    /// The states asked for are the ones `/proc/net/tcp` can show for a
    /// socket held by a descriptor. Left out: TIME_WAIT and NEW_SYN_RECV,
    /// the kernel's mini sockets, never held by a descriptor (inode 0);
    /// and BOUND_INACTIVE (Linux 6.8+: bound, neither listening nor
    /// connected), which `/proc/net/tcp` does not list, and whose lookup
    /// walks every bound socket of the namespace.
    pub fn dump_inet(
        &mut self,
        family: Family,
        protocol: Protocol,
        mut each: impl FnMut(InetSock) -> ControlFlow<()>,
    ) -> Result<(), DiagError> {
        if self.mid_dump {
            self.drain()?;
        }
        // include/net/tcp_states.h: ESTABLISHED = 1 … CLOSING = 11.
        const TIME_WAIT: u32 = 6;
        let states = (1..=11).fold(0u32, |m, st| m | 1 << st) & !(1 << TIME_WAIT);
        let (af, socket_id) = match family {
            Family::V4 => (AF_INET, SocketId::new_v4()),
            Family::V6 => (AF_INET6, SocketId::new_v6()),
        };
        let request = InetRequest {
            family: af,
            protocol: match protocol {
                Protocol::Tcp => IPPROTO_TCP,
                Protocol::Udp => IPPROTO_UDP,
            },
            extensions: ExtensionFlags::empty(),
            states: StateFlags::from_bits_retain(states),
            socket_id,
        };
        self.sequence += 1;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, SockDiagMessage::InetRequest(request).into());
        packet.finalize();
        let mut out = vec![0; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket
            .send_to(&out, &NetlinkAddr::new(0, 0), 0)
            .map_err(DiagError::Io)?;
        self.mid_dump = true;
        self.receive(|payload| match payload {
            NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                let h = &r.header;
                let sock = InetSock {
                    state: h.state,
                    local: SocketAddr::new(h.socket_id.source_address, h.socket_id.source_port),
                    remote: SocketAddr::new(
                        h.socket_id.destination_address,
                        h.socket_id.destination_port,
                    ),
                    rqueue: h.recv_queue,
                    wqueue: h.send_queue,
                    inode: u64::from(h.inode),
                };
                each(sock)
            }
            _ => ControlFlow::Continue(()),
        })
    }

    /// Read the rest of an abandoned dump.
    fn drain(&mut self) -> Result<(), DiagError> {
        self.receive(|_| ControlFlow::Continue(()))
    }

    /// Pass each message of the current dump to `each` until the kernel
    /// says it is done, or `each` stops (the rest of the dump then stays
    /// queued, unless its end was in the same read).
    fn receive(
        &mut self,
        mut each: impl FnMut(NetlinkPayload<SockDiagMessage>) -> ControlFlow<()>,
    ) -> Result<(), DiagError> {
        let mut stopped = false;
        loop {
            let n = loop {
                match self.socket.recv(&mut &mut self.buf[..], 0) {
                    Ok(n) => break n.min(self.buf.len()),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(DiagError::Io(e)),
                }
            };
            let mut at = 0;
            while at < n {
                let message = NetlinkMessage::<SockDiagMessage>::deserialize(&self.buf[at..n])
                    .map_err(|e| DiagError::Malformed(e.to_string()))?;
                let len = message.header.length as usize;
                if len == 0 {
                    return Err(DiagError::Malformed("zero-length message".into()));
                }
                // Messages are 4-byte aligned (NLMSG_ALIGN).
                at += (len + 3) & !3;
                match message.payload {
                    NetlinkPayload::Done(_) => {
                        self.mid_dump = false;
                        return Ok(());
                    }
                    NetlinkPayload::Error(e) if !stopped => {
                        self.mid_dump = false;
                        let code = e.code.map_or(0, |c| c.get().abs());
                        return Err(DiagError::Refused(Errno::from_raw(code)));
                    }
                    NetlinkPayload::Error(_) => {
                        self.mid_dump = false;
                        return Ok(());
                    }
                    payload => {
                        stopped = stopped || each(payload).is_break();
                    }
                }
            }
            if stopped {
                return Ok(());
            }
        }
    }
}

fn new_socket() -> Result<Socket, DiagError> {
    Socket::new(NETLINK_SOCK_DIAG).map_err(DiagError::Socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn inode(fd: &impl std::os::fd::AsRawFd) -> u64 {
        std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .unwrap()
            .ino()
    }

    #[test]
    fn dumps_own_tcp_sockets() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (want_l, want_c) = (inode(&listener), inode(&client));
        let mut diag = DiagSocket::for_pid(std::process::id() as i32, "/proc/self").unwrap();
        let mut found = Vec::new();
        diag.dump_inet(Family::V4, Protocol::Tcp, |s| {
            if s.inode == want_l || s.inode == want_c {
                found.push(s);
            }
            ControlFlow::Continue(())
        })
        .unwrap();
        let l = found.iter().find(|s| s.inode == want_l).unwrap();
        assert_eq!(l.state, 10, "LISTEN");
        assert_eq!(l.local, listener.local_addr().unwrap());
        let c = found.iter().find(|s| s.inode == want_c).unwrap();
        assert_eq!(c.state, 1, "ESTABLISHED");
        assert_eq!(c.remote, listener.local_addr().unwrap());
    }

    #[test]
    fn a_stopped_dump_leaves_the_socket_usable() {
        let _listeners: Vec<_> = (0..3)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut diag = DiagSocket::for_pid(std::process::id() as i32, "/proc/self").unwrap();
        let mut first = 0;
        diag.dump_inet(Family::V4, Protocol::Tcp, |_| {
            first += 1;
            ControlFlow::Break(())
        })
        .unwrap();
        assert_eq!(first, 1);
        let mut all = 0;
        diag.dump_inet(Family::V4, Protocol::Tcp, |_| {
            all += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
        assert!(all >= 3, "{all}");
    }
}
