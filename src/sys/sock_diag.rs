//! Sockets of a network namespace through `NETLINK_SOCK_DIAG`
//! (sock_diag(7)): one `SOCK_DIAG_BY_FAMILY` dump per family and protocol,
//! answered as binary records, instead of the text the kernel formats one
//! page at a time for `/proc/PID/net/tcp` (several times slower with
//! thousands of sockets). What `ss` uses, with what `ss -i` shows of TCP
//! (`tcp_info`: rtt, retransmits, how long ago data was sent, received
//! and acknowledged), unix sockets' peers and queues (`ss -x`), and
//! `SOCK_DESTROY` (`ss -K`): abort a TCP connection from outside.
//!
//! A dump answers for the namespace the netlink socket was created in
//! (`sock_net(skb->sk)` in net/ipv4/inet_diag.c), so [`DiagSocket::for_pid`]
//! creates it inside the target's namespace when that is not reach's own.
//! The messages are built and parsed by the rust-netlink crates.

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    NetlinkSerializable,
};
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP};
use netlink_packet_sock_diag::inet::nlas::Nla as InetNla;
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags, Timer};
use netlink_packet_sock_diag::unix::nlas::Nla as UnixNla;
use netlink_packet_sock_diag::unix::{ShowFlags, StateFlags as UnixStates, UnixRequest};
use netlink_packet_sock_diag::{SockDiagDestroy, SockDiagMessage};
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
    /// The kernel's name for the socket (`sock_gen_cookie`): what
    /// `SOCK_DESTROY` is aimed with.
    pub cookie: u64,
    /// The pending TCP timer, as `ss -o` shows it.
    pub timer: Option<SockTimer>,
    /// `tcp_info`, for TCP.
    pub tcp: Option<TcpInfo>,
}

/// A TCP timer: `on` (retransmit), `keepalive`, `timewait` or `persist`
/// (zero-window probe), when it fires, and the retransmits or probes so
/// far (`ss -o`: `timer:(on,200ms,2)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockTimer {
    pub kind: &'static str,
    pub expires_ms: u64,
    pub retrans: u8,
}

/// What `ss -i` shows of a TCP socket (`struct tcp_info`,
/// include/uapi/linux/tcp.h). Times in microseconds as the kernel keeps
/// them, except the `last_*` ages, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpInfo {
    pub rto_us: u32,
    pub rtt_us: u32,
    pub rttvar_us: u32,
    pub cwnd: u32,
    /// Segments sent and not yet acknowledged.
    pub unacked: u32,
    /// Retransmitted segments not yet acknowledged (`tcpi_retrans`).
    pub retrans: u32,
    /// Retransmits over the connection's life (`tcpi_total_retrans`).
    pub retrans_total: u32,
    /// How long ago data was last sent, received, and an ack received.
    pub last_send_ms: u32,
    pub last_recv_ms: u32,
    pub last_ack_ms: u32,
}

impl TcpInfo {
    /// From the raw `INET_DIAG_INFO` payload. Kernels send the `tcp_info`
    /// they know, shorter on old ones: every field read here is in the
    /// first 104 bytes, there since Linux 2.6.
    pub fn parse(raw: &[u8]) -> Option<TcpInfo> {
        let u32_at = |at: usize| Some(u32::from_ne_bytes(raw.get(at..at + 4)?.try_into().ok()?));
        Some(TcpInfo {
            rto_us: u32_at(8)?,
            unacked: u32_at(24)?,
            retrans: u32_at(36)?,
            last_send_ms: u32_at(44)?,
            last_recv_ms: u32_at(52)?,
            last_ack_ms: u32_at(56)?,
            rtt_us: u32_at(68)?,
            rttvar_us: u32_at(72)?,
            cwnd: u32_at(80)?,
            retrans_total: u32_at(100)?,
        })
    }
}

/// One unix socket of a dump (`struct unix_diag_msg` and its
/// attributes, include/uapi/linux/unix_diag.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnixSock {
    pub inode: u64,
    /// The inode of the socket at the other end, for a connected one.
    pub peer: Option<u64>,
    /// For a listener: connections waiting for accept, and the backlog
    /// limit; else bytes queued to read, and memory of what it sent and
    /// the peer has not read yet.
    pub rqueue: Option<u32>,
    pub wqueue: Option<u32>,
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
            // tcp_info for TCP (UDP has none).
            extensions: match protocol {
                Protocol::Tcp => ExtensionFlags::INFO,
                Protocol::Udp => ExtensionFlags::empty(),
            },
            states: StateFlags::from_bits_retain(states),
            socket_id,
        };
        self.send(
            NLM_F_REQUEST | NLM_F_DUMP,
            SockDiagMessage::InetRequest(request).into(),
        )?;
        self.mid_dump = true;
        self.receive(|payload| match payload {
            NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                let h = &r.header;
                let tcp = r.nlas.iter().find_map(|nla| match nla {
                    InetNla::TcpInfo(raw) => TcpInfo::parse(raw),
                    _ => None,
                });
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
                    cookie: u64::from_ne_bytes(h.socket_id.cookie),
                    timer: h.timer.as_ref().map(sock_timer),
                    tcp,
                };
                each(sock)
            }
            _ => ControlFlow::Continue(()),
        })
    }

    /// Every unix socket of the namespace, with its peer and queues.
    pub fn dump_unix(&mut self, mut each: impl FnMut(UnixSock)) -> Result<(), DiagError> {
        if self.mid_dump {
            self.drain()?;
        }
        let request = UnixRequest {
            state_flags: UnixStates::from_bits_retain(u32::MAX),
            inode: 0,
            show_flags: ShowFlags::PEER | ShowFlags::RQLEN,
            cookie: [0xff; 8],
        };
        self.send(
            NLM_F_REQUEST | NLM_F_DUMP,
            SockDiagMessage::UnixRequest(request).into(),
        )?;
        self.mid_dump = true;
        self.receive(|payload| {
            if let NetlinkPayload::InnerMessage(SockDiagMessage::UnixResponse(r)) = payload {
                let mut sock = UnixSock {
                    inode: u64::from(r.header.inode),
                    peer: None,
                    rqueue: None,
                    wqueue: None,
                };
                for nla in &r.nlas {
                    match nla {
                        UnixNla::Peer(ino) => sock.peer = Some(u64::from(*ino)),
                        UnixNla::ReceiveQueueLength(r, w) => {
                            (sock.rqueue, sock.wqueue) = (Some(*r), Some(*w))
                        }
                        _ => {}
                    }
                }
                each(sock);
            }
            ControlFlow::Continue(())
        })
    }

    /// Abort the TCP connection `sock` (found by a dump of this socket's
    /// namespace) with `SOCK_DESTROY`, as `ss -K` does: the kernel resets
    /// it (the peer gets an RST, a thread blocked on it wakes with
    /// ECONNABORTED). Needs CAP_NET_ADMIN and a kernel built with
    /// CONFIG_INET_DIAG_DESTROY; the error says which is missing.
    pub fn destroy(&mut self, sock: &InetSock) -> Result<(), DiagError> {
        if self.mid_dump {
            self.drain()?;
        }
        let mut id = match sock.local {
            SocketAddr::V4(_) => SocketId::new_v4(),
            SocketAddr::V6(_) => SocketId::new_v6(),
        };
        id.source_address = sock.local.ip();
        id.source_port = sock.local.port();
        id.destination_address = sock.remote.ip();
        id.destination_port = sock.remote.port();
        id.cookie = sock.cookie.to_ne_bytes();
        let request = InetRequest {
            family: if sock.local.is_ipv4() {
                AF_INET
            } else {
                AF_INET6
            },
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::from_bits_retain(u32::MAX),
            socket_id: id,
        };
        let message = SockDiagDestroy::new(SockDiagMessage::InetRequest(request));
        self.send(
            NLM_F_REQUEST | NLM_F_ACK,
            NetlinkPayload::InnerMessage(message),
        )?;
        // The answer is one NLMSG_ERROR: code 0 is the acknowledgement.
        let n = loop {
            match self.socket.recv(&mut &mut self.buf[..], 0) {
                Ok(n) => break n.min(self.buf.len()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(DiagError::Io(e)),
            }
        };
        let answer = NetlinkMessage::<SockDiagMessage>::deserialize(&self.buf[..n])
            .map_err(|e| DiagError::Malformed(e.to_string()))?;
        match answer.payload {
            NetlinkPayload::Error(e) => match e.code.map_or(0, |c| c.get().abs()) {
                0 => Ok(()),
                code => Err(DiagError::Refused(Errno::from_raw(code))),
            },
            _ => Ok(()),
        }
    }

    /// Send one request.
    fn send<T: NetlinkSerializable>(
        &mut self,
        flags: u16,
        payload: NetlinkPayload<T>,
    ) -> Result<(), DiagError> {
        self.sequence += 1;
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, payload);
        packet.finalize();
        let mut out = vec![0; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket
            .send_to(&out, &NetlinkAddr::new(0, 0), 0)
            .map_err(DiagError::Io)?;
        Ok(())
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

fn sock_timer(timer: &Timer) -> SockTimer {
    let (kind, expires, retrans) = match timer {
        Timer::Retransmit(d, n) => ("on", *d, *n),
        Timer::KeepAlive(d) => ("keepalive", *d, 0),
        Timer::TimeWait => ("timewait", Default::default(), 0),
        Timer::Probe(d) => ("persist", *d, 0),
    };
    SockTimer {
        kind,
        expires_ms: expires.as_millis() as u64,
        retrans,
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

    /// The dump of this process's own TCP socket `fd`.
    fn own_tcp(diag: &mut DiagSocket, fd: &impl std::os::fd::AsRawFd) -> InetSock {
        let want = inode(fd);
        let mut found = None;
        diag.dump_inet(Family::V4, Protocol::Tcp, |s| {
            if s.inode == want {
                found = Some(s);
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        })
        .unwrap();
        found.expect("own socket in the dump")
    }

    #[test]
    fn tcp_sockets_come_with_tcp_info_cookie_and_listen_backlog() {
        use std::io::Write;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, _) = listener.accept().unwrap();
        client.write_all(b"hello").unwrap();
        let mut diag = DiagSocket::for_pid(std::process::id() as i32, "/proc/self").unwrap();
        let c = own_tcp(&mut diag, &client);
        let info = c.tcp.expect("tcp_info");
        assert!(info.rtt_us > 0 && info.rto_us >= 200_000, "{info:?}");
        assert!(info.cwnd > 0);
        assert_ne!(c.cookie, 0);
        let l = own_tcp(&mut diag, &listener);
        // std's listen backlog is 128: what ss shows as Send-Q.
        assert_eq!(l.wqueue, 128);
    }

    #[test]
    fn unix_sockets_name_their_peer() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (ia, ib) = (inode(&a), inode(&b));
        let mut diag = DiagSocket::for_pid(std::process::id() as i32, "/proc/self").unwrap();
        let mut peers = std::collections::HashMap::new();
        diag.dump_unix(|u| {
            peers.insert(u.inode, u.peer);
        })
        .unwrap();
        assert_eq!(peers[&ia], Some(ib));
        assert_eq!(peers[&ib], Some(ia));
    }

    #[test]
    fn destroy_aborts_a_connection_by_cookie() {
        use std::io::Read;
        if !nix::unistd::geteuid().is_root() {
            return; // needs CAP_NET_ADMIN
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let mut diag = DiagSocket::for_pid(std::process::id() as i32, "/proc/self").unwrap();
        let c = own_tcp(&mut diag, &client);
        diag.destroy(&c).unwrap();
        let mut buf = [0u8; 8];
        let err = client.read(&mut buf).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ECONNABORTED));
        // The peer got a reset.
        let err = server.read(&mut buf).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ECONNRESET));
        // A cookie that names nothing.
        let gone = InetSock {
            cookie: c.cookie ^ 1,
            ..c
        };
        assert!(matches!(
            diag.destroy(&gone),
            Err(DiagError::Refused(Errno::ENOENT))
        ));
    }
}
