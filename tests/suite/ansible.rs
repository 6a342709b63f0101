//! examples/ansible/: reach under Ansible, on this machine as the one host
//! of the inventory (`connection: local`). ansible-core comes from PyPI,
//! into a virtualenv under cargo's target directory, installed by this
//! test the first time. A dry run (--check) changes nothing and says it
//! would; the first run changes; the second finds nothing to do (ok); a
//! wrong argument fails the host.

use crate::playbooks::leaky_server_with_leaks;
use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `ansible-playbook` from a virtualenv of its own, installed once.
fn ansible_playbook() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ansible-venv");
    let bin = venv.join("bin/ansible-playbook");
    if bin.exists() {
        return Some(bin);
    }
    let pip = venv.join("bin/pip");
    let steps: [&[&str]; 2] = [
        &["python3", "-m", "venv", venv.to_str()?],
        &[pip.to_str()?, "install", "-q", "ansible-core"],
    ];
    for step in steps {
        let out = output(
            Command::new(step[0]).args(&step[1..]),
            Duration::from_secs(600),
        );
        if !out.status.success() {
            eprintln!(
                "skipped: cannot install ansible-core from PyPI ({}): {}",
                step.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
    }
    bin.exists().then_some(bin)
}

/// One `ansible-playbook` run of examples/ansible/reach.yml: its exit
/// status and its PLAY RECAP line.
fn play(bin: &Path, extra: &[&str]) -> (bool, String) {
    let dir = manifest_dir().join("examples/ansible");
    let reach_dir = Path::new(reach_bin()).parent().unwrap();
    let path = format!(
        "{}:{}",
        reach_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(bin);
    cmd.current_dir(&dir)
        .args(["-i", "inventory.ini", "reach.yml"])
        .args(extra)
        .env("PATH", path)
        .env("ANSIBLE_NOCOLOR", "1")
        .env(
            "ANSIBLE_LOCAL_TEMP",
            std::env::temp_dir().join("reach-ansible"),
        );
    let out = output(&mut cmd, Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let recap = stdout
        .lines()
        .find(|l| l.starts_with("localhost") && l.contains("ok="))
        .unwrap_or_else(|| {
            panic!(
                "no recap: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .to_string();
    (out.status.success(), recap)
}

#[test]
fn an_ansible_playbook_reaps_close_wait_idempotently() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let Some(bin) = ansible_playbook() else {
        return;
    };
    let (server, _port) = leaky_server_with_leaks(2);
    let target = format!("reach_target={}", server.pid);
    let vars = ["-e", &target, "-e", "reach_playbook=reap-close-wait"];

    let check: Vec<&str> = vars.iter().copied().chain(["--check"]).collect();
    let (ok, recap) = play(&bin, &check);
    assert!(ok && recap.contains("changed=1"), "--check: {recap}");
    assert_eq!(tcp_count(server.pid, "08"), 2, "--check changed the server");

    let (ok, recap) = play(&bin, &vars);
    assert!(ok && recap.contains("changed=1"), "first run: {recap}");
    assert!(wait_until(STATE_DEADLINE, || tcp_count(server.pid, "08") == 0));

    let (ok, recap) = play(&bin, &vars);
    assert!(
        ok && recap.contains("changed=0") && recap.contains("failed=0"),
        "second run: {recap}"
    );

    let bad: Vec<&str> = vars
        .iter()
        .copied()
        .chain(["-e", r#"{"reach_args": ["bogus"]}"#])
        .collect();
    let (ok, recap) = play(&bin, &bad);
    assert!(!ok && recap.contains("failed=1"), "bad argument: {recap}");
    assert_running(&server);
}
