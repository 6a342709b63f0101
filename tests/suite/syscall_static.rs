//! Raw system calls in a static, stripped binary, where there is no libc
//! symbol to call: `syscall(...)` still works (a `syscall` instruction found
//! in its text or the vdso), and `call(...)` fails pointing at `syscall(`.

use crate::support::*;

/// The static accept fixture, once blocked in accept().
fn static_server() -> Target {
    let t = Target::fixture("static_accept", &[]);
    let pid = t.pid;
    assert!(
        wait_until(STATE_DEADLINE, || matches!(
            task_syscall(pid, pid),
            Some(libc::SYS_accept | libc::SYS_accept4)
        )),
        "never blocked in accept"
    );
    t
}

/// Alive, not stopped, untraced, and still takes a raw syscall.
fn assert_static_untouched(t: &mut Target) {
    assert!(t.alive());
    assert!(!matches!(state(t.pid), Some('T' | 't')));
    assert_untraced(t.pid);
    assert_eq!(
        eval_ok(t.pid, r#"syscall("getpid", [])"#),
        t.pid.to_string()
    );
}

#[test]
fn syscall_shutdown_wakes_accept_in_a_static_binary() {
    let mut t = static_server();
    let fd = t.field("fd").to_string();
    let out = eval_ok(t.pid, &format!(r#"syscall("shutdown", [{fd}, 2])"#));
    assert_eq!(out, "0");
    let line = t.line_matching(STATE_DEADLINE, |l| l.starts_with("accept returned"));
    assert_eq!(line, format!("accept returned -1 errno={}", libc::EINVAL));
    assert!(t.wait_exit(STATE_DEADLINE).success());
}

#[test]
fn syscall_by_number_and_failure_as_negative_errno() {
    let mut t = static_server();
    assert_eq!(
        eval_ok(t.pid, &format!("syscall({}, [])", libc::SYS_getpid)),
        t.pid.to_string()
    );
    assert_eq!(
        eval_ok(t.pid, r#"syscall("close", [9999])"#),
        (-libc::EBADF).to_string()
    );
    assert_static_untouched(&mut t);
    // Still blocked in accept: nothing woke it.
    assert!(t.next_line(std::time::Duration::ZERO).is_none());
}

#[test]
fn call_without_symbols_points_at_syscall() {
    let mut t = static_server();
    let fd = t.field("fd").to_string();
    let out = eval(t.pid, &format!(r#"call("shutdown", [{fd}, 2])"#));
    assert_error(&out, 1, &["not found", "syscall("]);
    let out = eval(t.pid, r#"call("getpid", [])"#);
    assert_error(&out, 1, &["not found", "syscall("]);
    assert_static_untouched(&mut t);
    assert!(t.next_line(std::time::Duration::ZERO).is_none());
}
