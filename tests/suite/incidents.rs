//! The two reference incidents from DESIGN.md, end to end: a client stuck in
//! read() on a silent peer is unstuck by `shutdown`, and a server that would
//! die of SIGPIPE is made to ignore it.

use crate::support::*;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;

const SIGPIPE: i32 = libc::SIGPIPE;

/// Starts the client fixture against a silent peer; returns it with the
/// peer's end (kept open, never written) once the client is blocked in read.
fn stuck_client() -> (Target, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let client = Target::fixture("client", &[&port]);
    // The client connected before saying ready, so this returns at once.
    let (peer, _) = listener.accept().unwrap();
    let pid = client.pid;
    assert!(
        wait_until(STATE_DEADLINE, || task_syscall(pid, pid)
            == Some(libc::SYS_read)),
        "client never blocked in read"
    );
    (client, peer)
}

#[test]
fn shutdown_wakes_a_client_blocked_in_read() {
    let (mut client, _peer) = stuck_client();
    let fd = client.field("fd").to_string();

    let out = eval_ok(
        client.pid,
        &format!(r#"call("shutdown", [{fd}, SHUT_RDWR])"#),
    );
    assert_eq!(out, "0");

    // The job's own error path carries on: read() sees end of file.
    let line = client.line_matching(STATE_DEADLINE, |l| l.starts_with("read returned"));
    assert_eq!(line, "read returned 0 errno=0");
    let status = client.wait_exit(STATE_DEADLINE);
    assert!(status.success(), "client exited with {}", describe(status));
}

#[test]
fn a_playbook_file_gets_args_and_pid() {
    let (mut client, _peer) = stuck_client();
    let fd = client.field("fd").to_string();
    let dir = workdir("playbook");
    let script = dir.join("unstick.rhai");
    std::fs::write(
        &script,
        r#"
        // ARGS are strings; PID is the target's pid.
        if call("getpid", []) != PID { throw "PID is not the target"; }
        let fd = parse_int(ARGS[0]);
        let r = call("shutdown", [fd, SHUT_RDWR]);
        if r != 0 { throw "shutdown failed: " + r; }
        "#,
    )
    .unwrap();

    let out = reach(&["-p", &client.pid.to_string(), script.to_str().unwrap(), &fd]);
    assert_ok(&out);

    let line = client.line_matching(STATE_DEADLINE, |l| l.starts_with("read returned"));
    assert_eq!(line, "read returned 0 errno=0");
    assert!(client.wait_exit(STATE_DEADLINE).success());
}

/// A connected server fixture and the test's end of its connection.
fn server() -> (Target, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let server = Target::fixture("server", &[&port]);
    let (peer, _) = listener.accept().unwrap();
    (server, peer)
}

/// Asks the server to write until a write fails with EPIPE (the first write
/// after an RST reports ECONNRESET, the next one EPIPE and SIGPIPE).
/// Returns the replies; stops early if the server stops answering.
fn write_until_epipe(server: &mut Target) -> Vec<String> {
    let mut replies = Vec::new();
    for _ in 0..10 {
        server.send("write");
        let Some(reply) = server.next_line(STATE_DEADLINE) else {
            break;
        };
        let epipe = reply.ends_with("errno=32");
        replies.push(reply);
        if epipe {
            break;
        }
    }
    replies
}

#[test]
fn ignoring_sigpipe_keeps_a_server_alive() {
    let (mut server, peer) = server();
    let pid = server.pid;
    assert_eq!(sigset(pid, "SigIgn") & sigbit(SIGPIPE), 0);

    // signal() returns the previous disposition, SIG_DFL.
    let out = eval_ok(pid, r#"call("signal", [SIGPIPE, SIG_IGN])"#);
    assert_eq!(out, "0");
    assert_eq!(sigset(pid, "SigIgn") & sigbit(SIGPIPE), 0x1000);

    reset_peer(peer);
    let replies = write_until_epipe(&mut server);
    assert!(
        replies
            .last()
            .is_some_and(|r| r == "write returned -1 errno=32"),
        "no EPIPE reported: {replies:?}"
    );
    assert_eq!(server.ask("ping"), "pong");
    assert_untouched(&server);
}

/// The control for the test above: without the fix the same sequence kills
/// the server with SIGPIPE, so the test above proves something.
#[test]
fn without_the_fix_the_server_dies_of_sigpipe() {
    let (mut server, peer) = server();
    reset_peer(peer);
    let replies = write_until_epipe(&mut server);
    assert!(
        !replies.iter().any(|r| r.ends_with("errno=32")),
        "{replies:?}"
    );
    let status = server.wait_exit(STATE_DEADLINE);
    assert_eq!(status.signal(), Some(SIGPIPE), "{}", describe(status));
}

/// The binary these tests run is the one the README builds: static, with
/// no program interpreter (it runs on any x86-64 Linux, whatever its
/// glibc), and with no dynamic section at all (non-PIE: nothing to
/// relocate at start).
#[test]
fn reach_is_one_static_binary() {
    let elf = std::fs::read(reach_bin()).unwrap();
    let u16_at = |at: usize| u16::from_le_bytes(elf[at..at + 2].try_into().unwrap()) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap());
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    const ET_EXEC: usize = 2;
    let types: Vec<u32> = (0..phnum).map(|i| u32_at(phoff + i * phentsize)).collect();
    assert!(!types.contains(&PT_INTERP), "reach needs a dynamic loader");
    assert!(!types.contains(&PT_DYNAMIC), "reach has a dynamic section");
    assert_eq!(u16_at(0x10), ET_EXEC, "reach is position-independent");
    // And as file(1) says it, where it is installed.
    if have("file") {
        let out = output(
            std::process::Command::new("file").arg(reach_bin()),
            REACH_DEADLINE,
        );
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains("statically linked"), "{said}");
    }
}
