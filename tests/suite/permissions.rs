//! What each operation needs on another user's process, as README.md's
//! "Permissions" table says: reach run as `nobody` through `setpriv` with
//! exactly the capabilities of each row, against a root-owned target. A
//! refusal names what is missing, and the target is never touched.

use crate::support::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

const PTRACE: &str = "sys_ptrace";
const READ_SEARCH: &str = "dac_read_search";
const OVERRIDE: &str = "dac_override";
const KILL: &str = "kill";

/// reach copied where `nobody` can run it (the checkout may sit in a
/// directory only root can enter).
fn reach_for_nobody() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reach-perm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.join("reach");
    if !bin.exists() {
        let tmp = dir.join("reach.tmp");
        std::fs::copy(reach_bin(), &tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&tmp, &bin).unwrap();
    }
    bin
}

/// `reach -p PID -e EXPR` as nobody with exactly `caps`.
fn as_nobody(caps: &[&str], pid: i32, expr: &str) -> ReachOutput {
    let set = if caps.is_empty() {
        "-all".to_string()
    } else {
        caps.iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(format!("--inh-caps={set}"))
        .arg(format!("--ambient-caps={set}"))
        .arg(reach_for_nobody())
        .args(["-p", &pid.to_string(), "-e", expr]);
    spawn_command(cmd, None).finish(REACH_DEADLINE)
}

#[test]
fn each_operation_needs_what_the_readme_says() {
    if !is_root() || !have("setpriv") {
        eprintln!("skipped: needs root and setpriv");
        return;
    }
    let t = Target::fixture("target", &[]);
    // (expression, the capabilities it needs: any one list of each inner
    // alternative, written as "a|b")
    let ops: &[(&str, &[&str])] = &[
        ("status().Name", &[]),
        ("signals().SIGPIPE.ignored", &[]),
        ("maps().len()", &[PTRACE]),
        (r#"sym("getpid")"#, &[PTRACE]),
        ("fds().len()", &[PTRACE, "dac_read_search|dac_override"]),
        ("threads().len()", &[PTRACE, "dac_read_search|dac_override"]),
        (r#"call("getpid")"#, &[PTRACE, OVERRIDE, KILL]),
        (r#"syscall("getpid", [])"#, &[PTRACE, OVERRIDE, KILL]),
    ];
    let rows: &[&[&str]] = &[
        &[],
        &[PTRACE],
        &[PTRACE, READ_SEARCH],
        &[PTRACE, OVERRIDE],
        &[PTRACE, OVERRIDE, KILL],
    ];
    for caps in rows {
        for (expr, needs) in ops {
            let enough = needs
                .iter()
                .all(|need| need.split('|').any(|c| caps.contains(&c)));
            let out = as_nobody(caps, t.pid, expr);
            if enough {
                assert_ok(&out);
            } else {
                assert_error(&out, 1, &["not permitted to", "hint:"]);
                // The hint names a capability reach lacks.
                let lacks = out.stderr.split("lacks ").nth(1).unwrap_or_default();
                assert!(
                    needs
                        .iter()
                        .any(|n| n.split('|').any(|c| lacks.contains(c))),
                    "{caps:?} {expr}: {out:#?}"
                );
                assert!(!out.stderr.contains("reused"), "{out:#?}");
            }
        }
    }
    assert_untouched(&t);
}
