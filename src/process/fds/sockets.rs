//! The socket tables of the target's network namespace, joined to its
//! descriptors by inode.
//!
//! TCP and UDP come from sock_diag dumps made in that namespace
//! (`sys::sock_diag`, with `tcp_info` for TCP), the other protocols (and
//! TCP/UDP when netlink cannot be had) from the text tables under
//! `/proc/PID/net/…`; both give the same fields. Tables are read in order
//! of how common they are and only until every socket is found.

use super::{Fd, Kind, Peer, SocketSource};
use crate::process::procinfo;
use crate::sys::sock_diag::{self, DiagError, DiagSocket, InetSock, SockTimer, TcpInfo, UnixSock};
use crate::sys::socket;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One row of a socket table, as the Fd fields want it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SockRow {
    pub(super) proto: &'static str,
    pub(super) sock_type: Option<&'static str>,
    pub(super) state: String,
    pub(super) local: String,
    pub(super) remote: Option<String>,
    pub(super) local_port: Option<u16>,
    pub(super) remote_port: Option<u16>,
    pub(super) rx_queue: Option<u64>,
    pub(super) tx_queue: Option<u64>,
    pub(super) cookie: Option<u64>,
    pub(super) tcp: Option<TcpInfo>,
    pub(super) timer: Option<SockTimer>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// tcp, udp, raw, icmp and their v6 twins (net/ipv4/tcp_ipv4.c,
    /// `get_tcp4_sock`; net/ipv4/udp.c, `udp4_format_sock`).
    Inet {
        tcp: bool,
        sock_type: &'static str,
    },
    Unix,
    Netlink,
    Packet,
}

/// One socket table of the target's network namespace.
struct TableSpec {
    /// The file under `/proc/PID/net`; also the `proto` of its sockets.
    file: &'static str,
    format: Format,
    /// The sock_diag dump that gives the same rows, where there is one.
    diag: Option<(sock_diag::Family, sock_diag::Protocol)>,
}

const fn table(file: &'static str, format: Format) -> TableSpec {
    TableSpec {
        file,
        format,
        diag: None,
    }
}

const fn diag_table(
    file: &'static str,
    format: Format,
    family: sock_diag::Family,
    protocol: sock_diag::Protocol,
) -> TableSpec {
    TableSpec {
        file,
        format,
        diag: Some((family, protocol)),
    }
}

/// The socket tables, most common first. The first [`EARLY_TABLES`] are
/// read while the descriptors are being walked.
const TABLES: &[TableSpec] = {
    use sock_diag::Family::{V4, V6};
    use sock_diag::Protocol::{Tcp, Udp};
    &[
        diag_table("tcp", INET_TCP, V4, Tcp),
        diag_table("tcp6", INET_TCP, V6, Tcp),
        table("unix", Format::Unix),
        diag_table("udp", INET_UDP, V4, Udp),
        diag_table("udp6", INET_UDP, V6, Udp),
        table("netlink", Format::Netlink),
        table("raw", INET_RAW),
        table("raw6", INET_RAW),
        table("packet", Format::Packet),
        table("icmp", INET_UDP),
        table("icmp6", INET_UDP),
        table("udplite", INET_UDP),
        table("udplite6", INET_UDP),
    ]
};
pub(super) const EARLY_TABLES: usize = 2;
const INET_TCP: Format = Format::Inet {
    tcp: true,
    sock_type: "stream",
};
const INET_UDP: Format = Format::Inet {
    tcp: false,
    sock_type: "dgram",
};
const INET_RAW: Format = Format::Inet {
    tcp: false,
    sock_type: "raw",
};

/// Read a whole table, or `None` if it does not exist (protocol not built
/// in) or `abandon` was set meanwhile. Big reads: the kernel formats
/// one page per `read()` whatever the size, but fewer calls still help.
fn read_table(dir: &str, file: &str, abandon: &AtomicBool) -> Option<Vec<u8>> {
    let mut f = std::fs::File::open(format!("{dir}/net/{file}")).ok()?;
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0;
    loop {
        if abandon.load(Ordering::Relaxed) {
            return None;
        }
        if buf.len() - len < 1 << 15 {
            buf.resize(buf.len() * 2, 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => {
                buf.truncate(len);
                return Some(buf);
            }
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// Reads the tables of one target, each from sock_diag or `/proc`.
pub(super) struct Tables {
    pid: i32,
    /// The process's `/proc` directory ([`procinfo::dir`]).
    dir: String,
    source: SocketSource,
    diag: Diag,
}

enum Diag {
    NotYet,
    Open(DiagSocket),
    /// Could not be had: the `/proc` tables stand in.
    Unavailable,
}

impl Tables {
    pub(super) fn new(pid: i32, dir: &str, source: SocketSource) -> Tables {
        let diag = match source {
            SocketSource::ProcNet => Diag::Unavailable,
            _ => Diag::NotYet,
        };
        Tables {
            pid,
            dir: dir.to_string(),
            source,
            diag,
        }
    }

    /// Read and index table number `i` of [`TABLES`]: `None` if it does
    /// not exist or `abandon` was set meanwhile. A sock_diag failure falls
    /// back to `/proc` (for this and every later table) unless the source
    /// is [`SocketSource::SockDiag`].
    pub(super) fn load(
        &mut self,
        i: usize,
        abandon: &AtomicBool,
    ) -> Result<Option<Table>, DiagError> {
        let spec = &TABLES[i];
        if let Some((family, protocol)) = spec.diag {
            match self.dump(family, protocol, abandon) {
                Ok(Some(table)) => return Ok(table),
                Ok(None) => {}
                Err(e) if self.source == SocketSource::SockDiag => return Err(e),
                Err(_) => self.diag = Diag::Unavailable,
            }
        }
        Ok(read_table(&self.dir, spec.file, abandon).map(|text| Table::index(spec.format, text)))
    }

    /// The namespace's unix sockets, with their peers and queues, by
    /// inode: only sock_diag has them (`/proc/net/unix` has neither), so
    /// `None` where it cannot be had.
    fn unix_dump(&mut self) -> Option<HashMap<u64, UnixSock>> {
        if let Diag::NotYet = self.diag {
            self.diag = match DiagSocket::for_pid(self.pid, &self.dir) {
                Ok(socket) => Diag::Open(socket),
                Err(_) => Diag::Unavailable,
            };
        }
        let Diag::Open(socket) = &mut self.diag else {
            return None;
        };
        let mut socks = HashMap::new();
        socket
            .dump_unix(|u| {
                socks.insert(u.inode, u);
            })
            .ok()?;
        Some(socks)
    }

    /// A sock_diag dump indexed by inode; `Ok(None)` if sock_diag is not
    /// to be used.
    fn dump(
        &mut self,
        family: sock_diag::Family,
        protocol: sock_diag::Protocol,
        abandon: &AtomicBool,
    ) -> Result<Option<Option<Table>>, DiagError> {
        if let Diag::NotYet = self.diag {
            self.diag = Diag::Open(DiagSocket::for_pid(self.pid, &self.dir)?);
        }
        let Diag::Open(socket) = &mut self.diag else {
            return Ok(None);
        };
        let mut rows = Vec::new();
        let mut abandoned = false;
        socket.dump_inet(family, protocol, |s| {
            if abandon.load(Ordering::Relaxed) {
                abandoned = true;
                return ControlFlow::Break(());
            }
            rows.push(s);
            ControlFlow::Continue(())
        })?;
        rows.sort_unstable_by_key(|s| s.inode);
        Ok(Some((!abandoned).then_some(Table::Diag(rows))))
    }
}

/// Fill in every socket's details: one pass per table, stopping once all
/// socket inodes are found. `early` holds the first tables if they were
/// read already.
pub(super) fn join_sockets(
    dir: &str,
    fds: &mut [Fd],
    mut tables: Tables,
    early: Vec<Option<Table>>,
) -> Result<(), DiagError> {
    // (inode, index into fds), sorted so that dup'ed descriptors, which
    // share one socket, sit side by side.
    let mut wanted: Vec<(u64, usize)> = fds
        .iter()
        .enumerate()
        .filter_map(|(i, f)| match (f.kind, f.inode) {
            (Kind::Socket, Some(ino)) => Some((ino, i)),
            _ => None,
        })
        .collect();
    wanted.sort_unstable();
    let mut early = early.into_iter();
    let never = AtomicBool::new(false);
    for (t, spec) in TABLES.iter().enumerate() {
        let pre_read = early.next();
        if wanted.is_empty() {
            break;
        }
        let table = match pre_read {
            Some(table) => table,
            None => tables.load(t, &never)?,
        };
        let Some(table) = table else {
            continue;
        };
        let mut missing = Vec::new();
        for same in wanted.chunk_by(|a, b| a.0 == b.0) {
            match table.row(spec.format, spec.file, same[0].0) {
                Some(row) => {
                    for &(_, i) in &same[1..] {
                        fds[i].set_socket(row.clone());
                    }
                    fds[same[0].1].set_socket(row);
                }
                None => missing.extend_from_slice(same),
            }
        }
        wanted = missing;
    }
    // Sockets in no table: the kernel still knows each one's protocol
    // name. A TCP socket in none is closed (never bound, or shut down and
    // let go of by the kernel: only hashed sockets are listed), a UDP one
    // unbound; of others nothing is known.
    for (_, i) in wanted {
        let f = &mut fds[i];
        let name = socket::protocol_name(Path::new(&format!("{dir}/fd/{}", f.fd)));
        let proto = name.map_or_else(|| "?".to_string(), |n| proto_from_xattr(&n));
        f.state = Some(
            match proto.as_str() {
                "tcp" | "tcp6" => "CLOSE",
                "udp" | "udp6" => "UNCONN",
                _ => UNKNOWN,
            }
            .into(),
        );
        f.proto = Some(proto);
    }
    add_unix_peers(fds, &mut tables);
    Ok(())
}

/// Unix sockets' peers and queues, from sock_diag; each peer's holder
/// where it is found: among the target's own descriptors, else among
/// every process's (as `ss -xp` does, within a bound).
fn add_unix_peers(fds: &mut [Fd], tables: &mut Tables) {
    let unix: Vec<usize> = (0..fds.len())
        .filter(|&i| fds[i].proto.as_deref() == Some("unix"))
        .collect();
    if unix.is_empty() {
        return;
    }
    let Some(socks) = tables.unix_dump() else {
        return;
    };
    for &i in &unix {
        let f = &mut fds[i];
        let Some(u) = f.inode.and_then(|ino| socks.get(&ino)) else {
            continue;
        };
        f.peer_inode = u.peer;
        // For a listener: waiting connections and the backlog limit.
        f.rx_queue = u.rqueue.map(u64::from).or(f.rx_queue);
        f.tx_queue = u.wqueue.map(u64::from).or(f.tx_queue);
    }
    let pid = tables.pid;
    let own: HashMap<u64, i32> = fds
        .iter()
        .filter(|f| f.kind == Kind::Socket)
        .filter_map(|f| Some((f.inode?, f.fd)))
        .collect();
    let name = procinfo::comm(pid).unwrap_or_default();
    let mut elsewhere = HashSet::new();
    for &i in &unix {
        let Some(peer) = fds[i].peer_inode else {
            continue;
        };
        match own.get(&peer) {
            Some(&fd) => {
                fds[i].peer = Some(Peer {
                    pid,
                    fd,
                    name: name.clone(),
                    same_process: true,
                })
            }
            None => {
                elsewhere.insert(peer);
            }
        }
    }
    if elsewhere.is_empty() {
        return;
    }
    let holders = socket_holders(elsewhere, pid);
    for &i in &unix {
        if let Some(holder) = fds[i].peer_inode.and_then(|p| holders.get(&p)) {
            fds[i].peer = Some(holder.clone());
        }
    }
}

/// The most descriptor links read, and the longest time taken, looking
/// for the holders of sockets among every process.
const HOLDER_LINKS: usize = 200_000;
const HOLDER_TIME: Duration = Duration::from_secs(1);

/// Who holds each socket of `inodes` (a process other than `skip`):
/// `/proc/*/fd` read until every one is found, or the bound is reached;
/// those not found are left out.
fn socket_holders(mut inodes: HashSet<u64>, skip: i32) -> HashMap<u64, Peer> {
    let deadline = Instant::now() + HOLDER_TIME;
    let mut found = HashMap::new();
    let mut links = 0;
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for pid in procs.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
        if inodes.is_empty() || links > HOLDER_LINKS || Instant::now() > deadline {
            break;
        }
        if pid == skip {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for entry in entries.flatten() {
            links += 1;
            let Ok(link) = std::fs::read_link(entry.path()) else {
                continue;
            };
            let inode = link
                .to_str()
                .and_then(|l| l.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok());
            let Some(inode) = inode.filter(|i| inodes.remove(i)) else {
                continue;
            };
            let fd = entry.file_name().to_str().and_then(|n| n.parse().ok());
            found.insert(
                inode,
                Peer {
                    pid,
                    fd: fd.unwrap_or(-1),
                    name: procinfo::comm(pid).unwrap_or_default(),
                    same_process: false,
                },
            );
        }
    }
    found
}

/// `TCPv6` → `tcp6`, `NETLINK` → `netlink`, `UNIX-STREAM` → `unix`.
fn proto_from_xattr(name: &str) -> String {
    let name = name.split('-').next().unwrap_or(name);
    name.to_ascii_lowercase().replace("v6", "6")
}

impl Format {
    /// Which whitespace-separated column holds the socket inode.
    fn inode_column(self) -> usize {
        match self {
            Format::Inet { .. } => 9,
            Format::Unix => 6,
            Format::Netlink => 9,
            Format::Packet => 8,
        }
    }
}

/// A socket table, rows by inode.
pub(super) enum Table {
    /// A `/proc/PID/net` file read whole, with each row's position.
    Text {
        text: String,
        rows: HashMap<u64, std::ops::Range<usize>>,
    },
    /// A sock_diag dump (inet formats only), sorted by inode.
    Diag(Vec<InetSock>),
}

impl Table {
    /// Index every row whose inode parses; the header and odd rows are
    /// passed over (an odd row cannot be joined anyway).
    fn index(format: Format, text: Vec<u8>) -> Table {
        let text = String::from_utf8(text)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        let col = format.inode_column();
        let mut rows = HashMap::new();
        let mut start = 0;
        for line in text.split_inclusive('\n') {
            let end = start + line.len();
            if let Some(inode) = nth_field(line.as_bytes(), col).and_then(parse_u64) {
                rows.insert(inode, start..end);
            }
            start = end;
        }
        Table::Text { text, rows }
    }

    fn row(&self, format: Format, proto: &'static str, inode: u64) -> Option<SockRow> {
        match self {
            Table::Text { text, rows } => {
                let line = text.get(rows.get(&inode)?.clone())?;
                Some(parse_row(format, proto, line.trim_end_matches('\n')))
            }
            Table::Diag(rows) => {
                let sock = &rows[rows.binary_search_by_key(&inode, |s| s.inode).ok()?];
                Some(match format {
                    Format::Inet { tcp, sock_type } => diag_row(proto, tcp, sock_type, sock),
                    _ => unknown_row(proto),
                })
            }
        }
    }
}

/// The `n`th whitespace-separated field of `line`, without allocating.
fn nth_field(line: &[u8], n: usize) -> Option<&[u8]> {
    let mut fields = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    fields.nth(n)
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

/// Parse one table row into the Fd fields; what does not parse reads `?`.
fn parse_row(format: Format, proto: &'static str, line: &str) -> SockRow {
    let w: Vec<&str> = line
        .split_ascii_whitespace()
        .take(format.inode_column() + 1)
        .collect();
    match format {
        Format::Inet { tcp, sock_type } => inet_row(proto, tcp, sock_type, &w),
        Format::Unix => unix_row(&w, unix_path(line, w.len())),
        Format::Netlink => netlink_row(&w),
        Format::Packet => packet_row(&w),
    }
}

const UNKNOWN: &str = "?";

fn unknown_row(proto: &'static str) -> SockRow {
    SockRow {
        proto,
        sock_type: None,
        state: UNKNOWN.into(),
        local: UNKNOWN.into(),
        remote: Some(UNKNOWN.into()),
        local_port: None,
        remote_port: None,
        rx_queue: None,
        tx_queue: None,
        cookie: None,
        tcp: None,
        timer: None,
    }
}

/// `sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt
/// uid timeout inode …`
fn inet_row(proto: &'static str, tcp: bool, sock_type: &'static str, w: &[&str]) -> SockRow {
    let mut row = unknown_row(proto);
    row.sock_type = Some(sock_type);
    if let Some((ip, port)) = w.get(1).and_then(|a| parse_addr(a)) {
        row.local = SocketAddr::new(ip, port).to_string();
        row.local_port = Some(port);
    }
    if let Some((ip, port)) = w.get(2).and_then(|a| parse_addr(a)) {
        row.remote = Some(SocketAddr::new(ip, port).to_string());
        row.remote_port = Some(port);
    }
    if let Some(st) = w.get(3).and_then(|s| u8::from_str_radix(s, 16).ok()) {
        row.state = inet_state(st, tcp).to_string();
    }
    if let Some((tx, rx)) = w.get(4).and_then(|q| q.split_once(':')) {
        row.tx_queue = u64::from_str_radix(tx, 16).ok();
        row.rx_queue = u64::from_str_radix(rx, 16).ok();
    }
    row
}

/// An inet row from sock_diag, with the same values as the `/proc` text
/// table's row for that socket (net/ipv4/tcp_diag.c `tcp_diag_get_info`
/// and net/ipv4/tcp_ipv4.c `get_tcp4_sock` read the same fields; likewise
/// udp_diag.c and udp.c).
fn diag_row(proto: &'static str, tcp: bool, sock_type: &'static str, s: &InetSock) -> SockRow {
    let (local, remote) = (unmapped(s.local), unmapped(s.remote));
    SockRow {
        proto,
        sock_type: Some(sock_type),
        state: inet_state(s.state, tcp).to_string(),
        local: addr_string(local),
        remote: Some(addr_string(remote)),
        local_port: Some(local.port()),
        remote_port: Some(remote.port()),
        rx_queue: Some(u64::from(s.rqueue)),
        // For a listener, the backlog limit (where /proc/net/tcp shows 0).
        tx_queue: Some(u64::from(s.wqueue)),
        cookie: Some(s.cookie),
        tcp: s.tcp,
        timer: s.timer,
    }
}

/// `addr.to_string()`, without the formatting machinery for IPv4 (most
/// sockets; it shows in profiles with thousands of them).
fn addr_string(addr: SocketAddr) -> String {
    fn push_decimal(s: &mut String, n: u16) {
        if n >= 10 {
            push_decimal(s, n / 10);
        }
        s.push(char::from(b'0' + (n % 10) as u8));
    }
    match addr {
        SocketAddr::V4(v4) => {
            let mut s = String::with_capacity(21);
            for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                push_decimal(&mut s, octet.into());
            }
            s.push(':');
            push_decimal(&mut s, v4.port());
            s
        }
        SocketAddr::V6(_) => addr.to_string(),
    }
}

/// IPv4-mapped IPv6 addresses as IPv4, like [`parse_addr`].
fn unmapped(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), addr.port()),
            None => SocketAddr::new(v6.into(), addr.port()),
        },
        IpAddr::V4(_) => addr,
    }
}

/// `ADDR:PORT` in hex as the kernel prints it: each 32-bit word of the
/// address as a host-order integer (`%08X` of a `__be32`), the port already
/// in host order. IPv4-mapped IPv6 addresses come back as IPv4.
fn parse_addr(s: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| {
        addr.get(i * 8..i * 8 + 8)
            .and_then(|w| u32::from_str_radix(w, 16).ok())
            .map(u32::to_ne_bytes)
    };
    let ip: IpAddr = match addr.len() {
        8 => Ipv4Addr::from(word(0)?).into(),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            let v6 = Ipv6Addr::from(bytes);
            match v6.to_ipv4_mapped() {
                Some(v4) => v4.into(),
                None => v6.into(),
            }
        }
        _ => return None,
    };
    Some((ip, port))
}

/// TCP states (include/net/tcp_states.h) as the kernel, netstat and lsof
/// spell them. A datagram or raw socket only uses ESTABLISHED (connected)
/// and CLOSE, which `ss` calls UNCONN.
fn inet_state(st: u8, tcp: bool) -> &'static str {
    match st {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 if tcp => "CLOSE",
        7 => "UNCONN",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        _ => UNKNOWN,
    }
}

/// The path column of `/proc/net/unix`: everything after the inode, which
/// may contain spaces. Abstract names already start with `@`
/// (net/unix/af_unix.c, `unix_seq_show`).
fn unix_path(line: &str, fields: usize) -> Option<String> {
    let mut rest = line.trim_start();
    for _ in 0..fields {
        let end = rest.find(|c: char| c.is_ascii_whitespace())?;
        rest = rest[end..].trim_start();
    }
    (!rest.is_empty()).then(|| rest.to_string())
}

/// `Num RefCount Protocol Flags Type St Inode [Path]`
fn unix_row(w: &[&str], path: Option<String>) -> SockRow {
    let mut row = unknown_row("unix");
    row.remote = None;
    row.local = path.unwrap_or_default();
    let hex = |i: usize| w.get(i).and_then(|s| u32::from_str_radix(s, 16).ok());
    row.sock_type = match hex(4) {
        Some(1) => Some("stream"),
        Some(2) => Some("dgram"),
        Some(5) => Some("seqpacket"),
        _ => None,
    };
    // __SO_ACCEPTCON in Flags marks a listening socket; St is the
    // socket_state enum (include/uapi/linux/net.h).
    const ACCEPTCON: u32 = 1 << 16;
    row.state = match (hex(3), hex(5)) {
        (Some(flags), _) if flags & ACCEPTCON != 0 => "LISTEN",
        (_, Some(1)) => "UNCONN",
        (_, Some(2)) => "CONNECTING",
        (_, Some(3)) => "ESTABLISHED",
        (_, Some(4)) => "DISCONNECTING",
        _ => UNKNOWN,
    }
    .to_string();
    row
}

/// `sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode`
fn netlink_row(w: &[&str]) -> SockRow {
    let mut row = unknown_row("netlink");
    row.remote = None;
    row.sock_type = Some("raw");
    row.state = "UNCONN".into();
    let family = w.get(1).and_then(|s| s.parse::<u32>().ok());
    let portid = w.get(2).and_then(|s| s.parse::<u32>().ok());
    if let (Some(family), Some(portid)) = (family, portid) {
        row.local = format!("{}:{portid}", netlink_family(family));
    }
    row.rx_queue = w.get(4).and_then(|s| s.parse().ok());
    row.tx_queue = w.get(5).and_then(|s| s.parse().ok());
    row
}

/// include/uapi/linux/netlink.h
fn netlink_family(family: u32) -> String {
    let name = match family {
        0 => "route",
        2 => "usersock",
        3 => "firewall",
        4 => "sock_diag",
        5 => "nflog",
        6 => "xfrm",
        7 => "selinux",
        8 => "iscsi",
        9 => "audit",
        10 => "fib_lookup",
        11 => "connector",
        12 => "netfilter",
        13 => "ip6_fw",
        14 => "dnrtmsg",
        15 => "kobject_uevent",
        16 => "generic",
        18 => "scsitransport",
        19 => "ecryptfs",
        20 => "rdma",
        21 => "crypto",
        22 => "smc",
        other => return other.to_string(),
    };
    name.to_string()
}

/// `sk RefCnt Type Proto Iface R Rmem User Inode`
fn packet_row(w: &[&str]) -> SockRow {
    let mut row = unknown_row("packet");
    row.remote = None;
    row.state = "UNCONN".into();
    row.sock_type = match w.get(2).and_then(|s| s.parse::<u32>().ok()) {
        Some(2) => Some("dgram"),
        Some(3) => Some("raw"),
        _ => None,
    };
    let ethertype = w.get(3).and_then(|s| u16::from_str_radix(s, 16).ok());
    let ifindex = w.get(4).and_then(|s| s.parse::<u32>().ok());
    if let (Some(ethertype), Some(ifindex)) = (ethertype, ifindex) {
        row.local = format!("[{ethertype:#06x}]:{ifindex}");
    }
    row.rx_queue = w.get(6).and_then(|s| s.parse().ok());
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Index `line` as the only row of a table and look `inode` up.
    fn parse_row(
        format: Format,
        proto: &'static str,
        line: &str,
        inode: u64,
    ) -> Option<(u64, SockRow)> {
        let table = Table::index(format, format!("header\n{line}\n").into_bytes());
        table.row(format, proto, inode).map(|row| (inode, row))
    }

    #[test]
    fn tcp_listen_row() {
        let line = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000080 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0";
        let (ino, row) = parse_row(INET_TCP, "tcp", line, 4242).unwrap();
        assert_eq!(ino, 4242);
        assert_eq!(row.state, "LISTEN");
        assert_eq!(row.local, "127.0.0.1:8080");
        assert_eq!(row.local_port, Some(8080));
        assert_eq!(row.remote.as_deref(), Some("0.0.0.0:0"));
        assert_eq!(row.rx_queue, Some(0x80));
        assert_eq!(row.tx_queue, Some(0));
    }

    #[test]
    fn unwanted_rows_are_skipped() {
        let line = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1";
        assert!(parse_row(INET_TCP, "tcp", line, 1).is_none());
    }

    #[test]
    fn tcp6_mapped_and_plain() {
        let line = "   1: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:C350 08 00000000:00000005 00:00000000 00000000  0 0 77 1";
        let (_, row) = parse_row(INET_TCP, "tcp6", line, 77).unwrap();
        assert_eq!(row.local, "127.0.0.1:8080");
        assert_eq!(row.remote.as_deref(), Some("127.0.0.1:50000"));
        assert_eq!(row.state, "CLOSE_WAIT");
        assert_eq!(row.rx_queue, Some(5));
        let line = "   2: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 78 1";
        let (_, row) = parse_row(INET_TCP, "tcp6", line, 78).unwrap();
        assert_eq!(row.local, "[::1]:22");
        assert_eq!(row.remote.as_deref(), Some("[::]:0"));
    }

    #[test]
    fn udp_unconnected() {
        let line = "  123: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 99 2 0000000000000000 0";
        let (_, row) = parse_row(INET_UDP, "udp", line, 99).unwrap();
        assert_eq!(row.state, "UNCONN");
        assert_eq!(row.local_port, Some(53));
        assert_eq!(row.sock_type, Some("dgram"));
    }

    #[test]
    fn odd_fields_read_unknown() {
        let line = "   0: zz:1F90 00000000:0000 QQ 00000000 00:00000000 00000000  1000 0 5 1";
        let (_, row) = parse_row(INET_TCP, "tcp", line, 5).unwrap();
        assert_eq!(row.local, "?");
        assert_eq!(row.state, "?");
        assert_eq!(row.rx_queue, None);
        assert_eq!(row.remote.as_deref(), Some("0.0.0.0:0"));
    }

    #[test]
    fn unix_rows() {
        let line = "0000000000000000: 00000002 00000000 00010000 0001 01 31 /run/my sock";
        let (_, row) = parse_row(Format::Unix, "unix", line, 31).unwrap();
        assert_eq!(row.state, "LISTEN");
        assert_eq!(row.local, "/run/my sock");
        assert_eq!(row.sock_type, Some("stream"));
        let line = "0000000000000000: 00000003 00000000 00000000 0001 03 32";
        let (_, row) = parse_row(Format::Unix, "unix", line, 32).unwrap();
        assert_eq!(row.state, "ESTABLISHED");
        assert_eq!(row.local, "");
        let line = "0000000000000000: 00000002 00000000 00000000 0002 01 33 @abstract";
        let (_, row) = parse_row(Format::Unix, "unix", line, 33).unwrap();
        assert_eq!(row.state, "UNCONN");
        assert_eq!(row.local, "@abstract");
        assert_eq!(row.sock_type, Some("dgram"));
    }

    #[test]
    fn netlink_and_packet_rows() {
        let line = "0000000000000000 0   1234       00000000 0        0        0     2        0        555";
        let (_, row) = parse_row(Format::Netlink, "netlink", line, 555).unwrap();
        assert_eq!(row.local, "route:1234");
        let line = "0000000000000000 3      3    0003   2     1 0      0      556";
        let (_, row) = parse_row(Format::Packet, "packet", line, 556).unwrap();
        assert_eq!(row.local, "[0x0003]:2");
        assert_eq!(row.sock_type, Some("raw"));
    }

    #[test]
    fn addresses_read_as_display_writes_them() {
        for a in [
            "0.0.0.0:0",
            "127.0.0.1:8080",
            "10.20.255.9:65535",
            "255.255.255.255:1",
            "[::1]:22",
            "[fe80::1]:443",
        ] {
            let addr: SocketAddr = a.parse().unwrap();
            assert_eq!(addr_string(addr), a);
            assert_eq!(addr_string(addr), addr.to_string());
        }
    }

    #[test]
    fn xattr_protocol_names() {
        assert_eq!(proto_from_xattr("TCPv6"), "tcp6");
        assert_eq!(proto_from_xattr("NETLINK"), "netlink");
        assert_eq!(proto_from_xattr("UNIX-STREAM"), "unix");
    }
}
