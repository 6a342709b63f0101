//! `stacks()`: each thread's native stack, compared with gdb where it is
//! installed, on C programs with and without frame pointers, 64 threads,
//! Python, Perl, a static and a Go binary, and code with no unwind
//! information; and what the target felt: no thread left stopped, never
//! two stopped at once, and blocked threads not stopped at all.

use crate::support::*;
use std::process::Command;

/// The functions of `stack` (a Stack as JSON), innermost first, without
/// GCC's clone suffixes (`read_reply.constprop.0`).
fn functions(stack: &serde_json::Value) -> Vec<String> {
    stack["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let name = f["function"].as_str().unwrap_or("??");
            name.split('.').next().unwrap_or(name).to_string()
        })
        .collect()
}

/// `want` appears in `have` in this order (other frames between).
fn in_order(have: &[String], want: &[&str]) -> bool {
    let mut at = 0;
    want.iter()
        .all(|w| match have[at..].iter().position(|h| h == w) {
            Some(i) => {
                at += i + 1;
                true
            }
            None => false,
        })
}

fn stacks_json(pid: i32) -> Vec<serde_json::Value> {
    let v = eval_json(pid, "stacks()");
    v.as_array().unwrap().clone()
}

fn main_stack(pid: i32) -> serde_json::Value {
    stacks_json(pid)
        .into_iter()
        .find(|s| s["tid"] == pid)
        .expect("no stack for the main thread")
}

/// The fixture, blocked in read() three calls deep, with frame pointers.
fn backtrace(args: &[&str]) -> Target {
    Target::fixture("backtrace", args)
}

/// The same program built -O2 without frame pointers (CFI only).
fn backtrace_o2(args: &[&str]) -> Target {
    let args_cc: Vec<String> = ["-O2", "-g", "-fomit-frame-pointer", "-pthread", "-Wall"]
        .map(String::from)
        .to_vec();
    let bin = build_once(
        "cc",
        "backtrace_o2",
        &[fixture_source("backtrace.c")],
        &args_cc,
    );
    let mut cmd = Command::new(bin);
    cmd.args(args);
    Target::spawn(cmd)
}

/// The fixture was left as it was: untouched, and it still reads its
/// input and answers (its spinner's gap, not asserted: a time).
fn assert_still_reads(t: &mut Target) {
    assert_untouched(t);
    t.send("x");
    let gap = t.find_line(STATE_DEADLINE, |l| l.starts_with("gap"));
    assert!(gap.is_some(), "the fixture stopped answering");
    eprintln!("spinner's longest {}", gap.unwrap_or_default());
}

/// The addresses gdb's `bt` shows, frame by frame.
fn gdb_addresses(pid: i32) -> Vec<u64> {
    let out = output(
        Command::new("gdb").args(["-batch", "-nx", "-p", &pid.to_string(), "-ex", "bt"]),
        REACH_DEADLINE,
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('#'))
        .filter_map(|l| {
            let word = l.split_whitespace().nth(1)?;
            u64::from_str_radix(word.strip_prefix("0x")?, 16).ok()
        })
        .collect()
}

#[test]
fn a_c_program_three_calls_deep_shows_them_with_lines_as_gdb_does() {
    let mut t = backtrace(&[]);
    assert!(wait_blocked(t.pid, t.pid, libc::SYS_read));
    let stack = main_stack(t.pid);
    let names = functions(&stack);
    assert!(
        in_order(&names, &["read_reply", "fetch", "main"]),
        "{stack:#}"
    );
    let frames = stack["frames"].as_array().unwrap();
    let reply = frames
        .iter()
        .find(|f| f["function"] == "read_reply")
        .unwrap();
    assert!(
        reply["file"].as_str().unwrap().ends_with("backtrace.c") && reply["line"].is_u64(),
        "{reply}"
    );
    // A walk that needs the frame pointer stops the thread for the copy.
    assert_eq!(stack["stopped"], true);
    assert_eq!(stack["syscall"], "read");
    assert_eq!(stack["fd"], 0);
    if have("gdb") {
        let gdb = gdb_addresses(t.pid);
        assert!(gdb.len() >= 4, "gdb said too little: {gdb:x?}");
        let ours: Vec<u64> = frames
            .iter()
            .map(|f| f["address"].as_u64().unwrap())
            .collect();
        assert_eq!(
            &ours[..gdb.len()],
            &gdb[..],
            "reach and gdb disagree: {stack:#}"
        );
    }
    assert_still_reads(&mut t);
}

#[test]
fn without_frame_pointers_cfi_unwinds_and_blocked_threads_are_not_stopped() {
    let t = backtrace_o2(&["8"]);
    let spinner: i32 = t.field("spinner").parse().unwrap();
    let stacks = stacks_json(t.pid);
    assert_eq!(stacks.len(), 10, "every thread: {stacks:#?}");
    for s in &stacks {
        let names = functions(s);
        assert_eq!(s["complete"], true, "{s:#}");
        if s["tid"] == t.pid {
            assert!(in_order(&names, &["fetch", "main"]), "{s:#}");
        } else if s["tid"] == spinner {
            assert!(names.contains(&"spin".to_string()), "{s:#}");
        } else {
            assert!(names.iter().any(|n| n.starts_with("worker_")), "{s:#}");
            assert!(names.contains(&"start_thread".to_string()), "{s:#}");
        }
        // Only the running spinner had to be stopped.
        assert_eq!(s["stopped"], s["tid"] == spinner, "{s:#}");
    }
    assert_untouched(&t);
}

/// The most threads of `pid` seen in a tracing stop at one moment while
/// `during` runs. A scan of every thread is not one moment (one window
/// may close and the next open while it runs), so two threads count as
/// stopped together only if the first is still stopped after the second
/// was seen stopped: then its stop spans the moment the second was.
fn most_stopped_at_once(pid: i32, during: impl FnOnce()) -> usize {
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut most = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let stopped: Vec<i32> = tids(pid)
                    .into_iter()
                    .filter(|&tid| task_state(pid, tid) == Some('t'))
                    .collect();
                let Some(&first) = stopped.first() else {
                    continue;
                };
                let others = stopped[1..]
                    .iter()
                    .filter(|&&tid| task_state(pid, tid) == Some('t'))
                    .count();
                let together = if task_state(pid, first) == Some('t') {
                    1 + others
                } else {
                    1
                };
                most = most.max(together);
            }
            most
        })
    };
    during();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    watcher.join().unwrap()
}

#[test]
fn sixty_four_threads_are_never_stopped_together() {
    let mut t = backtrace(&["64"]);
    let mut stacks = Vec::new();
    let most = most_stopped_at_once(t.pid, || stacks = stacks_json(t.pid));
    assert_eq!(stacks.len(), 66);
    let chains = ["worker_sleep", "worker_pipe", "worker_poll", "worker_wait"];
    for chain in chains {
        let n = stacks
            .iter()
            .filter(|s| functions(s).iter().any(|f| f == chain))
            .count();
        assert_eq!(n, 16, "{chain}");
    }
    assert!(most <= 1, "{most} threads were stopped at once");
    assert_still_reads(&mut t);
}

#[test]
fn python_and_perl_show_their_native_frames_down_to_main() {
    let python = Target::python(
        "import socket; a, b = socket.socketpair(); print('ready', flush=True); a.recv(10)",
        &[],
    );
    assert!(wait_blocked(python.pid, python.pid, libc::SYS_recvfrom));
    let names = functions(&main_stack(python.pid));
    assert!(
        in_order(&names, &["sock_recv", "main"])
            || in_order(&names, &["sock_recv", "Py_BytesMain"]),
        "{names:?}"
    );
    assert_untouched(&python);

    let mut cmd = Command::new("perl");
    cmd.args([
        "-e",
        "use Socket; socketpair(my $a, my $b, AF_UNIX, SOCK_STREAM, 0); $| = 1; print \"ready\\n\"; sysread($a, my $x, 10);",
    ]);
    let perl = Target::spawn(cmd);
    assert!(wait_blocked(perl.pid, perl.pid, libc::SYS_read));
    let names = functions(&main_stack(perl.pid));
    assert!(in_order(&names, &["Perl_pp_sysread", "main"]), "{names:?}");
    assert_untouched(&perl);
}

#[test]
fn a_static_binary_unwinds_too() {
    let args_cc: Vec<String> = ["-O1", "-g", "-static", "-pthread"]
        .map(String::from)
        .to_vec();
    let bin = build_once(
        "cc",
        "backtrace_static",
        &[fixture_source("backtrace.c")],
        &args_cc,
    );
    let t = Target::spawn(Command::new(bin));
    assert!(wait_blocked(t.pid, t.pid, libc::SYS_read));
    let names = functions(&main_stack(t.pid));
    assert!(
        in_order(&names, &["read_reply", "fetch", "main", "_start"]),
        "{names:?}"
    );
    assert_untouched(&t);
}

#[test]
fn a_go_binary_shows_its_frames_through_the_runtime() {
    let Some(bin) = go_fixture("goread") else {
        eprintln!("skipped: Go is not installed");
        return;
    };
    let t = Target::spawn(Command::new(bin));
    let in_read = |s: &serde_json::Value| {
        s["frames"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["function"] == "main.readReply")
    };
    // The goroutine reaches its read soon after "ready".
    let mut stacks = Vec::new();
    assert!(wait_until(STATE_DEADLINE, || {
        stacks = stacks_json(t.pid);
        stacks.iter().any(in_read)
    }));
    let reading = stacks
        .iter()
        .find(|s| in_read(s))
        .unwrap_or_else(|| panic!("no thread in main.readReply: {stacks:#?}"));
    let names: Vec<&str> = reading["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["function"].as_str())
        .collect();
    let at = names.iter().position(|n| *n == "main.readReply").unwrap();
    assert_eq!(names.get(at + 1), Some(&"main.main"), "{names:?}");
    // A pure Go program has no libc to call getpid() with: checked from
    // /proc instead.
    assert_running(&t);
    assert_untraced(t.pid);
}

#[test]
fn code_with_no_unwind_information_ends_the_walk_with_a_marker() {
    let mut t = backtrace(&["jit"]);
    let jit = parse_num(t.field("jit"));
    assert!(wait_blocked(t.pid, t.pid, libc::SYS_read));
    let stack = main_stack(t.pid);
    let frames = stack["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 1, "{stack:#}");
    let at = frames[0]["address"].as_u64().unwrap();
    assert!((jit..jit + 4096).contains(&at), "{stack:#}");
    assert_eq!(stack["complete"], false);
    assert!(
        stack["end"]
            .as_str()
            .unwrap()
            .contains("no unwind information")
    );
    // The text form says so too.
    let text = eval_ok(t.pid, &format!("stack({})", t.pid));
    assert!(
        text.contains("??") && text.contains("no mapped object"),
        "{text}"
    );
    assert_untouched(&t);
    t.send("x");
    assert!(t.find_line(STATE_DEADLINE, |l| l == "read").is_some());
}

#[test]
fn the_stacks_playbook_prints_every_thread_and_checks_its_arguments() {
    let t = backtrace_o2(&["4"]);
    let out = reach(&["-p", &t.pid.to_string(), "stacks"]);
    assert_ok(&out);
    assert_eq!(
        out.stdout.matches("\nthread ").count() + 1,
        6,
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(" fetch+0x"), "{}", out.stdout);
    let out = reach(&["-p", &t.pid.to_string(), "stacks", &t.pid.to_string()]);
    assert_ok(&out);
    assert!(
        out.stdout.starts_with(&format!("thread {} ", t.pid)),
        "{}",
        out.stdout
    );
    let out = reach(&["-p", &t.pid.to_string(), "stacks", "bogus"]);
    assert_error(&out, 2, &["not a thread id"]);
    assert_untouched(&t);
}
