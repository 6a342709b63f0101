//! What `fds()` says of sockets, compared with what `ss` says of the same
//! sockets at the same moment: states, addresses, queues (a listener's
//! backlog included), `tcp_info` (`ss -i`), unix peers (`ss -x`); and
//! what only a look over time shows: retransmits to a peer that went
//! silent. Then `destroy()`, tcpdrop for Linux: a thread blocked in
//! `recv` wakes with ECONNABORTED, the peer gets a reset; without
//! CAP_NET_ADMIN nothing changes and the error says why.

use crate::support::*;
use std::collections::HashMap;
use std::process::Command;

/// `ss ARGS` (one line a socket: `-O`), or `None` where there is no ss.
fn ss(args: &[&str]) -> Option<Vec<String>> {
    let out = Command::new("ss").args(args).output().ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    })
}

/// ss's lines for `pid`'s descriptors, by fd (`users:(("x",pid=P,fd=N))`).
fn by_fd(lines: &[String], pid: i32) -> HashMap<i64, Vec<String>> {
    let tag = format!("pid={pid},fd=");
    lines
        .iter()
        .filter_map(|l| {
            let at = l.find(&tag)? + tag.len();
            let fd: i64 = l[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()?;
            Some((fd, l.split_whitespace().map(str::to_string).collect()))
        })
        .collect()
}

/// ss's state spelling as the kernel's: `ESTAB` → `ESTABLISHED`,
/// `CLOSE-WAIT` → `CLOSE_WAIT`, `FIN-WAIT-1` → `FIN_WAIT1`.
fn kernel_state(ss: &str) -> String {
    match ss {
        "ESTAB" => "ESTABLISHED".into(),
        "FIN-WAIT-1" => "FIN_WAIT1".into(),
        "FIN-WAIT-2" => "FIN_WAIT2".into(),
        s => s.replace('-', "_"),
    }
}

/// ss's address as reach writes it: an IPv4-mapped IPv6 address as IPv4
/// (`[::ffff:127.0.0.1]:80` → `127.0.0.1:80`).
fn plain_addr(ss: &str) -> String {
    match ss.strip_prefix("[::ffff:").and_then(|a| a.split_once("]:")) {
        Some((ip, port)) if ip.contains('.') => format!("{ip}:{port}"),
        _ => ss.to_string(),
    }
}

/// The value of `key:VALUE` among ss's words.
fn ss_field<'a>(words: &'a [String], key: &str) -> Option<&'a str> {
    words
        .iter()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix(':'))
}

#[test]
fn tcp_and_udp_fields_match_ss() {
    let fx = Target::fds_fixture(&[], &["all"]);
    let Some(tcp) = ss(&["-tanpiHO"]) else {
        eprintln!("skipped: no ss (iproute2)");
        return;
    };
    let udp = ss(&["-uanpHO"]).unwrap();
    let listed = eval_json(fx.pid, "fds()");
    let ours: HashMap<i64, &serde_json::Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["fd"].as_i64().unwrap(), f))
        .collect();
    let mut compared = 0;
    for (fd, words) in by_fd(&tcp, fx.pid).into_iter().chain(by_fd(&udp, fx.pid)) {
        let f = ours[&fd];
        let at = |k: &str| f[k].clone();
        assert_eq!(
            at("state"),
            kernel_state(&words[0]).as_str(),
            "fd {fd}: {words:?}"
        );
        assert_eq!(
            at("rx_queue"),
            words[1].parse::<u64>().unwrap(),
            "fd {fd}: {words:?}"
        );
        assert_eq!(
            at("tx_queue"),
            words[2].parse::<u64>().unwrap(),
            "fd {fd}: {words:?}"
        );
        assert_eq!(
            at("local"),
            plain_addr(&words[3]).as_str(),
            "fd {fd}: {words:?}"
        );
        if !words[4].ends_with(":*") {
            assert_eq!(
                at("remote"),
                plain_addr(&words[4]).as_str(),
                "fd {fd}: {words:?}"
            );
        }
        if f["proto"] == "tcp" && f["state"] != "LISTEN" {
            assert_eq!(f["cwnd"].to_string(), ss_field(&words, "cwnd").unwrap());
            assert_eq!(
                f["rto_ms"].as_f64().unwrap(),
                ss_field(&words, "rto").unwrap().parse::<f64>().unwrap()
            );
            let retrans = ss_field(&words, "retrans").unwrap_or("0/0");
            assert_eq!(retrans, format!("{}/{}", f["retrans"], f["retrans_total"]));
            // The same clock, read a moment apart: within seconds.
            let lastrcv: i64 = ss_field(&words, "lastrcv").unwrap().parse().unwrap();
            assert!((f["last_recv_ms"].as_i64().unwrap() - lastrcv).abs() < 30_000);
        }
        compared += 1;
    }
    // The listener, two ends of a connection, a CLOSE_WAIT, a UDP socket.
    assert!(compared >= 5, "compared {compared}");
}

/// A unix socket pair split across two processes: each end names the
/// other, with its pid and fd, as `ss -xp` does.
#[test]
fn a_unix_pair_across_processes_names_each_other() {
    let source = r#"
import os, socket, sys, time
a, b = socket.socketpair()
child = os.fork()
if child == 0:
    a.close()
    print("ready child=%d fd=%d" % (os.getpid(), b.fileno()), flush=True)
    sys.stdin.read()
    os._exit(0)
b.close()
time.sleep(0.2)
print("ready parent=%d fd=%d" % (os.getpid(), a.fileno()), flush=True)
sys.stdin.read()
"#;
    let t = Target::python(source, &[]);
    // The child says ready first; the parent's line follows.
    let (child, child_fd) = (t.num("child") as i32, t.num("fd"));
    let parent = t.line_matching(STATE_DEADLINE, |l| l.starts_with("ready parent="));
    let parent_fd: u64 = parent.rsplit('=').next().unwrap().parse().unwrap();
    let ends = [
        (t.pid, parent_fd, child, child_fd),
        (child, child_fd, t.pid, parent_fd),
    ];
    for (pid, fd, peer_pid, peer_fd) in ends {
        let f = eval_json(pid, &format!("fds().filter(|f| f.fd == {fd})[0]"));
        assert_eq!(f["peer_pid"], peer_pid, "{f}");
        assert_eq!(f["peer_fd"], peer_fd, "{f}");
        assert_eq!(f["peer_name"], "python3", "{f}");
        let table = eval_ok(pid, "fds().filter(|f| f.proto == \"unix\")");
        assert!(
            table.contains(&format!("pid {peer_pid} (python3) fd {peer_fd}")),
            "{table}"
        );
    }
    // ss agrees on the peer inodes.
    if let Some(unix) = ss(&["-xapHO"]) {
        let words = &by_fd(&unix, t.pid)[&(parent_fd as i64)];
        let f = eval_json(t.pid, &format!("fds().filter(|f| f.fd == {parent_fd})[0]"));
        assert_eq!(
            words[words.len() - 2],
            f["peer_inode"].to_string(),
            "{words:?}"
        );
    }
    // Killing the child needs its pid: the harness only knows the parent.
    // SAFETY: a process this test started (through python's fork).
    unsafe { libc::kill(child, libc::SIGKILL) };
}

/// A connection whose peer went silent with data unacknowledged (in a
/// network namespace of its own, whose loopback is then taken down):
/// retransmits count up and the time since anything was received grows,
/// while a peer that is merely slow would keep acknowledging.
#[test]
fn a_silent_peer_shows_retransmits_and_a_growing_last_recv() {
    if !can_unshare_net() || !have("ip") {
        eprintln!("skipped: needs unshare -n and ip (iproute2)");
        return;
    }
    let source = r#"
import socket, subprocess, sys
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
c = socket.create_connection(l.getsockname())
s, _ = l.accept()
c.sendall(b"x" * 100); s.recv(100)
subprocess.run(["ip", "link", "set", "lo", "down"], check=True)
c.sendall(b"y" * 100)
print("ready fd=%d" % c.fileno(), flush=True)
sys.stdin.read()
"#;
    let mut cmd = Command::new("unshare");
    cmd.args(["-n", "python3", "-u", "-c", source]);
    let t = Target::spawn(cmd);
    let fd = t.num("fd");
    let get = || eval_json(t.pid, &format!("fds().filter(|f| f.fd == {fd})[0]"));
    let mut first = get();
    assert!(
        wait_until(STATE_DEADLINE, || {
            first = get();
            first["retrans_total"].as_u64().unwrap() > 0
        }),
        "no retransmit: {first}"
    );
    assert!(first["unacked"].as_u64().unwrap() > 0, "{first}");
    assert_eq!(
        first["timer"].as_str().unwrap().split(',').next(),
        Some("on"),
        "{first}"
    );
    let before = first["last_recv_ms"].as_u64().unwrap();
    assert!(
        wait_until(STATE_DEADLINE, || get()["last_recv_ms"].as_u64().unwrap()
            > before + 200),
        "last_recv_ms does not grow"
    );
}

/// A client blocked in recv on a silent peer, in a Python target that
/// reports what its recv returned.
fn blocked_client() -> (Target, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let source = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print("ready fd=%d" % s.fileno(), flush=True)
try:
    data = s.recv(100)
    print("recv returned %d" % len(data), flush=True)
except OSError as e:
    print("recv failed errno=%d" % e.errno, flush=True)
sys.stdin.read()
"#;
    let t = Target::python(source, &[&port]);
    let (peer, _) = listener.accept().unwrap();
    assert!(
        wait_until(STATE_DEADLINE, || task_syscall(t.pid, t.pid)
            == Some(libc::SYS_recvfrom)),
        "never blocked in recv"
    );
    (t, peer)
}

#[test]
fn destroy_aborts_a_connection_the_blocked_thread_wakes_and_the_peer_is_reset() {
    if !is_root() {
        eprintln!("skipped: needs CAP_NET_ADMIN");
        return;
    }
    let (t, mut peer) = blocked_client();
    let fd = t.field("fd").to_string();
    let maps_before = maps(t.pid);
    let out = reach(&[
        "-p",
        &t.pid.to_string(),
        "-e",
        &format!("fds().filter(|f| f.fd == {fd})[0].destroy()"),
    ]);
    assert_ok(&out);
    assert!(out.stderr.contains("SOCK_DESTROY"), "{out:#?}");
    // The target's own words.
    assert_eq!(
        t.line(),
        format!("recv failed errno={}", libc::ECONNABORTED)
    );
    // The peer got a reset.
    let mut buf = [0u8; 8];
    let err = std::io::Read::read(&mut peer, &mut buf).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ECONNRESET));
    // No stop window: nothing of reach's in the target; the fd is still
    // open (no number to reuse).
    assert_eq!(maps(t.pid), maps_before);
    assert!(std::path::Path::new(&format!("/proc/{}/fd/{fd}", t.pid)).exists());
    assert_untouched(&t);
}

#[test]
fn destroy_without_cap_net_admin_fails_clearly_and_changes_nothing() {
    if !is_root() || !have("setpriv") {
        eprintln!("skipped: needs root and setpriv");
        return;
    }
    let (t, _peer) = blocked_client();
    let fd = t.field("fd").to_string();
    let out = reach_wrapped(
        &[
            "setpriv",
            "--inh-caps=-net_admin",
            "--ambient-caps=-net_admin",
            "--bounding-set=-net_admin",
        ],
        &[
            "-p",
            &t.pid.to_string(),
            "-e",
            &format!("fds().filter(|f| f.fd == {fd})[0].destroy()"),
        ],
    );
    assert_error(&out, 1, &["CAP_NET_ADMIN", "nothing was changed"]);
    // Still blocked in recv, on the same connection, untouched.
    assert_eq!(task_syscall(t.pid, t.pid), Some(libc::SYS_recvfrom));
    let state = eval_ok(t.pid, &format!("fds().filter(|f| f.fd == {fd})[0].state"));
    assert_eq!(state, "ESTABLISHED");
    assert_untouched(&t);
}

#[test]
fn destroy_refuses_what_is_not_a_tcp_connection() {
    let fx = Target::fds_fixture(&[], &["all"]);
    let udp = fx.json_fd("/udp/fd");
    let out = eval(
        fx.pid,
        &format!("fds().filter(|f| f.fd == {udp})[0].destroy()"),
    );
    assert_error(&out, 1, &["not a TCP connection"]);
    let out = eval(fx.pid, "fds().filter(|f| f.kind == \"pipe\")[0].destroy()");
    assert_error(&out, 1, &["not a TCP connection"]);
    assert_untouched(&fx);
}

/// The tcpdrop playbook: the connection to the silent peer is aborted,
/// the blocked thread wakes with ECONNABORTED; `--dry-run` changes
/// nothing; a second run finds nothing to do.
#[test]
fn tcpdrop_aborts_the_connection_to_an_address() {
    if !is_root() {
        eprintln!("skipped: needs CAP_NET_ADMIN");
        return;
    }
    let (t, peer) = blocked_client();
    let remote = peer.local_addr().unwrap().to_string();
    let pid = t.pid.to_string();
    let out = reach(&["--dry-run", "-p", &pid, "tcpdrop", &remote]);
    assert_ok(&out);
    assert!(
        out.stdout.contains("dry-run: would destroy fd"),
        "{}",
        out.stdout
    );
    assert_eq!(task_syscall(t.pid, t.pid), Some(libc::SYS_recvfrom));
    let out = reach(&["-p", &pid, "tcpdrop", &remote]);
    assert_ok(&out);
    assert!(
        out.stdout.contains("aborted 1 connection(s)"),
        "{}",
        out.stdout
    );
    assert_eq!(
        t.line(),
        format!("recv failed errno={}", libc::ECONNABORTED)
    );
    let out = reach(&["-p", &pid, "tcpdrop", &remote]);
    assert_ok(&out);
    assert!(out.stdout.contains("nothing to do"), "{}", out.stdout);
    assert_untouched(&t);
}
