//! The on-call command line: playbooks that refuse what would harm the
//! process, typos that are usage errors, results machines can read
//! (`--json` documents and errors), many targets (`--all`, `-f`), and the
//! help a newcomer reaches for.

use crate::playbooks::leaky_server_with_leaks;
use crate::support::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

/// The server still accepts and answers: a new client gets its echo.
fn assert_serves(server: &Target, port: u16) {
    assert_running(server);
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("the server no longer accepts");
    c.set_read_timeout(Some(STATE_DEADLINE)).unwrap();
    c.write_all(b"hello\n").unwrap();
    let mut reply = [0u8; 3];
    c.read_exact(&mut reply)
        .expect("the server no longer answers");
}

fn fd_where(pid: i32, filter: &str) -> i64 {
    eval_json(pid, &format!("fds().filter(|f| {filter})[0].fd"))
        .as_i64()
        .unwrap_or_else(|| panic!("no fd of {pid} where {filter}"))
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn unstick_refuses_a_listening_socket_and_the_server_survives() {
    let server = Target::example("leaky_server.py", &["0"], "leaky server pid");
    let port: u16 = server.ready.rsplit(':').next().unwrap().parse().unwrap();
    let pid = server.pid.to_string();
    let listen = fd_where(server.pid, r#"f.state == "LISTEN""#).to_string();
    for dry in [true, false] {
        let mut args = vec!["-p", &pid, "unstick", &listen];
        if dry {
            args.insert(0, "--dry-run");
        }
        let out = reach(&args);
        assert_error(&out, 1, &["refused", "listening socket", "force"]);
        assert!(!out.stdout.contains("shut down"), "{out:#?}");
    }
    assert_serves(&server, port);
}

#[test]
fn unstick_refuses_a_socket_nothing_waits_on_unless_forced() {
    let (server, port) = leaky_server_with_leaks(1);
    let pid = server.pid.to_string();
    let leaked = fd_where(server.pid, r#"f.state == "CLOSE_WAIT""#).to_string();
    let out = reach(&["-p", &pid, "unstick", &leaked]);
    assert_error(&out, 1, &["refused", "no thread", "waits on fd"]);
    assert_eq!(tcp_count(server.pid, "08"), 1, "a refusal changed nothing");

    let out = reach(&["-p", &pid, "unstick", &leaked, "force"]);
    assert_ok(&out);
    assert!(
        out.stdout.contains(&format!("shut down fd {leaked}")),
        "{out:#?}"
    );
    assert!(wait_until(STATE_DEADLINE, || tcp_count(server.pid, "08") == 0));
    assert_serves(&server, port);
}

#[test]
fn typos_are_usage_errors_that_say_what_is_accepted() {
    let (server, port) = leaky_server_with_leaks(1);
    let pid = server.pid.to_string();
    let own = format!(":{port}");
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["sockets", "bogus"],
            &["neither a protocol nor a socket state"],
        ),
        (
            &["reap-close-wait", "bogus"],
            &["not a remote address", "host:port"],
        ),
        (&["reap-close-wait", ":99999"], &["1 to 65535"]),
        (&["reap-close-wait", &own], &["local port", "far end"]),
        (&["unstick", "bogus"], &["not a remote address"]),
        (&["unstick", &own], &["local port"]),
        (&["drop", "10.0.0.7"], &["not a host:port"]),
        (&["ignore-sigpipe", "forse"], &["unknown argument"]),
        (
            &["-e", "status().state"],
            &["no field \"state\"", "did you mean State"],
        ),
        (
            &["-e", "signals().SIGPIPEE"],
            &["no field \"SIGPIPEE\"", "SIGPIPE"],
        ),
        (
            &["-e", "fds()[0].remote_prot"],
            &["Fd has no field", "remote_port"],
        ),
        (&["-e", "fdz()"], &["fdz"]),
    ];
    for (args, words) in cases {
        let mut all = vec!["-p", pid.as_str()];
        all.extend_from_slice(args);
        let out = reach(&all);
        assert_error(&out, 2, words);
    }
    assert_eq!(tcp_count(server.pid, "08"), 1, "a typo changed nothing");
    assert_serves(&server, port);
}

/// Every playbook's --json output is one document of the documented
/// schema, on stdout alone.
#[test]
fn every_playbook_prints_one_json_document() {
    let (server, port) = leaky_server_with_leaks(2);
    let pid = server.pid.to_string();
    let runs: &[&[&str]] = &[
        &["sockets"],
        &["--dry-run", "reap-close-wait"],
        &["--dry-run", "unstick", "1"],
        &["--dry-run", "ignore-sigpipe"],
        &["drop", "192.0.2.1:9"],
        &["tcpdrop", "192.0.2.1:9"],
        &["stacks"],
    ];
    for args in runs {
        let mut all = vec!["--json", "-p", pid.as_str()];
        all.extend_from_slice(args);
        let out = reach(&all);
        assert_ok(&out);
        let doc = json(&out.stdout);
        for key in [
            "schema", "script", "args", "pid", "name", "dry_run", "changed", "failed", "actions",
            "value", "error",
        ] {
            assert!(doc.get(key).is_some(), "{args:?}: no {key}: {doc}");
        }
        assert_eq!(doc["schema"], 1);
        assert_eq!(doc["pid"], server.pid);
        assert_eq!(doc["name"], "python3");
        assert_eq!(doc["changed"], false, "{args:?}: {doc}");
        assert_eq!(doc["failed"], false);
    }
    assert_eq!(tcp_count(server.pid, "08"), 2, "dry runs changed nothing");

    // A real run: changed, each action with its fd, addresses and how;
    // the second run finds nothing (ok, not changed).
    let out = reach(&["--json", "-p", &pid, "reap-close-wait"]);
    assert_ok(&out);
    let doc = json(&out.stdout);
    assert_eq!(doc["changed"], true, "{doc}");
    let actions = doc["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 2, "{doc}");
    for a in actions {
        assert_eq!(a["action"], "shutdown");
        assert_eq!(a["how"], "SHUT_RDWR");
        assert_eq!(a["changed"], true);
        assert!(a["fd"].is_i64() && a["via"].is_string(), "{a}");
        assert_eq!(a["local"], format!("127.0.0.1:{port}"));
        assert!(a["remote"].as_str().unwrap().starts_with("127.0.0.1:"));
    }
    // What was narrated went to stderr, not into the document's stdout.
    assert!(out.stderr.contains("before: 2 connection(s)"), "{out:#?}");
    let out = reach(&["--json", "-p", &pid, "reap-close-wait"]);
    assert_ok(&out);
    assert_eq!(json(&out.stdout)["changed"], false);
    assert_serves(&server, port);
}

#[test]
fn with_json_errors_are_json_on_stderr() {
    let t = Target::fixture("target", &[]);
    let pid = t.pid.to_string();
    // A playbook that fails: its document on stdout says so, the error is
    // a JSON line on stderr, the exit status is 2 for wrong input.
    let out = reach(&["--json", "-p", &pid, "reap-close-wait", "bogus"]);
    assert_eq!(out.code(), Some(2), "{out:#?}");
    let doc = json(&out.stdout);
    assert_eq!(doc["failed"], true);
    assert_eq!(doc["error"]["kind"], "usage");
    let err = json(out.stderr.lines().last().unwrap());
    assert_eq!(err["schema"], 1);
    assert_eq!(err["error"]["kind"], "usage");
    assert!(err["error"]["message"].as_str().unwrap().contains("bogus"));

    // -e: a failure (exit 1), and a usage error from clap (exit 2).
    let out = reach(&["--json", "-p", &pid, "-e", "read(0, 8)"]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(json(out.stderr.trim())["error"]["kind"], "failed");
    let out = reach(&["--json", "--bogus"]);
    assert_eq!(out.code(), Some(2));
    assert_eq!(json(out.stderr.trim())["error"]["kind"], "usage");
    // () is null, not nothing.
    let out = reach(&["--json", "-p", &pid, "-e", "()"]);
    assert_ok(&out);
    assert_eq!(out.stdout.trim(), "null");
    assert_untouched(&t);
}

/// Three processes whose command lines hold one marker.
fn three_sleepers(marker: &str) -> Vec<Target> {
    (0..3)
        .map(|_| {
            let mut cmd = Command::new("python3");
            cmd.args([
                "-c",
                "import time; print('ready', flush=True); time.sleep(600)",
                marker,
            ]);
            Target::spawn(cmd)
        })
        .collect()
}

#[test]
fn all_runs_on_every_matching_process_in_pid_order() {
    let marker = format!("reach-all-{}", std::process::id());
    let sleepers = three_sleepers(&marker);
    let mut pids: Vec<i64> = sleepers.iter().map(|t| t.pid as i64).collect();
    pids.sort_unstable();

    // One target only: the ambiguity lists each pid with its command line.
    let out = reach(&["-f", "-p", &marker, "-e", "PID"]);
    assert_error(&out, 1, &["3 processes match", "--all"]);
    for p in &pids {
        assert!(out.stderr.contains(&format!("{p} (")), "{out:#?}");
        assert!(out.stderr.contains("python3 -c import time"), "{out:#?}");
    }
    // Without -f the name is matched exactly, and the hint says -f.
    let out = reach(&["-p", &marker, "-e", "PID"]);
    assert_error(
        &out,
        1,
        &["no process is named", "-f matches command lines"],
    );

    let out = reach(&["--all", "-f", "-p", &marker, "--json", "-e", "PID"]);
    assert_ok(&out);
    let doc = json(&out.stdout);
    let got: Vec<i64> = doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_i64().unwrap())
        .collect();
    assert_eq!(got, pids);
    assert_eq!(doc["failed"], false);

    // One fails: the others still run, the overall status is 1.
    let script = format!("if PID == {} {{ throw \"boom\" }}; PID", pids[1]);
    let out = reach(&["--all", "-f", "-p", &marker, "-e", &script]);
    assert_eq!(out.code(), Some(1), "{out:#?}");
    for p in &pids {
        assert!(out.stdout.contains(&format!("== {p} (")), "{out:#?}");
    }
    assert!(
        out.stderr.contains(&format!("pid {}: boom", pids[1])),
        "{out:#?}"
    );
    assert!(out.stdout.contains("3 process(es): 0 changed, 1 failed"));

    // Bounded: more matches than --max is refused before anything runs.
    let out = reach(&["--all", "--max", "2", "-f", "-p", &marker, "-e", "PID"]);
    assert_error(&out, 2, &["more than --max 2"]);
    for t in &sleepers {
        assert_untouched(t);
    }
}

#[test]
fn a_playbook_shows_its_help_and_an_expression_is_pointed_to_e() {
    let out = reach(&["-p", "1", "unstick", "--help"]);
    assert_ok(&out);
    assert!(
        out.stdout
            .contains("Usage: reach -p PID unstick SELECTOR... [force]")
    );
    assert!(out.stdout.contains("Safety:"));
    let out = reach(&["-p", "1", "fds()"]);
    assert_error(
        &out,
        2,
        &["no playbook named", "use -e: reach -p PID -e 'fds()'"],
    );
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line_definition() {
    let out = reach(&["--completions", "bash"]);
    assert_ok(&out);
    assert!(out.stdout.contains("complete") && out.stdout.contains("--dry-run"));
    let out = reach(&["--man"]);
    assert_ok(&out);
    assert!(out.stdout.contains(".TH reach") && out.stdout.contains("\\-\\-all"));
    let out = reach(&["--completions", "tcsh"]);
    assert_eq!(out.code(), Some(2));
}

/// The README's API table lists every builtin (the table of builtins
/// drives help() and completion; this keeps the README with them).
#[test]
fn every_builtin_is_in_the_readmes_api_table() {
    let readme = std::fs::read_to_string(manifest_dir().join("README.md")).unwrap();
    let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `")).collect();
    for b in reach::script::builtins::BUILTINS {
        let named =
            |l: &&str| l.contains(&format!("`{}(", b.name)) || l.contains(&format!(".{}(", b.name));
        assert!(
            rows.iter().any(named),
            "README.md's API table lacks {}",
            b.name
        );
    }
}
