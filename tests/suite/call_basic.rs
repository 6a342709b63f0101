//! Calling functions in a live process: return values, strings, varargs,
//! more than six arguments, IFUNCs, errno, and interpreters as targets.

use crate::support::*;
use std::process::Command;

#[test]
fn getpid_returns_the_targets_pid() {
    let t = Target::fixture("target", &[]);
    assert_eq!(eval_ok(t.pid, r#"call("getpid", [])"#), t.pid.to_string());
    t.assert_advances(t.num("ticks"), 5);
    assert_untouched(&t);
}

#[test]
fn only_the_last_expression_is_printed_and_unit_prints_nothing() {
    let t = Target::fixture("target", &[]);
    let pid = t.pid.to_string();
    let out = reach(&[
        "-p",
        &pid,
        "-e",
        r#"call("getpid", [])"#,
        "-e",
        r#"call("getppid", [])"#,
    ]);
    assert_ok(&out);
    assert_eq!(out.stdout.trim(), std::process::id().to_string());

    let out = reach(&["-p", &pid, "-e", r#"let x = call("getpid", []);"#]);
    assert_ok(&out);
    assert_eq!(out.stdout, "");
    assert_untouched(&t);
}

#[test]
fn a_script_on_stdin_runs_against_the_target() {
    let t = Target::fixture("target", &[]);
    let out = reach_with_stdin(
        &["-p", &t.pid.to_string()],
        "let p = call(\"getpid\", []);\nif p != PID { throw \"wrong pid\"; }\nprint(\"pid \" + p);\n",
    );
    assert_ok(&out);
    assert!(out.stdout.contains(&format!("pid {}", t.pid)), "{out:#?}");
    assert_untouched(&t);
}

#[test]
fn variadic_snprintf_with_arguments_on_the_stack() {
    let t = Target::fixture("target", &[]);
    let out = eval_ok(
        t.pid,
        r#"let b = call("malloc", [64]);
           call("snprintf", [b, 64, "%d-%d-%d-%d-%d-%d-%s", 1, 2, 3, 4, 5, 6, "x"]);
           read_cstr(b)"#,
    );
    assert_eq!(out, "1-2-3-4-5-6-x");
    assert_untouched(&t);
}

#[test]
fn strlen_is_an_ifunc_and_strings_leave_no_trace() {
    let t = Target::fixture("target", &[]);
    let before = maps(t.pid);
    assert_eq!(eval_ok(t.pid, r#"call("strlen", ["hello"])"#), "5");
    let long = "y".repeat(5000);
    assert_eq!(
        eval_ok(t.pid, &format!(r#"call("strlen", ["{long}"])"#)),
        "5000"
    );
    // Strings go to memory reach owns for the window, not the target's heap:
    // the address space is the same afterwards.
    assert_eq!(before, maps(t.pid), "the target's mappings changed");
    assert_untouched(&t);
}

/// The fixture's checksum: h = h * 31 + a_i in order, starting from 7.
fn sum12(args: &[i64]) -> i64 {
    args.iter()
        .fold(7i64, |h, &a| h.wrapping_mul(31).wrapping_add(a))
}

#[test]
fn twelve_arguments_reach_their_positions() {
    let t = Target::fixture("target", &[]);
    let args: Vec<i64> = vec![
        1,
        -2,
        3,
        0x7fff_ffff_ffff,
        5,
        -6,
        7,
        8,
        -9_000_000_000,
        10,
        11,
        12,
    ];
    let list = args
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let out = eval_ok(t.pid, &format!(r#"call("sum12", [{list}])"#));
    assert_eq!(out, sum12(&args).to_string());
    assert_untouched(&t);
}

#[test]
fn int_return_is_sign_extended() {
    let t = Target::fixture("target", &[]);
    assert_eq!(eval_ok(t.pid, r#"call("minus_seven", [])"#), "-7");
    assert_untouched(&t);
}

#[test]
fn errno_after_a_failed_call() {
    let t = Target::fixture("target", &[]);
    assert_eq!(eval_ok(t.pid, r#"call("close", [9999])"#), "-1");
    assert_eq!(
        eval_ok(t.pid, r#"call("close", [9999]); errno()"#),
        libc::EBADF.to_string()
    );
    assert_untouched(&t);
}

#[test]
fn sym_read_and_write_target_memory() {
    let t = Target::fixture("target", &[]);
    let ticks = t.num("ticks");
    // An address prints in hex, and is a number in JSON.
    assert_eq!(eval_ok(t.pid, r#"sym("ticks")"#), format!("{ticks:#x}"));
    assert_eq!(eval_json(t.pid, r#"sym("ticks")"#), ticks);
    // Round trip through the target's memory; ticks keeps counting after.
    let out = eval_ok(
        t.pid,
        r#"let b = call("calloc", [1, 16]);
           write(b, "abc");
           write(b + 3, read(b, 4));
           read_cstr(b)"#,
    );
    assert_eq!(out, "abcabc");
    t.assert_advances(ticks, 5);
    assert_untouched(&t);
}

/// Spawns an interpreter that prints "ready" and sleeps.
fn interpreter(cmd: &str, code: &str) -> Target {
    let mut c = Command::new(cmd);
    c.args(["-e", code]);
    if cmd == "python3" {
        c = Command::new(cmd);
        c.args(["-c", code]);
    }
    Target::spawn(c)
}

#[test]
fn python_process_takes_a_call() {
    let t = interpreter(
        "python3",
        r#"import time; print("ready", flush=True); time.sleep(300)"#,
    );
    assert_eq!(eval_ok(t.pid, r#"call("getpid", [])"#), t.pid.to_string());
    assert_eq!(eval_ok(t.pid, r#"call("strlen", ["python"])"#), "6");
    assert_untouched(&t);
}

#[test]
fn perl_process_takes_a_call() {
    let t = interpreter("perl", r#"$| = 1; print "ready\n"; sleep 300;"#);
    assert_eq!(eval_ok(t.pid, r#"call("getpid", [])"#), t.pid.to_string());
    assert_eq!(eval_ok(t.pid, r#"call("strlen", ["perl"])"#), "4");
    assert_untouched(&t);
}
