//! Each playbook end to end: the real binary against real processes, and
//! what the process did afterwards.

mod live;

use live::{DEADLINE, Proc, fixture, in_mask, reach, text};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

const SIGPIPE: i32 = 13;

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

fn perl_server() -> Proc {
    let mut cmd = Command::new("perl");
    cmd.arg("-e").arg(PERL_SERVER);
    Proc::spawn(cmd)
}

/// Connect to the server, wait for it to accept, then reset the connection
/// (SO_LINGER 0 makes close send RST), and ask the server to write.
fn reset_peer_and_write(server: &mut Proc) {
    let port: u16 = server.ready[0].parse().unwrap();
    let peer = TcpStream::connect(("127.0.0.1", port)).unwrap();
    server
        .line_matching(DEADLINE, |l| l == "accepted")
        .expect("server never accepted");
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized option.
    let rc = unsafe {
        libc::setsockopt(
            peer.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as u32,
        )
    };
    assert_eq!(rc, 0);
    drop(peer);
    server.send("write");
}

fn sigpipe_ignored(p: &Proc) -> bool {
    in_mask(&p.status("SigIgn"), SIGPIPE)
}

#[test]
fn list_names_every_playbook_with_its_summary() {
    let out = reach(&["--list"]);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert!(
        stdout.contains("ignore-sigpipe  make the process ignore SIGPIPE"),
        "{stdout}"
    );
}

#[test]
fn an_unknown_playbook_is_a_usage_error() {
    let out = reach(&["-p", "1", "no-such-playbook"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("reach --list"), "{stderr}");
}

#[test]
fn without_the_playbook_a_reset_peer_kills_the_perl_server() {
    let mut server = perl_server();
    assert!(!sigpipe_ignored(&server));
    reset_peer_and_write(&mut server);
    let status = server.wait_exit(DEADLINE).expect("server kept running");
    assert_eq!(status.signal(), Some(SIGPIPE));
}

#[test]
fn ignore_sigpipe_lets_the_perl_server_survive_a_reset_peer() {
    let mut server = perl_server();
    let pid = server.pid.to_string();
    let out = reach(&["-p", &pid, "ignore-sigpipe"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("now ignores SIGPIPE (signal(SIGPIPE, SIG_IGN))"),
        "{stdout}"
    );
    assert!(sigpipe_ignored(&server));
    server.assert_untouched();

    reset_peer_and_write(&mut server);
    let line = server
        .line_matching(DEADLINE, |l| l.starts_with("survived"))
        .expect("the server died");
    assert_eq!(line, "survived: Broken pipe");
    assert!(server.exited().is_none());

    // Twice is harmless: nothing left to do.
    let out = reach(&["-p", &pid, "ignore-sigpipe"]);
    let (stdout, _) = text(&out);
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
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("dry-run: would call signal(13, 1)"),
        "{stdout}"
    );
    assert!(!sigpipe_ignored(&server));
    server.assert_untouched();
    // Still as fragile as before.
    reset_peer_and_write(&mut server);
    let status = server.wait_exit(DEADLINE).expect("server kept running");
    assert_eq!(status.signal(), Some(SIGPIPE));
}

#[test]
fn ignore_sigpipe_without_libc_uses_the_system_call() {
    let mut writer = Proc::spawn(Command::new(fixture("pb_pipe_writer", &["-static", "-s"])));
    assert!(!sigpipe_ignored(&writer));
    let out = reach(&["-p", &writer.pid.to_string(), "ignore-sigpipe"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("rt_sigaction"), "{stdout}");
    assert!(sigpipe_ignored(&writer));
    writer.send("go");
    let line = writer.line_matching(DEADLINE, |l| l.starts_with("survived"));
    assert_eq!(line.as_deref(), Some("survived: Broken pipe"));
}

#[test]
fn ignore_sigpipe_leaves_a_handler_alone_unless_forced() {
    let python = Proc::python(
        "import signal, time\n\
         signal.signal(signal.SIGPIPE, lambda *a: None)\n\
         print('ready', flush=True)\n\
         while True: time.sleep(0.5)\n",
        &[],
    );
    let pid = python.pid.to_string();
    let out = reach(&["-p", &pid, "ignore-sigpipe"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("has its own SIGPIPE handler"), "{stderr}");
    assert!(!sigpipe_ignored(&python));

    let out = reach(&["-p", &pid, "ignore-sigpipe", "force"]);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(sigpipe_ignored(&python));
    python.assert_untouched();

    let out = reach(&["-p", &pid, "ignore-sigpipe", "sideways"]);
    assert_eq!(out.status.code(), Some(2));
}

/// examples/leaky_server.py with `n` finished clients behind it (each left
/// a connection in CLOSE_WAIT); its port.
fn leaky_server_with_leaks(n: usize) -> (Proc, u16) {
    let mut server = Proc::example("leaky_server.py", &["0"], "leaky server pid");
    let port: u16 = server.ready[2].rsplit(':').next().unwrap().parse().unwrap();
    for _ in 0..n {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(b"hello\n").unwrap();
        let mut reply = [0u8; 3];
        c.read_exact(&mut reply).unwrap();
    }
    let held = format!("client left; {n} connections held");
    server
        .line_matching(DEADLINE, |l| l == held)
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
    let status = server.wait_exit(DEADLINE).expect("server kept running");
    assert_eq!(status.signal(), Some(SIGPIPE));
}

#[test]
fn ignore_sigpipe_keeps_the_leaky_server_example_alive() {
    let (mut server, port) = leaky_server_with_leaks(3);
    let out = reach(&["-p", &server.pid.to_string(), "ignore-sigpipe"]);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    announce(port);
    // Its own error path drops the dead connections, and it goes on.
    for _ in 0..3 {
        server
            .line_matching(DEADLINE, |l| l == "dropping a connection: Broken pipe")
            .expect("the server did not drop a dead connection");
    }
    server
        .line_matching(DEADLINE, |l| l.starts_with("announced to "))
        .expect("the server died");
    assert!(server.exited().is_none());
}
