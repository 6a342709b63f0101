//! C libraries beyond the plain case: glibc's internal functions through
//! its separate debug file (libc6-dbg), and musl.

use crate::support::*;
use std::path::Path;
use std::process::Command;

#[test]
fn an_internal_glibc_function_is_called_with_libc6_dbg() {
    if !Path::new("/usr/share/doc/libc6-dbg").exists() {
        eprintln!("skipped: libc6-dbg is not installed (apt-get install -y libc6-dbg)");
        return;
    }
    let dir = workdir("libc6_dbg");
    let host = build_host(&dir);
    let target = Target::spawn(Command::new(&host));
    let pid = target.pid;
    // Local symbols, only in the debug file's .symtab: glibc's internal
    // alias of getpid, and of strlen (an IFUNC).
    assert_eq!(
        evals_ok(pid, &[r#"call("__GI___getpid")"#]),
        pid.to_string()
    );
    assert_eq!(
        evals_ok(pid, &[r#"call("libc:__GI_strlen", ["hello"])"#]),
        "5"
    );
}

#[test]
fn a_musl_program_blocked_in_read_is_unstuck_with_shutdown() {
    if !have("musl-gcc") {
        eprintln!("skipped: musl-gcc is not installed (apt-get install -y musl-tools)");
        return;
    }
    let dir = workdir("musl");
    let out = dir.join("sym_blocked_musl");
    let src = fixture_source("sym_blocked.c");
    compile(
        "musl-gcc",
        &["-o", out.to_str().unwrap(), src.to_str().unwrap()],
    );
    let target = Target::spawn(Command::new(&out));
    let ready = target.ready.clone();
    let fd: i32 = ready.strip_prefix("ready ").unwrap().parse().unwrap();
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", target.pid)).unwrap();
    assert!(maps.contains("-musl"), "not a musl program:\n{maps}");
    let shutdown = format!(r#"call("shutdown", [{fd}, SHUT_RDWR])"#);
    assert_eq!(evals_ok(target.pid, &[&shutdown]), "0");
    assert_eq!(target.line(), "unstuck 0");
}
