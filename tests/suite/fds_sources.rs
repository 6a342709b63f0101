//! TCP and UDP details come from sock_diag netlink when it can be had and
//! from the `/proc/PID/net` text tables otherwise: both must give the same
//! Fd, field by field, and the fallback must be taken when sock_diag
//! cannot be had. What only sock_diag knows (TCP's `tcp_info` and timer,
//! cookies, a listener's backlog, unix peers and queues) is left out of
//! the comparison, and checked against `ss` in `fds_ss.rs`.

use crate::support::*;
use reach::process::fds::{self, Fd, SocketSource};
use std::io::Write;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;

/// List `pid` both ways and require the same result for the fds in
/// `only` (all of them if empty). Returns the sock_diag listing.
///
/// The two listings are taken a moment apart, so a queue that is still
/// moving (data in flight on loopback) can differ between them: take
/// them again, a bounded number of times, until they agree.
fn assert_same(pid: i32, only: &[i32]) -> Vec<Fd> {
    let keep = |v: Vec<Fd>| -> Vec<Fd> {
        v.into_iter()
            .filter(|f| only.is_empty() || only.contains(&f.fd))
            .collect()
    };
    let list = |source| {
        let listed = fds::list_with(pid, source).expect("listing");
        keep(listed).into_iter().map(common).collect::<Vec<_>>()
    };
    let mut tries = 0;
    let (diag, procnet) = loop {
        let diag = list(SocketSource::SockDiag);
        let procnet = list(SocketSource::ProcNet);
        tries += 1;
        if diag == procnet || tries == 50 {
            break (diag, procnet);
        }
    };
    assert_eq!(
        diag.iter().map(|f| f.fd).collect::<Vec<_>>(),
        procnet.iter().map(|f| f.fd).collect::<Vec<_>>()
    );
    for (d, p) in diag.iter().zip(&procnet) {
        assert_eq!(
            d, p,
            "fd {}: sock_diag (left) and /proc (right) differ",
            d.fd
        );
    }
    diag
}

/// `f` without what only sock_diag knows.
fn common(mut f: Fd) -> Fd {
    f.cookie = None;
    f.tcp = None;
    f.timer = None;
    f.peer_inode = None;
    f.peer = None;
    if f.state.as_deref() == Some("LISTEN") {
        f.tx_queue = None;
    }
    if f.proto.as_deref() == Some("unix") {
        (f.rx_queue, f.tx_queue) = (None, None);
    }
    f
}

fn assert_all_resolved(listed: &[Fd]) {
    assert!(
        listed
            .iter()
            .filter(|f| f.kind == fds::Kind::Socket)
            .all(|f| f.state.as_deref() != Some("?")),
        "every socket resolved: {listed:#?}"
    );
}

#[test]
fn both_sources_agree_on_every_kind_of_descriptor() {
    let fx = Target::fds_fixture(&[], &["all"]);
    let listed = assert_same(fx.pid, &[]);
    assert_all_resolved(&listed);
    let sockets = listed.iter().filter(|f| f.proto.is_some()).count();
    assert!(sockets >= 7, "{listed:#?}");
}

#[test]
fn both_sources_agree_on_many_sockets() {
    let fx = Target::fds_fixture(&[], &["many", "300"]);
    let listed = assert_same(fx.pid, &[]);
    assert_all_resolved(&listed);
    let close_wait = listed
        .iter()
        .filter(|f| f.state.as_deref() == Some("CLOSE_WAIT"))
        .count();
    assert_eq!(close_wait as u64, fx.json()["close_wait"].as_u64().unwrap());
}

#[test]
fn both_sources_agree_in_another_network_namespace() {
    if !can_unshare_net() {
        eprintln!("skipped: unshare -n is not permitted here");
        return;
    }
    let fx = Target::fds_fixture(&["unshare", "-n"], &["listen"]);
    let listed = assert_same(fx.pid, &[]);
    let l = listed.iter().find(|f| f.fd == fx.json_fd("/fd")).unwrap();
    assert_eq!(l.state.as_deref(), Some("LISTEN"));
    assert_eq!(
        l.local_port,
        Some(fx.json()["port"].as_u64().unwrap() as u16)
    );
}

/// Sockets the fixtures do not have: IPv6 proper, UDP connected and over
/// IPv6, a TCP socket with unsent data queued, a listener with a
/// connection waiting for accept. Listed in this process itself.
#[test]
fn both_sources_agree_on_ipv6_udp_and_queues() {
    let me = std::process::id() as i32;
    let mut mine = Vec::new();
    let mut keep = |fd: &dyn AsRawFd| mine.push(fd.as_raw_fd());

    let backlog = TcpListener::bind("127.0.0.1:0").unwrap();
    let waiting = TcpStream::connect(backlog.local_addr().unwrap()).unwrap();
    keep(&backlog);
    keep(&waiting);

    // The peer never reads: what does not fit its receive buffer stays
    // in our send queue.
    let sink = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut full = TcpStream::connect(sink.local_addr().unwrap()).unwrap();
    let (peer, _) = sink.accept().unwrap();
    full.set_nonblocking(true).unwrap();
    let chunk = [7u8; 65536];
    while full.write(&chunk).is_ok() {}
    keep(&full);
    keep(&peer);

    let udp_a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_b = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp_a.connect(udp_b.local_addr().unwrap()).unwrap();
    udp_a.send(b"hello").unwrap();
    keep(&udp_a);
    keep(&udp_b);

    let v6 = ipv6_available().then(|| {
        let l6 = TcpListener::bind("[::1]:0").unwrap();
        let c6 = TcpStream::connect(l6.local_addr().unwrap()).unwrap();
        let u6 = UdpSocket::bind("[::1]:0").unwrap();
        u6.connect(l6.local_addr().unwrap()).unwrap();
        (l6, c6, u6)
    });
    if let Some((l6, c6, u6)) = &v6 {
        keep(l6);
        keep(c6);
        keep(u6);
    }

    let listed = assert_same(me, &mine);
    let by_fd = |fd: &dyn AsRawFd| listed.iter().find(|f| f.fd == fd.as_raw_fd()).unwrap();
    assert_eq!(
        by_fd(&backlog).rx_queue,
        Some(1),
        "one connection to accept"
    );
    // The backlog limit (std listens with 128), which only sock_diag has.
    let diag = fds::list_with(me, SocketSource::SockDiag).unwrap();
    let listener = diag.iter().find(|f| f.fd == backlog.as_raw_fd()).unwrap();
    assert_eq!(listener.tx_queue, Some(128));
    assert!(by_fd(&full).tx_queue.unwrap() > 0, "{:?}", by_fd(&full));
    assert_eq!(by_fd(&udp_b).rx_queue.map(|n| n > 0), Some(true));
    assert_eq!(by_fd(&udp_a).state.as_deref(), Some("ESTABLISHED"));
    assert_eq!(by_fd(&udp_b).state.as_deref(), Some("UNCONN"));
    if let Some((l6, _, u6)) = &v6 {
        let l6 = by_fd(l6);
        assert_eq!(l6.proto.as_deref(), Some("tcp6"));
        assert!(l6.local.as_deref().unwrap().starts_with("[::1]:"));
        assert_eq!(by_fd(u6).proto.as_deref(), Some("udp6"));
    }
}

/// A TCP socket bound but neither listening nor connected is in no
/// `/proc/net/tcp` row (sock_diag would call it BOUND_INACTIVE if asked):
/// both sources say CLOSE, the kernel's state for it.
#[test]
fn both_sources_agree_on_a_bound_idle_socket() {
    let t = Target::python(
        "import socket, sys\n\
         s = socket.socket()\n\
         s.bind(('127.0.0.1', 0))\n\
         print('ready', s.fileno(), flush=True)\n\
         sys.stdin.read()\n",
        &[],
    );
    let fd: i32 = t.words()[0].parse().expect("fd number");
    let listed = assert_same(t.pid, &[fd]);
    let bound = &listed[0];
    assert_eq!(bound.proto.as_deref(), Some("tcp"));
    assert_eq!(bound.state.as_deref(), Some("CLOSE"));
}

fn ipv6_available() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

/// Without CAP_SYS_ADMIN reach cannot enter another network namespace,
/// so sock_diag cannot answer for it: the default listing must fall back
/// to `/proc/PID/net` and still find the socket.
#[test]
fn falls_back_to_proc_when_the_namespace_cannot_be_entered() {
    if !can_unshare_net() {
        eprintln!("skipped: unshare -n is not permitted here");
        return;
    }
    let drop_admin = [
        "setpriv",
        "--inh-caps=-sys_admin",
        "--ambient-caps=-sys_admin",
        "--bounding-set=-sys_admin",
    ];
    let fx = Target::fds_fixture(&["unshare", "-n"], &["listen"]);
    let ns = format!("--net=/proc/{}/ns/net", fx.pid);
    // The premise: without CAP_SYS_ADMIN, setns into it fails.
    if !have("setpriv") || !have("nsenter") {
        eprintln!("skipped: setpriv or nsenter missing");
        return;
    }
    let enter = output(
        Command::new(drop_admin[0])
            .args(&drop_admin[1..])
            .args(["nsenter", &ns, "true"]),
        REACH_DEADLINE,
    );
    if enter.status.success() {
        eprintln!("skipped: setns works even without CAP_SYS_ADMIN here");
        return;
    }
    let fd = fx.json_fd("/fd");
    let port = fx.json()["port"].as_u64().unwrap();
    let pid = fx.pid.to_string();
    let expr = format!("let f = fds().filter(|f| f.fd == {fd})[0]; `${{f.state}} ${{f.local}}`");
    let out = reach_wrapped(&drop_admin, &["-p", &pid, "-e", &expr]);
    assert_ok(&out);
    assert_eq!(out.stdout.trim(), format!("LISTEN 0.0.0.0:{port}"));

    // The same listing through reach itself, with full privileges, for
    // comparison: sock_diag, via setns.
    assert_eq!(
        reach(&["-p", &pid, "-e", &expr]).stdout.trim(),
        out.stdout.trim()
    );
}
