//! Which process reach operates on: `-p NAME`, and a pid that was reused
//! between `attach` and `call` (checklist #17).

use crate::support::*;
use reach::process::{Error, Settings, Target as Handle};
use std::process::Command;

/// The `target` fixture under a unique file name, so `-p NAME` can match it.
fn named_copy(tag: &str) -> (std::path::PathBuf, String) {
    let name = format!("rn{}{tag}", std::process::id() % 100000);
    (named_link(&fixture("target"), &name), name)
}

#[test]
fn a_name_selects_the_one_process_called_that() {
    let (path, name) = named_copy("a");
    let t = Target::spawn(Command::new(&path));
    let out = reach(&["-p", &name, "-e", "call(\"getpid\", [])"]);
    assert_ok(&out);
    assert_eq!(out.stdout.trim(), t.pid.to_string());
    assert_untouched(&t);
}

#[test]
fn an_ambiguous_name_is_refused_and_lists_the_pids() {
    let (path, name) = named_copy("b");
    let a = Target::spawn(Command::new(&path));
    let b = Target::spawn(Command::new(&path));
    let out = reach(&["-p", &name, "-e", "call(\"getpid\", [])"]);
    assert_error(
        &out,
        1,
        &["2 processes match", &a.pid.to_string(), &b.pid.to_string()],
    );
    assert_untouched(&a);
    assert_untouched(&b);
}

#[test]
fn an_unknown_name_is_refused() {
    let out = reach(&["-p", "no-such-process-name-xyz", "-e", "1"]);
    assert_error(&out, 1, &["no process is named"]);
}

/// Start `sleep` with exactly pid `want`, by setting the kernel's last
/// allocated pid just below it (root only). Other processes may take the
/// pid first, so callers retry.
fn spawn_with_pid(want: i32) -> Option<std::process::Child> {
    std::fs::write("/proc/sys/kernel/ns_last_pid", (want - 1).to_string()).ok()?;
    let mut child = spawn(Command::new("sleep").arg("60")).ok()?;
    if child.id() as i32 == want {
        return Some(child);
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn a_reused_pid_is_noticed_and_the_new_process_untouched() {
    for _attempt in 0..20 {
        let mut first = spawn(Command::new("sleep").arg("60")).unwrap();
        let pid = first.id() as i32;
        let mut handle = Handle::attach(pid, Settings::default()).expect("attach");
        first.kill().unwrap();
        first.wait().unwrap();
        let Some(mut second) = spawn_with_pid(pid) else {
            continue;
        };
        let result = handle.call("getpid", &[]);
        assert!(
            matches!(result, Err(Error::PidReused(p)) if p == pid),
            "expected PidReused, got {result:?}"
        );
        // The new process was never traced, and runs on.
        assert_untraced(pid);
        assert!(second.try_wait().unwrap().is_none());
        let _ = second.kill();
        let _ = second.wait();
        return;
    }
    panic!("could not get the same pid back in 20 attempts");
}

/// A thread id is not a pid (`/proc/TID` exists, unlisted): refused,
/// naming the process it belongs to.
#[test]
fn a_thread_id_is_refused_naming_its_process() {
    let t = Target::fixture("blocked", &[]);
    let tid = t.num("read").to_string();
    let out = reach(&["-p", &tid, "-e", r#"call("getpid", [])"#]);
    assert_error(
        &out,
        1,
        &[&format!("a thread of {}", t.pid), "use that pid"],
    );
    assert_untouched(&t);
}
