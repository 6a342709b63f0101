//! The engine's promises, seen from the target (issue "engine v2"): a call
//! writes nothing into the target's own stacks, stops only the thread it
//! runs on, keeps what the callee did to its own signal mask, and runs on
//! the thread the operator names.

use crate::support::*;
use std::process::Command;

/// A call with a 60,000-byte string and one with 2 KiB of snprintf output,
/// made on a thread blocked in read() while it runs on `mode`'s stack:
/// every byte around that stack stays as it was.
fn stack_left_alone(mode: &str) {
    let mut t = Target::fixture("stacks", &[mode]);
    let (region, len) = (t.num("region"), t.num("len") as usize);
    assert!(wait_blocked(t.pid, t.pid, libc::SYS_read));
    let before = read_bytes(t.pid, region, len);
    let out = eval_ok(
        t.pid,
        r#"let big = ""; big.pad(60000, "z");
           let b = call("malloc", [4096]);
           let n = call("strlen", [big]);
           n + call("snprintf", [b, 2048, "%2000d", 7])"#,
    );
    assert_eq!(out, (60000 + 2000).to_string());
    assert!(
        read_bytes(t.pid, region, len) == before,
        "bytes around the thread's {mode} stack changed"
    );
    assert_eq!(t.ask("check"), "intact");
    assert_untouched(&t);
}

#[test]
fn a_coroutine_stack_is_left_byte_for_byte() {
    stack_left_alone("coroutine");
}

#[test]
fn a_sigaltstack_handler_stack_is_left_byte_for_byte() {
    stack_left_alone("altstack");
}

/// The thread blocked in read() runs on a goroutine stack of a few KiB on
/// the Go heap, among other goroutines' stacks: 200 calls with 2 KiB of
/// output each, on that very thread, change none of their frames.
#[test]
fn a_cgo_go_program_keeps_its_goroutine_frames() {
    let Some(program) = go_fixture("gocgo") else {
        eprintln!("skipped: go is not installed");
        return;
    };
    let mut t = Target::spawn(Command::new(program));
    let reader = t.field("reader").to_string();
    assert!(wait_blocked(t.pid, reader.parse().unwrap(), libc::SYS_read));
    let out = reach(&[
        "-p",
        &t.pid.to_string(),
        "--thread",
        &reader,
        "-e",
        r#"let b = call("malloc", [4096]);
           let n = 0;
           for i in 0..200 { n += call("snprintf", [b, 2048, "%2000d", i]); }
           let big = ""; big.pad(60000, "z");
           n + call("strlen", [big])"#,
    ]);
    assert_ok(&out);
    assert_eq!(out.stdout.trim(), (200 * 2000 + 60000).to_string());
    let first = t.ask("check");
    assert!(first.ends_with(" corrupt=0"), "{first}");
    // The goroutines go on rebuilding and checking their frames.
    let cycles = |s: &str| -> u64 {
        s.split_whitespace()
            .find_map(|w| w.strip_prefix("cycles="))
            .unwrap()
            .parse()
            .unwrap()
    };
    let start = cycles(&first);
    assert!(wait_until(STATE_DEADLINE, || {
        let now = t.ask("check");
        assert!(now.ends_with(" corrupt=0"), "{now}");
        cycles(&now) > start + 100
    }));
    assert_untouched(&t);
}

/// `idle` threads in pause() and a spinner: after 50 calls (and, between
/// them, a raw system call), no thread but the call thread was ever
/// stopped, and none is left traced.
fn only_the_call_thread_stops(idle: usize) {
    let t = Target::fixture("spin", &[&idle.to_string()]);
    let pid = t.pid;
    let spinner = t.num("spinner") as i32;
    assert!(wait_blocked(pid, pid, libc::SYS_read));
    let others: Vec<i32> = tids(pid).into_iter().filter(|&tid| tid != pid).collect();
    assert_eq!(others.len(), idle + 1);
    assert!(wait_until(STATE_DEADLINE, || others
        .iter()
        .filter(|&&tid| tid != spinner)
        .all(|&tid| task_syscall(pid, tid) == Some(libc::SYS_pause))));
    let before: Vec<u64> = others.iter().map(|&t| voluntary_switches(pid, t)).collect();
    let out = eval_ok(
        pid,
        r#"let n = 0;
           for i in 0..50 { n += call("getpid", []); if i % 10 == 0 { syscall("getppid", []); } }
           n / 50"#,
    );
    assert_eq!(out, pid.to_string());
    let after: Vec<u64> = others.iter().map(|&t| voluntary_switches(pid, t)).collect();
    let stopped: Vec<i32> = others
        .iter()
        .zip(before.iter().zip(&after))
        .filter(|(_, (b, a))| b != a)
        .map(|(&tid, _)| tid)
        .collect();
    assert!(
        stopped.is_empty(),
        "threads other than the call thread were stopped: {stopped:?} (spinner {spinner})"
    );
    t.assert_advances(t.num("spins"), 1000);
    assert_untouched(&t);
}

#[test]
fn only_the_call_thread_stops_among_500_threads() {
    only_the_call_thread_stops(500);
}

#[test]
fn only_the_call_thread_stops_among_4000_threads() {
    only_the_call_thread_stops(4000);
}

/// freeze() stops every one of 4,000 threads, and thaw() releases them all.
#[test]
fn freeze_holds_4000_threads_and_thaw_releases_them() {
    let t = Target::fixture("spin", &["4000"]);
    let pid = t.pid;
    let out = eval_ok(
        pid,
        r#"freeze();
           let frozen = status().State;
           let n = call("getpid", []);
           thaw();
           `${frozen} ${n}`"#,
    );
    assert_eq!(out, format!("t (tracing stop) {pid}"));
    assert_untraced(pid);
    assert!(
        tids(pid)
            .iter()
            .all(|&tid| !matches!(task_state(pid, tid), Some('t' | 'T')))
    );
    t.assert_advances(t.num("spins"), 1000);
    assert_untouched(&t);
}

/// What the callee does to its own thread's mask stays done.
#[test]
fn the_callees_change_to_its_own_signal_mask_is_kept() {
    let t = Target::fixture("target", &[]);
    let pid = t.pid;
    assert!(wait_blocked(pid, pid, libc::SYS_read));
    assert_eq!(task_sigblk(pid, pid), 0);
    // A sigset_t with SIGUSR1 and SIGUSR2 (bits 9 and 11).
    let set = "let s = blob(128, 0); s[1] = 0x0a;";
    eval_ok(
        pid,
        &format!(r#"{set} call("sigprocmask", [0 /* SIG_BLOCK */, s, 0])"#),
    );
    let both = sigbit(libc::SIGUSR1) | sigbit(libc::SIGUSR2);
    assert_eq!(task_sigblk(pid, pid), both);
    eval_ok(
        pid,
        &format!(r#"{set} call("sigprocmask", [1 /* SIG_UNBLOCK */, s, 0])"#),
    );
    assert_eq!(task_sigblk(pid, pid), 0);
    assert_untouched(&t);
}

/// `--thread TID` and `use_thread(tid)` run calls on that thread: its
/// errno location is its own, and its own system call resumes.
#[test]
fn calls_run_on_the_thread_named() {
    let t = Target::fixture("spin", &["2"]);
    let pid = t.pid;
    let spinner = t.num("spinner");
    let idle: Vec<i32> = tids(pid)
        .into_iter()
        .filter(|&tid| tid != pid && tid as u64 != spinner)
        .collect();
    let gettid = r#"syscall("gettid", [])"#;
    assert_eq!(eval_ok(pid, gettid), pid.to_string());
    let named = idle[0].to_string();
    let out = reach(&["-p", &pid.to_string(), "--thread", &named, "-e", gettid]);
    assert_ok(&out);
    assert_eq!(out.stdout.trim(), named);
    let out = eval_ok(
        pid,
        &format!(
            r#"use_thread({}); let a = call("gettid", []); use_thread(0); [a, call("gettid", [])]"#,
            idle[1]
        ),
    );
    assert_eq!(
        out.replace(char::is_whitespace, ""),
        format!("[{},{}]", idle[1], pid)
    );
    // Even a spinning thread, never in a system call, takes a call.
    let out = reach(&[
        "-p",
        &pid.to_string(),
        "--thread",
        &spinner.to_string(),
        "-e",
        gettid,
    ]);
    assert_ok(&out);
    assert_eq!(out.stdout.trim(), spinner.to_string());
    // A thread of another process is refused.
    let out = reach(&["-p", &pid.to_string(), "--thread", "1", "-e", gettid]);
    assert_error(&out, 1, &["not a thread of"]);
    assert!(wait_until(STATE_DEADLINE, || idle
        .iter()
        .all(|&tid| task_syscall(pid, tid) == Some(libc::SYS_pause))));
    assert_untouched(&t);
}
