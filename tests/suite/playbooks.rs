//! Each playbook end to end: the real binary against real processes, and
//! what the process did afterwards.

use crate::support::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

const SIGPIPE: i32 = 13;
const SYS_READ: i64 = 0;
const SYS_RECVFROM: i64 = 45;
const ESTABLISHED: &str = "01";
const CLOSE_WAIT: &str = "08";

/// A Perl server with SIGPIPE at its default: accepts one connection, then
/// on each line of stdin writes to it until the second failure (after a
/// reset, the first write reports ECONNRESET and the second raises SIGPIPE).
const PERL_SERVER: &str = r#"
use strict; use IO::Socket::INET;
$SIG{PIPE} = 'DEFAULT'; $| = 1;
my $srv = IO::Socket::INET->new(Listen => 5, LocalAddr => '127.0.0.1', LocalPort => 0, ReuseAddr => 1) or die "listen: $!";
print "ready ", $srv->sockport, "\n";
my $c = $srv->accept or die "accept: $!";
print "accepted\n";
while (my $cmd = <STDIN>) {
    my ($fails, $err) = (0, undef);
    for (1..50) {
        next if defined syswrite($c, "x" x 4096);
        $err = $!;
        last if ++$fails >= 2;
    }
    print defined $err ? "survived: $err\n" : "wrote\n";
}
"#;

fn perl_server() -> Target {
    let mut cmd = Command::new("perl");
    cmd.arg("-e").arg(PERL_SERVER);
    Target::spawn(cmd)
}

/// Connect to the server, wait for it to accept, then reset the connection
/// (SO_LINGER 0 makes close send RST), and ask the server to write.
fn reset_peer_and_write(server: &mut Target) {
    let port: u16 = server.words()[0].parse().unwrap();
    let peer = TcpStream::connect(("127.0.0.1", port)).unwrap();
    server
        .find_line(STATE_DEADLINE, |l| l == "accepted")
        .expect("server never accepted");
    reset_peer(peer);
    server.send("write");
}

fn sigpipe_ignored(p: &Target) -> bool {
    in_mask(&p.status("SigIgn"), SIGPIPE)
}

#[test]
fn list_names_every_playbook_with_its_arguments_and_summary() {
    let out = reach(&["--list"]);
    let (stdout, _) = (out.stdout.clone(), out.stderr.clone());
    assert!(out.status.success());
    let lines: Vec<&str> = stdout.lines().collect();
    for (name, args, summary) in [
        (
            "unstick",
            "SELECTOR... [force]",
            "wake a process stuck on a silent peer",
        ),
        (
            "reap-close-wait",
            "[REMOTE]",
            "connections stuck in CLOSE_WAIT",
        ),
        (
            "ignore-sigpipe",
            "[force]",
            "make the process ignore SIGPIPE",
        ),
        ("drop", "HOST:PORT...", "a given remote address and port"),
        (
            "tcpdrop",
            "HOST:PORT...",
            "with a reset, like BSD's tcpdrop",
        ),
        ("sockets", "[FILTER...]", "like `ss -tanp` for one pid"),
    ] {
        let at = lines
            .iter()
            .position(|l| l.trim() == format!("{name} {args}"))
            .unwrap_or_else(|| panic!("{name} {args}: {stdout}"));
        assert!(lines[at + 1].contains(summary), "{name}: {stdout}");
    }
}

#[test]
fn an_unknown_playbook_is_a_usage_error() {
    let out = reach(&["-p", "1", "no-such-playbook"]);
    let (_, stderr) = (out.stdout.clone(), out.stderr.clone());
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("reach --list"), "{stderr}");
}

#[test]
fn without_the_playbook_a_reset_peer_kills_the_perl_server() {
    let mut server = perl_server();
    assert!(!sigpipe_ignored(&server));
    reset_peer_and_write(&mut server);
    let status = server.wait_exit(STATE_DEADLINE);
    assert_eq!(status.signal(), Some(SIGPIPE));
}

#[test]
fn ignore_sigpipe_lets_the_perl_server_survive_a_reset_peer() {
    let mut server = perl_server();
    let pid = server.pid.to_string();
    let out = reach(&["-p", &pid, "ignore-sigpipe"]);
    let (stdout, stderr) = (out.stdout.clone(), out.stderr.clone());
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("now ignores SIGPIPE (signal(SIGPIPE, SIG_IGN))"),
        "{stdout}"
    );
    assert!(sigpipe_ignored(&server));
    assert_running(&server);

    reset_peer_and_write(&mut server);
    let line = server
        .find_line(STATE_DEADLINE, |l| l.starts_with("survived"))
        .expect("the server died");
    assert_eq!(line, "survived: Broken pipe");
    assert!(server.exited().is_none());

    // Twice is harmless: nothing left to do.
    let out = reach(&["-p", &pid, "ignore-sigpipe"]);
    let (stdout, _) = (out.stdout.clone(), out.stderr.clone());
    assert!(out.status.success());
    assert!(
        stdout.contains("already ignores SIGPIPE: nothing to do"),
        "{stdout}"
    );
}

#[test]
fn ignore_sigpipe_dry_run_changes_nothing() {
    let mut server = perl_server();
    let pid = server.pid.to_string();
    let out = reach(&["--dry-run", "-p", &pid, "ignore-sigpipe"]);
    let (stdout, stderr) = (out.stdout.clone(), out.stderr.clone());
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("dry-run: would call signal(13, 1)"),
        "{stdout}"
    );
    assert!(!sigpipe_ignored(&server));
    assert_running(&server);
    // Still as fragile as before.
    reset_peer_and_write(&mut server);
    let status = server.wait_exit(STATE_DEADLINE);
    assert_eq!(status.signal(), Some(SIGPIPE));
}

#[test]
fn ignore_sigpipe_without_libc_uses_the_system_call() {
    let mut writer = Target::spawn(Command::new(fixture("pb_pipe_writer")));
    assert!(!sigpipe_ignored(&writer));
    let out = reach(&["-p", &writer.pid.to_string(), "ignore-sigpipe"]);
    let (stdout, stderr) = (out.stdout.clone(), out.stderr.clone());
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("rt_sigaction"), "{stdout}");
    assert!(sigpipe_ignored(&writer));
    writer.send("go");
    let line = writer.find_line(STATE_DEADLINE, |l| l.starts_with("survived"));
    assert_eq!(line.as_deref(), Some("survived: Broken pipe"));
}

#[test]
fn ignore_sigpipe_leaves_a_handler_alone_unless_forced() {
    let python = Target::python(
        "import signal, time\n\
         signal.signal(signal.SIGPIPE, lambda *a: None)\n\
         print('ready', flush=True)\n\
         while True: time.sleep(0.5)\n",
        &[],
    );
    let pid = python.pid.to_string();
    let out = reach(&["-p", &pid, "ignore-sigpipe"]);
    let (_, stderr) = (out.stdout.clone(), out.stderr.clone());
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("has its own SIGPIPE handler"), "{stderr}");
    assert!(!sigpipe_ignored(&python));

    let out = reach(&["-p", &pid, "ignore-sigpipe", "force"]);
    let (_, stderr) = (out.stdout.clone(), out.stderr.clone());
    assert!(out.status.success(), "{stderr}");
    assert!(sigpipe_ignored(&python));
    assert_running(&python);

    let out = reach(&["-p", &pid, "ignore-sigpipe", "sideways"]);
    assert_eq!(out.status.code(), Some(2));
}

/// examples/leaky_server.py with `n` finished clients behind it (each left
/// a connection in CLOSE_WAIT); its port.
pub(crate) fn leaky_server_with_leaks(n: usize) -> (Target, u16) {
    let server = Target::example("leaky_server.py", &["0"], "leaky server pid");
    let port: u16 = server.ready.rsplit(':').next().unwrap().parse().unwrap();
    for _ in 0..n {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(b"hello\n").unwrap();
        let mut reply = [0u8; 3];
        c.read_exact(&mut reply).unwrap();
    }
    let held = format!("client left; {n} connections held");
    server
        .find_line(STATE_DEADLINE, |l| l == held)
        .expect("the server did not see its clients leave");
    (server, port)
}

/// Ask the leaky server to write to every connection it holds.
fn announce(port: u16) {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"announce hello all\n").unwrap();
}

#[test]
fn the_leaky_server_example_dies_of_sigpipe_on_its_own() {
    let (mut server, port) = leaky_server_with_leaks(2);
    announce(port);
    let status = server.wait_exit(STATE_DEADLINE);
    assert_eq!(status.signal(), Some(SIGPIPE));
}

#[test]
fn ignore_sigpipe_keeps_the_leaky_server_example_alive() {
    let (mut server, port) = leaky_server_with_leaks(3);
    let out = reach(&["-p", &server.pid.to_string(), "ignore-sigpipe"]);
    let (_, stderr) = (out.stdout.clone(), out.stderr.clone());
    assert!(out.status.success(), "{stderr}");
    announce(port);
    // Its own error path drops the dead connections, and it goes on.
    for _ in 0..3 {
        server
            .find_line(STATE_DEADLINE, |l| {
                l == "dropping a connection: Broken pipe"
            })
            .expect("the server did not drop a dead connection");
    }
    server
        .find_line(STATE_DEADLINE, |l| l.starts_with("announced to "))
        .expect("the server died");
    assert!(server.exited().is_none());
}

// ---------------------------------------------------------------- unstick

/// A silent server: accepts one connection and never answers.
fn silent_server() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// examples/stuck_client.py against `port`, once it is blocked in recv().
fn stuck_client(listener: &TcpListener, port: u16) -> (Target, TcpStream) {
    let addr = format!("127.0.0.1:{port}");
    let client = Target::example("stuck_client.py", &[&addr], "client pid");
    let (peer, _) = listener.accept().unwrap();
    assert!(
        wait_until(STATE_DEADLINE, || task_syscall(client.pid, client.pid)
            == Some(SYS_RECVFROM)),
        "the client never blocked in recvfrom"
    );
    (client, peer)
}

#[test]
fn unstick_wakes_the_stuck_client_example_and_its_job_carries_on() {
    let (listener, port) = silent_server();
    let (mut client, mut peer) = stuck_client(&listener, port);
    let out = reach(&[
        "-p",
        &client.pid.to_string(),
        "unstick",
        &format!("127.0.0.1:{port}"),
    ]);
    let (stdout, stderr) = (out.stdout.clone(), out.stderr.clone());
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("waited on by thread {}", client.pid)),
        "{stdout}"
    );
    assert!(
        stdout.contains("left its system call") || stdout.contains("exited after the shutdown"),
        "{stdout}"
    );
    client
        .find_line(STATE_DEADLINE, |l| {
            l.contains("recording the request as failed")
        })
        .expect("the client did not take its error path");
    client
        .find_line(STATE_DEADLINE, |l| l == "job finished")
        .expect("the job did not finish");
    let status = client.wait_exit(STATE_DEADLINE);
    assert_eq!(status.code(), Some(0));
    // The peer saw the connection end.
    let mut buf = [0u8; 64];
    let n = peer.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"GET /report\n");
    assert_eq!(peer.read(&mut buf).unwrap(), 0);
}

#[test]
fn unstick_dry_run_leaves_the_client_stuck() {
    let (listener, port) = silent_server();
    let (client, _peer) = stuck_client(&listener, port);
    let pid = client.pid.to_string();
    let out = reach(&["--dry-run", "-p", &pid, "unstick", &format!(":{port}")]);
    let (stdout, stderr) = (out.stdout.clone(), out.stderr.clone());
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("dry-run: would shut down fd"), "{stdout}");
    assert_eq!(task_syscall(client.pid, client.pid), Some(SYS_RECVFROM));
    assert_eq!(tcp_count(client.pid, ESTABLISHED), 1);
    assert_running(&client);
}

/// A Perl client blocked in sysread on `port`; after waking it reports and
/// waits on stdin, so it can be looked at again.
fn perl_reader(port: u16) -> Target {
    let mut cmd = Command::new("perl");
    cmd.arg("-e")
        .arg(
            r#"use IO::Socket::INET; $| = 1;
        my $s = IO::Socket::INET->new("127.0.0.1:$ARGV[0]") or die "connect: $!";
        print "ready ", fileno($s), "\n";
        my $n = sysread($s, my $buf, 100);
        print defined $n ? "woke: $n bytes\n" : "woke: $!\n";
        <STDIN>;"#,
        )
        .arg(port.to_string());
    Target::spawn(cmd)
}

#[test]
fn unstick_by_fd_number_wakes_a_perl_reader_and_is_safe_twice() {
    let (listener, port) = silent_server();
    let reader = perl_reader(port);
    let (_peer, _) = listener.accept().unwrap();
    assert!(wait_until(STATE_DEADLINE, || task_syscall(
        reader.pid, reader.pid
    ) == Some(SYS_READ)));
    let fd = reader.words()[0];
    let pid = reader.pid.to_string();

    let out = reach(&["-p", &pid, "unstick", fd]);
    let (stdout, stderr) = (out.stdout.clone(), out.stderr.clone());
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("thread {pid} left its system call on fd {fd}")),
        "{stdout}"
    );
    let woke = reader.find_line(STATE_DEADLINE, |l| l.starts_with("woke"));
    assert_eq!(woke.as_deref(), Some("woke: 0 bytes"));
    assert_running(&reader);

    // Again: nobody waits any more and it is shut down; nothing to do.
    let out = reach(&["-p", &pid, "unstick", fd]);
    let (stdout, stderr) = (out.stdout.clone(), out.stderr.clone());
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("already shut down"), "{stdout}");
}

#[test]
fn unstick_checks_its_arguments() {
    let (listener, port) = silent_server();
    let (client, _peer) = stuck_client(&listener, port);
    let pid = client.pid.to_string();
    for args in [
        vec!["unstick"],
        vec!["unstick", "somewhere"],
        vec!["unstick", "10.0.0.1:http"],
    ] {
        let mut all = vec!["-p", &pid];
        all.extend(args.iter());
        let out = reach(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
    }
    let out = reach(&["-p", &pid, "unstick", "10.9.9.9:1"]);
    assert!(out.status.success());
    assert!(out.stdout.contains("nothing to do"));
    assert_eq!(task_syscall(client.pid, client.pid), Some(SYS_RECVFROM));
}

// ---------------------------------------------------------- reap-close-wait

#[test]
fn reap_close_wait_empties_close_wait_and_the_server_survives() {
    let (mut server, port) = leaky_server_with_leaks(3);
    let pid = server.pid.to_string();
    assert_eq!(tcp_count(server.pid, CLOSE_WAIT), 3);

    let out = reach(&["-p", &pid, "ignore-sigpipe"]);
    assert!(out.status.success(), "{}", out.stderr);
    let out = reach(&["-p", &pid, "reap-close-wait"]);
    let (stdout, stderr) = (out.stdout.clone(), out.stderr.clone());
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("before: 3 connection(s) in CLOSE_WAIT"),
        "{stdout}"
    );
    assert!(
        stdout.contains("after: 0 connection(s) in CLOSE_WAIT"),
        "{stdout}"
    );
    assert_eq!(tcp_count(server.pid, CLOSE_WAIT), 0);

    // Twice: nothing to do.
    let out = reach(&["-p", &pid, "reap-close-wait"]);
    let (stdout, _) = (out.stdout.clone(), out.stderr.clone());
    assert!(out.status.success());
    assert!(
        stdout.contains("before: 0") && stdout.contains("nothing to do"),
        "{stdout}"
    );

    // The server still works: its writes to the reaped connections fail
    // with EPIPE, and it drops them.
    announce(port);
    server
        .find_line(STATE_DEADLINE, |l| l.starts_with("announced to "))
        .expect("the server died");
    assert!(server.exited().is_none());
}

#[test]
fn reap_close_wait_dry_run_and_remote_filter() {
    let (server, _port) = leaky_server_with_leaks(3);
    let pid = server.pid.to_string();
    let out = reach(&["--dry-run", "-p", &pid, "reap-close-wait"]);
    let (stdout, stderr) = (out.stdout.clone(), out.stderr.clone());
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout.matches("dry-run: would shut down fd").count(),
        3,
        "{stdout}"
    );
    assert_eq!(tcp_count(server.pid, CLOSE_WAIT), 3);

    // Only the connection from one client port.
    let out = reach(&[
        "-p",
        &pid,
        "-e",
        "fds().filter(|f| f.state == \"CLOSE_WAIT\")[0].remote",
    ]);
    let remote = out.stdout.trim().to_string();
    let out = reach(&["-p", &pid, "reap-close-wait", &remote]);
    let (stdout, stderr) = (out.stdout.clone(), out.stderr.clone());
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("before: 1 connection(s) to {remote}")),
        "{stdout}"
    );
    assert_eq!(tcp_count(server.pid, CLOSE_WAIT), 2);

    let out = reach(&["-p", &pid, "reap-close-wait", "a", "b"]);
    assert_eq!(out.status.code(), Some(2));
    assert_running(&server);
}

// ------------------------------------------------------------------- drop

#[test]
fn drop_shuts_down_connections_to_one_address_only() {
    let (a, port_a) = silent_server();
    let (b, port_b) = silent_server();
    let python = Target::python(
        "import socket, sys, time\n\
         a = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n\
         b = socket.create_connection(('127.0.0.1', int(sys.argv[2])))\n\
         print('ready', flush=True)\n\
         while True: time.sleep(0.5)\n",
        &[&port_a.to_string(), &port_b.to_string()],
    );
    let (mut peer_a, _) = a.accept().unwrap();
    let (mut peer_b, _) = b.accept().unwrap();
    let pid = python.pid.to_string();
    let addr_a = format!("127.0.0.1:{port_a}");

    let out = reach(&["--dry-run", "-p", &pid, "drop", &addr_a]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(tcp_count(python.pid, ESTABLISHED), 2);

    let out = reach(&["-p", &pid, "drop", &addr_a]);
    let (stdout, stderr) = (out.stdout.clone(), out.stderr.clone());
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("dropped 1 connection(s) to {addr_a}\n")),
        "{stdout}"
    );
    let mut buf = [0u8; 8];
    assert_eq!(
        peer_a.read(&mut buf).unwrap(),
        0,
        "peer A should see the end"
    );
    peer_b.set_nonblocking(true).unwrap();
    assert!(peer_b.read(&mut buf).is_err(), "peer B should see nothing");
    assert_eq!(tcp_count(python.pid, ESTABLISHED), 1);
    assert_running(&python);

    let out = reach(&["-p", &pid, "drop", &addr_a]);
    assert!(out.status.success());
    assert!(out.stdout.contains("nothing to do"));
    let out = reach(&["-p", &pid, "drop", "127.0.0.1"]);
    assert_eq!(out.status.code(), Some(2));
}

// ---------------------------------------------------------------- sockets

#[test]
fn sockets_prints_the_socket_table_and_filters() {
    let (server, port) = leaky_server_with_leaks(2);
    let pid = server.pid.to_string();
    let out = reach(&["-p", &pid, "sockets"]);
    let (stdout, stderr) = (out.stdout.clone(), out.stderr.clone());
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.lines().next().unwrap().contains("STATE"), "{stdout}");
    assert!(stdout.contains("LISTEN"), "{stdout}");
    assert_eq!(stdout.matches("CLOSE_WAIT").count(), 2, "{stdout}");
    assert!(stdout.contains(&format!("127.0.0.1:{port}")));

    let out = reach(&["--json", "-p", &pid, "sockets", "close_wait"]);
    let (stdout, stderr) = (out.stdout.clone(), out.stderr.clone());
    assert!(out.status.success(), "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["changed"], false, "{stdout}");
    let rows = doc["value"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(rows.iter().all(|r| r["state"] == "CLOSE_WAIT"));

    // ss's spelling is accepted too; what is neither a protocol nor a
    // state is a usage error.
    let out = reach(&["--json", "-p", &pid, "sockets", "CLOSE-WAIT"]);
    assert_ok(&out);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["value"].as_array().unwrap().len(), 2, "{}", out.stdout);
    let out = reach(&["-p", &pid, "sockets", "ESTAB"]);
    assert_ok(&out);
    let out = reach(&["-p", &pid, "sockets", "bogus"]);
    assert_error(&out, 2, &["BOGUS", "neither a protocol nor a socket state"]);
    assert_running(&server);
}

// ------------------------------------------- builtins the playbooks lean on

#[test]
fn status_reads_proc_without_stopping_and_pause_waits() {
    let python = Target::python(
        "import time\nprint('ready', flush=True)\nwhile True: time.sleep(0.5)\n",
        &[],
    );
    let pid = python.pid.to_string();
    let started = std::time::Instant::now();
    let out = reach(&[
        "--json",
        "-p",
        &pid,
        "-e",
        "let s = status(); pause(300); [s.Name, s.TracerPid, s.Pid, DRY_RUN]",
    ]);
    let (stdout, stderr) = (out.stdout.clone(), out.stderr.clone());
    assert!(out.status.success(), "{stderr}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v, serde_json::json!(["python3", "0", pid, false]));
    assert_running(&python);

    let out = reach(&["-e", "pause(-1)"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("pause takes 0 to"));
}

#[test]
fn ignore_sigpipe_fails_when_the_effect_does_not_happen() {
    let target = Target::spawn(Command::new(fixture("pb_fake_signal")));
    let out = reach(&["-p", &target.pid.to_string(), "ignore-sigpipe"]);
    let (stdout, stderr) = (out.stdout.clone(), out.stderr.clone());
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("still does not ignore SIGPIPE"), "{stderr}");
    assert!(!sigpipe_ignored(&target));
    assert_running(&target);
}
