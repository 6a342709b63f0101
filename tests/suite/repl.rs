//! The REPL through a pseudo-terminal: what an operator types, what they
//! see, and what happens to the target.

use crate::support::*;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Python target that says ready and then sleeps in a loop.
const SLEEPER: &str = "import time\nprint('ready', flush=True)\nwhile True: time.sleep(0.5)\n";

/// `reach` on the slave side of a pty, as its controlling terminal, so the
/// terminal's Ctrl-C reaches it as SIGINT the way it would for a person.
struct Repl {
    master: File,
    child: Child,
    /// Everything the terminal showed, escape sequences and `\r` removed.
    seen: String,
    /// How far `expect` has consumed `seen`.
    at: usize,
    raw: Vec<u8>,
}

impl Repl {
    fn start(args: &[&str], state: &Path) -> Repl {
        let (mut master, mut slave) = (-1, -1);
        let size = libc::winsize {
            ws_row: 40,
            ws_col: 200,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // openpty's descriptors are not close-on-exec: no fork may copy
        // them before they are marked.
        let forks = no_forks();
        // SAFETY: out-pointers to two ints; no name buffer, default termios.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(rc, 0, "openpty failed");
        for fd in [master, slave] {
            // SAFETY: a descriptor we just got.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        drop(forks);
        // SAFETY: openpty returned two fresh descriptors we now own.
        let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let mut cmd = Command::new(reach_bin());
        cmd.args(args)
            .env("XDG_STATE_HOME", state)
            .env("TERM", "xterm")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                libc::ioctl(0, libc::TIOCSCTTY, 0);
                Ok(())
            });
        }
        let child = spawn(&mut cmd).expect("start reach");
        drop(cmd); // closes our copies of the slave side
        Repl {
            master,
            child,
            seen: String::new(),
            at: 0,
            raw: Vec::new(),
        }
    }

    fn send(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
        self.master.flush().unwrap();
    }

    /// Read whatever the terminal shows within `wait`.
    fn pump(&mut self, wait: Duration) -> bool {
        let mut fds = libc::pollfd {
            fd: self.master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut fds, 1, wait.as_millis() as i32) };
        if n <= 0 {
            return true;
        }
        let mut buf = [0u8; 4096];
        match self.master.read(&mut buf) {
            Ok(0) | Err(_) => false, // EIO: the slave side is closed
            Ok(n) => {
                self.raw.extend_from_slice(&buf[..n]);
                self.seen = clean(&self.raw);
                true
            }
        }
    }

    /// Wait until `needle` shows up after what was already matched; return
    /// the text up to and including it.
    fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + STATE_DEADLINE;
        loop {
            if let Some(i) = self.seen[self.at..].find(needle) {
                let end = self.at + i + needle.len();
                let text = self.seen[self.at..end].to_string();
                self.at = end;
                return text;
            }
            let open = self.pump(Duration::from_millis(100));
            assert!(
                open && Instant::now() < deadline,
                "never saw {needle:?}; the terminal showed:\n{}",
                &self.seen[self.at..]
            );
        }
    }

    /// Type `input` and Enter; wait for the input to be accepted (its last
    /// line echoed, then a newline) and for the next `prompt`; return what
    /// was printed in between.
    fn line(&mut self, input: &str, prompt: &str) -> String {
        self.send(&format!("{input}\r"));
        let last = input.lines().last().unwrap_or("");
        self.expect(&format!("{last}\n"));
        let shown = self.expect(prompt);
        shown[..shown.len() - prompt.len()].to_string()
    }

    /// Wait for reach to exit, reading what it shows meanwhile; its exit
    /// code.
    fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + STATE_DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "reach did not exit; the terminal showed:\n{}",
                self.seen
            );
            if !self.pump(Duration::from_millis(50)) {
                pause(Duration::from_millis(10));
            }
        }
    }
}

impl Drop for Repl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Terminal output as text: CSI escape sequences and carriage returns out.
fn clean(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' if chars.peek() == Some(&'[') => {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

fn prompt_of(target: &Target) -> String {
    format!("reach[{} python3]> ", target.pid)
}

#[test]
fn multi_line_definitions_history_errors_and_ctrl_d() {
    let target = Target::python(SLEEPER, &[]);
    let state = workdir("repl-state");
    let pid = target.pid.to_string();
    let prompt = prompt_of(&target);
    let mut repl = Repl::start(&["-p", &pid], &state);
    repl.expect(&prompt);

    // A function over three lines: the first two are unfinished to Rhai,
    // and each is followed by the continuation prompt (typed after it, as
    // a person does: text typed ahead while reach is busy is echoed by the
    // terminal as well).
    repl.send("fn twice(x) {\r");
    repl.expect("...> ");
    repl.send("  x * 2\r");
    repl.expect("  x * 2\n");
    repl.expect("...> ");
    assert_eq!(repl.line("}", &prompt), "");
    assert_eq!(repl.line("twice(21)", &prompt), "42\n");

    // Variables persist too.
    assert_eq!(repl.line("let n = call(\"getpid\", []);", &prompt), "");
    assert_eq!(repl.line("n == PID", &prompt), "true\n");

    // An error shows the line and a caret, and the session goes on.
    let shown = repl.line("let y = twice(;", &prompt);
    assert!(shown.starts_with("error: syntax error"), "{shown}");
    assert!(
        shown.contains("  | let y = twice(;\n  |               ^"),
        "{shown}"
    );
    let shown = repl.line("call(\"no_such_function\", [])", &prompt);
    assert!(
        shown.contains("error: symbol \"no_such_function\" not found"),
        "{shown}"
    );
    assert_eq!(repl.line("twice(5)", &prompt), "10\n");

    // Ctrl-C drops a half-typed line.
    repl.send("let lost = 1");
    repl.expect("let lost = 1");
    repl.send("\x03");
    repl.expect(&prompt);
    let shown = repl.line("lost", &prompt);
    assert!(shown.contains("Variable not found: lost"), "{shown}");

    // Up arrow recalls earlier lines: two up is `twice(5)`.
    repl.send("\x1b[A\x1b[A");
    assert_eq!(repl.line("", &prompt), "10\n");

    // Tab completes constants and builtins, and the target's own symbols
    // inside call("…
    repl.send("SIGPI\t");
    repl.expect("SIGPIPE");
    assert_eq!(repl.line("", &prompt), "13\n");
    repl.send("call(\"getpi\t");
    repl.expect("call(\"getpid");
    assert_eq!(repl.line("\", [])", &prompt), format!("{pid}\n"));
    let shown = repl.line("help(\"call\")", &prompt);
    assert!(shown.contains("example: call("), "{shown}");

    // help() comes from the one table: every builtin, each with an example.
    let shown = repl.line("help()", &prompt);
    for b in reach::script::builtins::BUILTINS {
        assert!(
            shown.contains(&format!("  {} ", b.name)),
            "{}: {shown}",
            b.name
        );
        assert!(
            shown.contains(&format!("e.g. {}", b.example)),
            "{}: {shown}",
            b.name
        );
    }

    // Arrays of Fd print as a table.
    let shown = repl.line("fds()", &prompt);
    assert!(
        shown.lines().next().unwrap_or("").contains("FD  KIND"),
        "{shown}"
    );

    // Ctrl-D leaves with status 0; the target never noticed.
    repl.send("\x04");
    assert_eq!(repl.wait_exit(), 0);
    assert_running(&target);

    // History survives into the next session, multi-line entries whole.
    let history = std::fs::read_to_string(state.join("reach/history")).unwrap();
    assert!(history.contains("twice(21)"), "{history}");
    let mut again = Repl::start(&["-p", &pid], &state);
    again.expect(&prompt);
    again.send("\x1b[A");
    again.expect("fds()");
    // Ctrl-U clears the recalled line; a multi-line entry comes back whole.
    again.send("\x15");
    again.send(&"\x1b[A".repeat(30));
    again.expect("fn twice(x) {\n  x * 2\n}");
    assert_eq!(again.line("", &prompt), "");
    assert_eq!(again.line("twice(4)", &prompt), "8\n");
    again.send("\x04");
    assert_eq!(again.wait_exit(), 0);
}

#[test]
fn ctrl_c_during_a_call_returns_to_the_prompt_with_the_target_intact() {
    let target = Target::python(SLEEPER, &[]);
    let state = workdir("repl-state");
    let pid = target.pid.to_string();
    let prompt = prompt_of(&target);
    let mut repl = Repl::start(&["-p", &pid], &state);
    repl.expect(&prompt);

    let started = Instant::now();
    repl.send("call(\"sleep\", [5])\r");
    // The call is under way once reach traces the target.
    assert!(wait_until(STATE_DEADLINE, || target.status("TracerPid") != "0"));
    repl.send("\x03");
    let shown = repl.expect(&prompt);
    assert!(shown.contains("interrupted by SIGINT"), "{shown}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the call ran to the end"
    );
    assert_running(&target);

    // The session and the target both carry on.
    repl.send("call(\"getpid\", [])\r");
    assert!(repl.expect(&prompt).contains(&format!("\n{pid}\n")));
    repl.send("\x04");
    assert_eq!(repl.wait_exit(), 0);
    assert_running(&target);
}

#[test]
fn ctrl_d_releases_a_frozen_target() {
    let target = Target::python(SLEEPER, &[]);
    let state = workdir("repl-state");
    let pid = target.pid.to_string();
    let mut repl = Repl::start(&["-p", &pid], &state);
    repl.expect(&prompt_of(&target));
    repl.send("freeze()\r");
    repl.expect(&format!("reach[{pid} python3 frozen]> "));
    assert_ne!(target.status("TracerPid"), "0");
    assert_eq!(crate::support::state(target.pid).unwrap(), 't');
    repl.send("\x04");
    assert_eq!(repl.wait_exit(), 0);
    assert_running(&target);
}

#[test]
fn repl_manners_as_in_python() {
    let target = Target::python(SLEEPER, &[]);
    let state = workdir("repl-state");
    let pid = target.pid.to_string();
    let prompt = prompt_of(&target);
    let mut repl = Repl::start(&["-p", &pid], &state);
    repl.expect(&prompt);

    // An unfinished entry shows a continuation prompt.
    repl.send("let xs = [1,\r");
    repl.expect("...> ");
    assert_eq!(repl.line("2];", &prompt), "");
    assert_eq!(repl.line("xs.len()", &prompt), "2\n");

    // An unterminated string is an error at once, not a wait.
    let shown = repl.line("\"abc", &prompt);
    assert!(shown.contains("error: syntax error"), "{shown}");

    // Addresses print in hex; hex() shows any int that way.
    let shown = repl.line("sym(\"getpid\")", &prompt);
    assert!(shown.starts_with("0x7f"), "{shown}");
    assert_eq!(repl.line("hex(255)", &prompt), "0xff\n");

    // Bare help lists the builtins; bare exit leaves with status 0.
    let shown = repl.line("help", &prompt);
    assert!(shown.contains("builtins (help(\"name\")"), "{shown}");
    repl.send("exit\r");
    assert_eq!(repl.wait_exit(), 0);
    assert_running(&target);

    let mut repl = Repl::start(&["-p", &pid], &state);
    repl.expect(&prompt);
    repl.send("quit\r");
    assert_eq!(repl.wait_exit(), 0);
}

#[test]
fn without_a_target_the_prompt_says_so_and_attach_names_it() {
    let target = Target::python(SLEEPER, &[]);
    let state = workdir("repl-state");
    let mut repl = Repl::start(&[], &state);
    repl.expect("reach> ");
    repl.send(&format!("attach({});\r", target.pid));
    repl.expect(&prompt_of(&target));
    repl.send("PID\r");
    assert!(
        repl.expect(&prompt_of(&target))
            .contains(&format!("\n{}\n", target.pid))
    );
    repl.send("\x04");
    assert_eq!(repl.wait_exit(), 0);
}

#[test]
fn sigterm_at_the_prompt_ends_the_session_and_releases_a_frozen_target() {
    let target = Target::python(SLEEPER, &[]);
    let state = workdir("repl-state");
    let pid = target.pid.to_string();
    let mut repl = Repl::start(&["-p", &pid], &state);
    repl.expect(&prompt_of(&target));
    repl.send("freeze()\r");
    repl.expect(&format!("reach[{pid} python3 frozen]> "));
    assert_eq!(crate::support::state(target.pid).unwrap(), 't');
    // SAFETY: our own child.
    unsafe { libc::kill(repl.child.id() as i32, libc::SIGTERM) };
    assert_eq!(repl.wait_exit(), 1);
    assert!(
        repl.seen.contains("left the session on SIGTERM"),
        "{}",
        repl.seen
    );
    assert_running(&target);
}

/// A target named with escape sequences: the prompt shows its name
/// escaped, and the terminal never receives the sequence.
#[test]
fn a_hostile_process_name_is_escaped_in_the_prompt() {
    let dir = workdir("repl-names");
    let mut cmd = Command::new(fixture("hostile"));
    cmd.arg("names").arg(&dir);
    let target = Target::spawn(cmd);
    let state = workdir("repl-state");
    let mut repl = Repl::start(&["-p", &target.pid.to_string()], &state);
    repl.expect(&format!("reach[{} \\e[2Jmain\\r]> ", target.pid));
    repl.send("\x04");
    assert_eq!(repl.wait_exit(), 0);
    let raw = String::from_utf8_lossy(&repl.raw);
    assert!(!raw.contains("\x1b[2J"), "{raw:?}");
    assert_running(&target);
}

/// A call reach has to leave running (its callee sleeps uninterruptibly
/// past the timeout and beyond) leaves the session open; when the callee
/// returns, the thread is let go at once, while the prompt waits and
/// nothing is typed.
#[test]
fn a_call_left_running_is_let_go_while_the_prompt_waits() {
    let mut target = Target::fixture("hostile", &["dcall"]);
    let pid = target.pid;
    let state = workdir("repl-state");
    let mut repl = Repl::start(&["-p", &pid.to_string(), "--timeout", "1"], &state);
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    let prompt = format!("reach[{pid} {}]> ", comm.trim());
    repl.expect(&prompt);
    let shown = repl.line(r#"call("wait_in_vfork", [])"#, &prompt);
    assert!(shown.contains("could not be taken back"), "{shown}");
    // Still in the callee, held by reach, which sits at its prompt.
    assert_eq!(task_state(pid, pid), Some('D'));
    assert_eq!(tracer_pid(pid), repl.child.id() as i32);
    let release = format!("/proc/{pid}/fd/{}", target.field("release"));
    std::fs::write(release, "x").unwrap();
    assert!(
        wait_until(STATE_DEADLINE, || tracer_pid(pid) == 0),
        "the thread stayed held while the prompt waited"
    );
    // It restored itself from reach's frame and reads its stdin again.
    assert_eq!(target.ask("ping"), "pong");
    repl.send("\x04");
    assert_eq!(repl.wait_exit(), 0);
    assert_untouched(&target);
}
