//! Which thread waits on which socket, however it waits: `read` names its
//! descriptor, and an event loop's `poll`, `select` or `epoll_wait` names
//! the descriptors of its array, its sets or its epoll instance (read
//! without stopping anything). `unstick` uses them: it wakes the thread
//! and says so, and the target's own output shows it woke.

use crate::support::*;
use std::net::TcpListener;
use std::process::Command;

/// `NAME=TID:FD` of the pollers fixture's ready line.
fn thread_and_fd(t: &Target, name: &str) -> (i32, i32) {
    let (tid, fd) = t.field(name).split_once(':').unwrap();
    (tid.parse().unwrap(), fd.parse().unwrap())
}

/// Waits until thread `tid` of `pid` sits in one of `syscalls`.
fn blocked_in(pid: i32, tid: i32, syscalls: &[i64]) {
    assert!(
        wait_until(STATE_DEADLINE, || task_syscall(pid, tid)
            .is_some_and(|nr| syscalls.contains(&nr))),
        "thread {tid} never blocked in {syscalls:?}: {:?}",
        task_syscall(pid, tid)
    );
}

const POLLS: &[i64] = &[libc::SYS_poll, libc::SYS_ppoll];
const SELECTS: &[i64] = &[libc::SYS_select, libc::SYS_pselect6];
const EPOLLS: &[i64] = &[
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
];

/// `unstick :PORT` on `pid`, which says its main thread left its system
/// call.
fn unstick_port(pid: i32, port: u16) {
    let out = reach(&["-p", &pid.to_string(), "unstick", &format!(":{port}")]);
    assert_ok(&out);
    assert!(
        out.stdout
            .contains(&format!("thread {pid} left its system call")),
        "{}",
        out.stdout
    );
}

#[test]
fn poll_select_and_epoll_waiters_are_named_and_unstick_wakes_them() {
    let mut t = Target::fixture("pollers", &[]);
    let pid = t.pid;
    let waits = [("poll", POLLS), ("select", SELECTS), ("epoll", EPOLLS)];
    for (name, syscalls) in waits {
        blocked_in(pid, thread_and_fd(&t, name).0, syscalls);
    }
    let epfd: i32 = t.field("epfd").parse().unwrap();
    for (name, _) in waits {
        let (tid, fd) = thread_and_fd(&t, name);
        let waiters = eval_json(pid, &format!("fds().filter(|f| f.fd == {fd})[0].waiters"));
        assert_eq!(waiters, serde_json::json!([tid]), "{name}");
        let waits_on = eval_json(
            pid,
            &format!("threads().filter(|t| t.tid == {tid})[0].waits_on"),
        );
        assert_eq!(waits_on, serde_json::json!([fd]), "{name}");
    }
    // The epoll thread waits on its epoll instance too.
    let (epoll_tid, _) = thread_and_fd(&t, "epoll");
    let waiters = eval_json(pid, &format!("fds().filter(|f| f.fd == {epfd})[0].waiters"));
    assert_eq!(waiters, serde_json::json!([epoll_tid]));
    let table = eval_ok(pid, "threads()");
    assert!(table.contains(&format!("(epoll {epfd})")), "{table}");

    let fds: Vec<String> = waits
        .iter()
        .map(|(name, _)| thread_and_fd(&t, name).1.to_string())
        .collect();
    let mut args = vec!["-p".to_string(), pid.to_string(), "unstick".into()];
    args.extend(fds.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = reach(&args);
    assert_ok(&out);
    for (name, _) in waits {
        let (tid, fd) = thread_and_fd(&t, name);
        assert!(
            out.stdout.contains(&format!("fd {fd}: tcp"))
                && out.stdout.contains(&format!("waited on by thread {tid}")),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout
                .contains(&format!("thread {tid} left its system call on fd {fd}")),
            "{}",
            out.stdout
        );
    }
    // The target's own words, in whatever order its threads woke: each
    // wait returned with its socket ready, and the read after it saw the
    // end of the stream.
    let mut said = Vec::new();
    while said.last().is_none_or(|l| l != "done") {
        said.push(t.line());
    }
    for (name, _) in waits {
        let woke = format!("woke {name} r=1");
        assert!(said.iter().any(|l| l.starts_with(&woke)), "{said:?}");
        assert!(said.contains(&format!("eof {name}")), "{said:?}");
    }
    assert!(t.wait_exit(STATE_DEADLINE).success());
}

/// A silent server: accepts connections and never answers.
fn silent_server() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// The socket connected to `port` in `pid`'s descriptors, and its waiters,
/// as reach lists them.
fn socket_to(pid: i32, port: u16) -> (String, serde_json::Value) {
    let expr = format!("let f = fds().filter(|f| f.remote_port == {port})[0]; [f.fd, f.waiters]");
    let v = eval_json(pid, &expr);
    (v[0].to_string(), v[1].clone())
}

#[test]
fn a_python_select_loop_is_a_waiter_and_unstick_wakes_it() {
    let (listener, port) = silent_server();
    let source = r#"
import select, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print("ready fd=%d" % s.fileno(), flush=True)
while True:
    r, _, _ = select.select([s], [], [])
    data = s.recv(100)
    print("woke recv=%d" % len(data), flush=True)
    if not data:
        break
"#;
    let mut t = Target::python(source, &[&port.to_string()]);
    let _peer = listener.accept().unwrap();
    blocked_in(t.pid, t.pid, SELECTS);
    let (fd, waiters) = socket_to(t.pid, port);
    assert_eq!(fd, t.field("fd"));
    assert_eq!(waiters, serde_json::json!([t.pid]));
    unstick_port(t.pid, port);
    assert_eq!(t.line(), "woke recv=0");
    assert!(t.wait_exit(STATE_DEADLINE).success());
}

#[test]
fn a_perl_lwp_fetch_is_a_waiter_and_unstick_wakes_it() {
    let has_lwp = Command::new("perl")
        .args(["-MLWP::UserAgent", "-e", "1"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_lwp {
        eprintln!("skipped: Perl's LWP (libwww-perl) is not installed");
        return;
    }
    let (listener, port) = silent_server();
    let script = r#"
use LWP::UserAgent;
$| = 1;
print "ready\n";
my $r = LWP::UserAgent->new(timeout => 3600)->get("http://127.0.0.1:$ARGV[0]/");
print "fetched ", $r->code, "\n";
"#;
    let mut cmd = Command::new("perl");
    cmd.args(["-e", script, &port.to_string()]);
    let mut t = Target::spawn(cmd);
    let (_peer, _) = listener.accept().unwrap();
    let mut all = POLLS.to_vec();
    all.extend_from_slice(SELECTS);
    blocked_in(t.pid, t.pid, &all);
    let (_, waiters) = socket_to(t.pid, port);
    assert_eq!(waiters, serde_json::json!([t.pid]));
    unstick_port(t.pid, port);
    // LWP's own error path: the server closed the connection.
    let line = t.line_matching(STATE_DEADLINE, |l| l.starts_with("fetched"));
    assert_eq!(line, "fetched 500");
    assert!(t.wait_exit(STATE_DEADLINE).success());
}
