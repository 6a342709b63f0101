//! Calls that go wrong, and input that is wrong: each gets one clear error
//! line and a proper exit status, never a panic, and the target is left
//! running, untraced and callable. Covers a fault in the callee, a call that
//! never returns (--timeout), reach itself interrupted, seccomp, and every
//! kind of bad input (pid, symbol, arguments, address, script, flag).

use crate::support::*;
use std::process::Command;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- failing calls

#[test]
fn a_fault_in_the_callee_is_reported_and_the_target_carries_on() {
    let t = Target::fixture("target", &[]);
    let out = eval(t.pid, r#"call("strlen", [0])"#);
    assert_error(&out, 1, &["SIGSEGV", "strlen"]);
    t.assert_advances(t.num("ticks"), 5);
    assert_untouched(&t);
    assert_eq!(eval_ok(t.pid, r#"call("strlen", ["after"])"#), "5");
}

#[test]
fn a_call_that_never_returns_times_out() {
    let t = Target::fixture("target", &[]);
    let started = Instant::now();
    let out = reach(&[
        "--timeout",
        "1",
        "-p",
        &t.pid.to_string(),
        "-e",
        r#"call("pause", [])"#,
    ]);
    let took = started.elapsed();
    assert_error(&out, 1, &["timed out"]);
    assert!(took < Duration::from_secs(8), "timeout took {took:?}");
    t.assert_advances(t.num("ticks"), 5);
    assert_untouched(&t);
}

/// Waits until reach runs the injected `sleep` on the main thread (which
/// sits in read(), so reach picks it): traced, and sleeping in
/// clock_nanosleep.
fn wait_call_running(pid: i32) {
    let running = wait_until(STATE_DEADLINE, || {
        tracer_pid(pid) != 0 && task_syscall(pid, pid) == Some(libc::SYS_clock_nanosleep)
    });
    assert!(running, "the call never started");
}

/// Sends `sig` to reach in the middle of a long call.
fn interrupt_reach(sig: i32) {
    let t = Target::fixture("target", &[]);
    let running = spawn_reach(&["-p", &t.pid.to_string(), "-e", r#"call("sleep", [30])"#]);
    wait_call_running(t.pid);
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(running.pid(), sig) }, 0);
    // Promptly: long before the 30 s sleep would have ended.
    let out = running.finish(Duration::from_secs(8));
    assert_ne!(out.code(), Some(0), "{out:#?}");
    assert!(
        out.stderr.to_lowercase().contains("interrupted"),
        "stderr does not say interrupted: {out:#?}"
    );
    assert_untraced(t.pid);
    t.assert_advances(t.num("ticks"), 5);
    assert_untouched(&t);
}

#[test]
fn sigint_to_reach_mid_call_leaves_the_target_running() {
    interrupt_reach(libc::SIGINT);
}

#[test]
fn sigterm_to_reach_mid_call_leaves_the_target_running() {
    interrupt_reach(libc::SIGTERM);
}

#[test]
fn a_target_that_exits_inside_the_call_is_reported() {
    let mut t = Target::fixture("target", &[]);
    let out = eval(t.pid, r#"call("exit", [3])"#);
    assert_error(&out, 1, &["exited"]);
    let status = t.wait_exit(STATE_DEADLINE);
    assert_eq!(status.code(), Some(3), "{}", describe(status));
}

#[test]
fn a_target_killed_during_the_call_is_reported() {
    let t = Target::fixture("target", &[]);
    let running = spawn_reach(&["-p", &t.pid.to_string(), "-e", r#"call("sleep", [30])"#]);
    wait_call_running(t.pid);
    t.signal(libc::SIGKILL);
    let out = running.finish(Duration::from_secs(8));
    assert_error(&out, 1, &["killed by SIGKILL"]);
}

// ---------------------------------------------------------------- bad input

/// A bystander to show that a refused command touched nothing.
fn bystander() -> Target {
    Target::fixture("target", &[])
}

#[test]
fn unknown_pid() {
    let t = bystander();
    let out = reach(&["-p", "999999999", "-e", r#"call("getpid", [])"#]);
    assert_error_any(&out, &["no such process"]);

    // A pid that existed a moment ago.
    let mut gone = spawn(&mut Command::new("true")).unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    let out = reach(&["-p", &gone_pid.to_string(), "-e", r#"call("getpid", [])"#]);
    assert_error_any(&out, &["no such process"]);
    assert_untouched(&t);
}

/// A kernel thread visible here: pid 2 (kthreadd) normally; any process
/// flagged PF_KTHREAD otherwise.
fn kernel_thread() -> Option<i32> {
    const PF_KTHREAD: u64 = 0x0020_0000;
    let is_kthread = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let after = &s[s.rfind(')')? + 2..];
                after.split_whitespace().nth(6)?.parse::<u64>().ok()
            })
            .is_some_and(|flags| flags & PF_KTHREAD != 0)
    };
    if is_kthread(2) {
        return Some(2);
    }
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .find(|&pid| is_kthread(pid))
}

#[test]
fn kernel_thread_is_refused() {
    let Some(kpid) = kernel_thread() else {
        eprintln!("no kernel thread visible in this pid namespace; nothing to test");
        return;
    };
    let out = reach(&["-p", &kpid.to_string(), "-e", r#"call("getpid", [])"#]);
    assert_error_any(&out, &["kernel thread"]);
    assert_eq!(tracer_pid(kpid), 0);
}

#[test]
fn zombie_is_refused() {
    let parent = Target::fixture("zombie", &[]);
    let child = parent.num("child") as i32;
    assert!(wait_until(STATE_DEADLINE, || state(child) == Some('Z')));
    let out = reach(&["-p", &child.to_string(), "-e", r#"call("getpid", [])"#]);
    assert_error_any(&out, &["zombie"]);
    assert_eq!(state(child), Some('Z'), "the zombie changed");
    assert_untouched(&parent);
}

/// A debugger holding every thread: nothing is left for reach to stop.
#[test]
fn already_traced_names_the_tracer() {
    let t = bystander();
    let tracer = Target::fixture("tracer", &["all", &t.pid.to_string()]);
    assert!(wait_until(STATE_DEADLINE, || tracer_pid(t.pid) == tracer.pid));

    let out = eval(t.pid, r#"call("getpid", [])"#);
    assert_error_any(&out, &["already traced", &tracer.pid.to_string()]);
    // reach neither took the target over nor released it from its tracer.
    assert_eq!(tracer_pid(t.pid), tracer.pid);
    t.assert_advances(t.num("ticks"), 5);

    drop(tracer);
    assert_untouched(&t);
}

#[test]
fn unknown_symbol() {
    let t = bystander();
    let out = eval(t.pid, r#"call("no_such_fn_xyz", [])"#);
    assert_error(&out, 1, &["not found", "no_such_fn_xyz"]);
    assert_untouched(&t);
}

#[test]
fn wrong_argument_types() {
    let t = bystander();
    let out = eval(t.pid, r#"call("getpid", [1.5])"#);
    assert_error(&out, 2, &["argument"]);

    let out = eval(t.pid, r#"call(5, [])"#);
    assert_error(&out, 2, &[]);
    let err = out.stderr.to_lowercase();
    assert!(
        err.contains("argument") || err.contains("call"),
        "the error does not say what is wrong: {out:#?}"
    );
    assert_untouched(&t);
}

#[test]
fn unreadable_address() {
    let t = bystander();
    let out = eval(t.pid, "read(0, 16)");
    assert_error(&out, 1, &["cannot read"]);
    assert_untouched(&t);
}

#[test]
fn script_syntax_error_is_a_usage_error() {
    let t = bystander();
    let out = eval(t.pid, r#"call("getpid", ["#);
    assert_error(&out, 2, &["line"]);
    assert_untouched(&t);
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let t = bystander();
    let out = reach(&["-p", &t.pid.to_string(), "--no-such-flag", "-e", "1"]);
    // clap's usage message spans several lines; only the status and the
    // absence of a panic are part of the contract here.
    assert_eq!(out.code(), Some(2), "{out:#?}");
    assert!(out.stderr.contains("--no-such-flag"), "{out:#?}");
    assert_untouched(&t);
}

#[test]
fn bad_timeout_is_a_usage_error() {
    let t = bystander();
    let out = reach(&["--timeout", "0", "-p", &t.pid.to_string(), "-e", "1"]);
    assert_error(&out, 2, &["timeout"]);
    assert_untouched(&t);
}

/// Like `assert_error`, for refusals whose exit status the contract leaves
/// open between 1 and 2: any failure status, one line, the given words.
fn assert_error_any(out: &ReachOutput, words: &[&str]) {
    let code = out.code().unwrap_or(0);
    assert!(code == 1 || code == 2, "unexpected exit status: {out:#?}");
    assert_error(out, code, words);
}
