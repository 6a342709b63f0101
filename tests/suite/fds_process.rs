//! fds(), threads(), signals() and shutdown at the process layer, against
//! real processes (issue 3, "How it is shown to work" 1–5).

use crate::support::*;
use reach::process::fds::{self, Fd, Kind, ShutdownPath};
use reach::process::threads::{self, Syscall};
use reach::process::{Settings, Target as Handle, signals};
use std::process::Command;

fn by_fd(fds: &[Fd], n: i32) -> &Fd {
    fds.iter()
        .find(|f| f.fd == n)
        .unwrap_or_else(|| panic!("fd {n} not listed: {fds:#?}"))
}

fn s(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("<none>")
}

#[test]
fn every_kind_of_descriptor() {
    let fx = Target::fds_fixture(&[], &["all"]);
    let fds = fds::list(fx.pid).unwrap();

    let port = fx.json()["listen"]["port"].as_u64().unwrap() as u16;
    let l = by_fd(&fds, fx.json_fd("/listen/fd"));
    assert_eq!(l.kind, Kind::Socket);
    assert_eq!(s(&l.proto), "tcp");
    assert_eq!(s(&l.sock_type), "stream");
    assert_eq!(s(&l.state), "LISTEN");
    assert_eq!(s(&l.local), format!("127.0.0.1:{port}"));
    assert_eq!(l.local_port, Some(port));
    assert_eq!(s(&l.remote), "0.0.0.0:0");
    assert_eq!(l.remote_port, Some(0));
    assert_eq!(l.rx_queue, Some(0), "every connection was accepted");
    assert!(l.inode.is_some_and(|i| l.path == format!("socket:[{i}]")));
    assert!(l.waiters.is_empty());

    let e = by_fd(&fds, fx.json_fd("/established/fd"));
    let e_port = fx.json()["established"]["local_port"].as_u64().unwrap() as u16;
    assert_eq!(s(&e.proto), "tcp");
    assert_eq!(s(&e.state), "ESTABLISHED");
    assert_eq!(s(&e.local), format!("127.0.0.1:{e_port}"));
    assert_eq!(s(&e.remote), format!("127.0.0.1:{port}"));
    assert_eq!(e.local_port, Some(e_port));
    assert_eq!(e.remote_port, Some(port));
    assert_eq!(e.rx_queue, Some(5), "5 unread bytes");
    assert_eq!(e.tx_queue, Some(0));
    let peer = by_fd(&fds, fx.json_fd("/established/peer_fd"));
    assert_eq!(s(&peer.state), "ESTABLISHED");
    assert_eq!(s(&peer.remote), format!("127.0.0.1:{e_port}"));

    let cw = by_fd(&fds, fx.json_fd("/close_wait/fd"));
    assert_eq!(s(&cw.state), "CLOSE_WAIT");
    assert_eq!(s(&cw.remote), format!("127.0.0.1:{port}"));

    let udp_port = fx.json()["udp"]["port"].as_u64().unwrap() as u16;
    let u = by_fd(&fds, fx.json_fd("/udp/fd"));
    assert_eq!(s(&u.proto), "udp");
    assert_eq!(s(&u.sock_type), "dgram");
    assert_eq!(s(&u.state), "UNCONN");
    assert_eq!(s(&u.local), format!("127.0.0.1:{udp_port}"));
    assert_eq!(u.local_port, Some(udp_port));

    for pointer in ["/unix/fd", "/unix/peer_fd"] {
        let x = by_fd(&fds, fx.json_fd(pointer));
        assert_eq!(x.kind, Kind::Socket);
        assert_eq!(s(&x.proto), "unix");
        assert_eq!(s(&x.sock_type), "stream");
        assert_eq!(s(&x.state), "ESTABLISHED");
        assert_eq!(s(&x.local), "", "a socketpair has no path");
        assert_eq!(x.local_port, None);
    }

    let r = by_fd(&fds, fx.json_fd("/pipe/read_fd"));
    let w = by_fd(&fds, fx.json_fd("/pipe/write_fd"));
    assert_eq!((r.kind, w.kind), (Kind::Pipe, Kind::Pipe));
    assert!(r.path.starts_with("pipe:["));
    assert_eq!(r.inode, w.inode, "both ends of one pipe");
    assert_eq!(r.flags.map(|f| f & 3), Some(0), "read end O_RDONLY");
    assert_eq!(w.flags.map(|f| f & 3), Some(1), "write end O_WRONLY");
    assert_eq!(r.proto, None);

    let ev = by_fd(&fds, fx.json_fd("/eventfd/fd"));
    assert_eq!(ev.kind, Kind::Anon);
    assert_eq!(ev.anon.as_deref(), Some("eventfd"));

    let f = by_fd(&fds, fx.json_fd("/file/fd"));
    assert_eq!(f.kind, Kind::File);
    assert_eq!(f.path, fx.json()["file"]["path"].as_str().unwrap());
    assert_eq!(f.pos, Some(4));
    assert_eq!(f.flags.map(|fl| fl & 3), Some(2), "w+b is O_RDWR");
    assert!(f.flag_names().unwrap().starts_with("O_RDWR"));
    assert!(!f.deleted);
    assert!(f.state.is_none() && f.local.is_none());

    let d = by_fd(&fds, fx.json_fd("/deleted/fd"));
    assert_eq!(d.kind, Kind::File);
    assert!(d.deleted);
    assert!(d.path.ends_with(" (deleted)"), "{}", d.path);

    if !fx.json()["mapped"].is_null() {
        let m = by_fd(&fds, fx.json_fd("/mapped/fd"));
        assert_eq!(s(&m.proto), "tcp6");
        assert_eq!(s(&m.state), "ESTABLISHED");
        let lp = fx.json()["mapped"]["local_port"].as_u64().unwrap();
        assert_eq!(
            s(&m.local),
            format!("127.0.0.1:{lp}"),
            "v4-mapped shown as v4"
        );
        assert_eq!(s(&m.remote), format!("127.0.0.1:{port}"));
    }

    // Listed in fd order, stdin/stdout/stderr included.
    assert!(fds.windows(2).all(|w| w[0].fd < w[1].fd));
    assert_eq!(by_fd(&fds, 0).kind, Kind::Pipe);
    // Nothing stopped or traced it.
    assert_eq!(tracer_pid(fx.pid), 0);
}

#[test]
fn sockets_come_from_the_targets_network_namespace() {
    if !can_unshare_net() {
        eprintln!("skipped: unshare -n is not permitted here");
        return;
    }
    let fx = Target::fds_fixture(&["unshare", "-n"], &["listen"]);
    let port = fx.json()["port"].as_u64().unwrap() as u16;
    let fds = fds::list(fx.pid).unwrap();
    let l = by_fd(&fds, fx.json_fd("/fd"));
    assert_eq!(s(&l.state), "LISTEN");
    assert_eq!(l.local_port, Some(port));
    assert_eq!(s(&l.local), format!("0.0.0.0:{port}"));
    // And the tool's own namespace does not have it.
    let inode = l.inode.unwrap().to_string();
    let mine = std::fs::read_to_string("/proc/self/net/tcp").unwrap();
    assert!(
        !mine
            .lines()
            .any(|row| row.split_whitespace().nth(9) == Some(&inode)),
        "socket {inode} should not be in reach's own netns"
    );
}

#[test]
fn a_thread_blocked_in_recv_is_a_waiter() {
    let fx = Target::fds_fixture(&[], &["blocked"]);
    let fd = fx.json_fd("/fd");
    let tid = fx.json_fd("/reader_tid");
    let fds = fds::list(fx.pid).unwrap();
    assert_eq!(by_fd(&fds, fd).waiters, vec![tid]);
    assert!(by_fd(&fds, fx.json_fd("/peer_fd")).waiters.is_empty());

    let threads = threads::list(fx.pid).unwrap();
    let reader = threads
        .iter()
        .find(|t| t.tid == tid)
        .expect("reader thread listed");
    assert_eq!(reader.name, "reader");
    assert_eq!(reader.state, 'S');
    assert_eq!(reader.syscall.name().as_deref(), Some("recvfrom"));
    assert_eq!(reader.syscall.fd(), Some(fd));
    assert!(matches!(reader.syscall, Syscall::In { .. }));
    assert!(
        threads.iter().any(|t| t.tid == fx.pid),
        "main thread listed"
    );
}

#[test]
fn shutdown_from_outside_wakes_the_reader_without_a_stop() {
    let mut fx = Target::fds_fixture(&[], &["blocked"]);
    let fd = fx.json_fd("/fd");
    fx.ask_json("reset");
    let listed = fds::list(fx.pid).unwrap();
    let target_fd = by_fd(&listed, fd).clone();
    let mut target = Handle::attach(fx.pid, Settings::default()).unwrap();
    let path = fds::shutdown(&mut target, &target_fd, libc::SHUT_RDWR as i64).unwrap();
    assert_eq!(path, ShutdownPath::Pidfd);
    let woke = fx.next_json();
    assert_eq!(woke["event"], "woke");
    assert_eq!(woke["data"], "", "recv returned end-of-file");
    let status = fx.ask_json("status");
    assert_eq!(status["tracer_max"], 0, "never traced: {status}");
    let gap = status["max_gap_ms"].as_f64().unwrap();
    assert!(gap < 250.0, "the clock loop saw a {gap} ms gap");
    // The socket is shut down, not closed: the fd is still there.
    let after = fds::list(fx.pid).unwrap();
    assert_eq!(by_fd(&after, fd).inode, target_fd.inode);
    assert!(by_fd(&after, fd).waiters.is_empty());
}

#[test]
fn injected_shutdown_fallback_wakes_the_reader() {
    let fx = Target::fds_fixture(&[], &["blocked"]);
    let fd = fx.json_fd("/fd");
    let listed = fds::list(fx.pid).unwrap();
    let mut target = Handle::attach(fx.pid, Settings::default()).unwrap();
    fds::shutdown_injected(&mut target, by_fd(&listed, fd), libc::SHUT_RDWR).unwrap();
    let woke = fx.next_json();
    assert_eq!(woke["event"], "woke");
    drop(target);
    assert_eq!(tracer_pid(fx.pid), 0, "released after the call");
}

#[test]
fn shutdown_refuses_what_it_should() {
    let fx = Target::fds_fixture(&[], &["all"]);
    let listed = fds::list(fx.pid).unwrap();
    let mut target = Handle::attach(fx.pid, Settings::default()).unwrap();
    let file = by_fd(&listed, fx.json_fd("/file/fd"));
    let err = fds::shutdown(&mut target, file, 2).unwrap_err();
    assert!(err.to_string().contains("not a socket"), "{err}");
    let sock = by_fd(&listed, fx.json_fd("/established/fd"));
    let err = fds::shutdown(&mut target, sock, 7).unwrap_err();
    assert!(err.to_string().contains("SHUT_RDWR"), "{err}");
    // A stale Fd whose number now names another socket is refused.
    let mut stale = sock.clone();
    stale.inode = Some(1);
    let err = fds::shutdown(&mut target, &stale, 2).unwrap_err();
    assert!(err.to_string().contains("reused"), "{err}");
    assert_eq!(
        s(&by_fd(&fds::list(fx.pid).unwrap(), sock.fd).state),
        "ESTABLISHED"
    );
}

#[test]
fn signals_of_a_python_process() {
    let fx = Target::fds_fixture(&[], &["all"]);
    let sigs = signals::list(fx.pid).unwrap();
    let by = |name: &str| sigs.iter().find(|s| s.name == name).unwrap();
    // CPython ignores SIGPIPE and handles SIGINT itself.
    assert!(by("SIGPIPE").ignored && !by("SIGPIPE").caught);
    assert!(by("SIGINT").caught && !by("SIGINT").ignored);
    assert!(!by("SIGTERM").ignored && !by("SIGTERM").caught);
    assert!(!by("SIGTERM").pending && !by("SIGTERM").blocked);
    assert_eq!(by("SIGPIPE").number, 13);
}

#[test]
fn close_wait_count_matches_ss() {
    let fx = Target::fds_fixture(&[], &["many", "300"]);
    let expected = fx.json()["close_wait"].as_u64().unwrap() as usize;
    let fds = fds::list(fx.pid).unwrap();
    let ours = fds
        .iter()
        .filter(|f| f.state.as_deref() == Some("CLOSE_WAIT"))
        .count();
    assert_eq!(ours, expected);
    let out = output(
        Command::new("ss").args(["-Htanp", "state", "close-wait"]),
        REACH_DEADLINE,
    );
    let needle = format!("pid={},", fx.pid);
    let by_ss = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&needle))
        .count();
    assert_eq!(ours, by_ss, "fds() and ss disagree on CLOSE_WAIT sockets");
    // Every socket resolved: none left at "?".
    assert!(fds.iter().all(|f| f.state.as_deref() != Some("?")));
}
