//! fds(), threads(), signals() and f.shutdown() through the real `reach`
//! binary: tables in -e output, `--json` values, exit statuses.

use crate::support::*;
use reach::process::fds;
use serde_json::Value;
use std::process::Command;

fn ok(args: &[&str]) -> String {
    let out = reach(args);
    assert_ok(&out);
    out.stdout
}

#[test]
fn fds_prints_an_aligned_table() {
    let fx = Target::fds_fixture(&[], &["all"]);
    let pid = fx.pid.to_string();
    let out = ok(&["-p", &pid, "-e", "fds()"]);
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        columns,
        [
            "FD",
            "KIND",
            "PROTO",
            "STATE",
            "LOCAL",
            "REMOTE",
            "RECV-Q",
            "SEND-Q",
            "LAST-RECV",
            "WAITERS",
            "PATH"
        ]
    );
    // Every row starts its STATE column where the header does.
    let state_at = header.find("STATE").unwrap();
    let port = fx.json()["listen"]["port"].as_u64().unwrap();
    let listen_row = out
        .lines()
        .find(|l| l.contains(&format!("127.0.0.1:{port} ")) && l.contains("LISTEN"))
        .unwrap_or_else(|| panic!("no LISTEN row in\n{out}"));
    assert_eq!(listen_row.find("LISTEN"), Some(state_at));
    assert!(out.lines().any(|l| l.contains("CLOSE_WAIT")));
    assert!(out.lines().any(|l| l.contains("anon_inode:[eventfd]")));
    assert_eq!(out.lines().count(), fds::list(fx.pid).unwrap().len() + 1);

    // A single Fd prints as one row under the same header.
    let fd = fx.json_fd("/close_wait/fd");
    let one = ok(&[
        "-p",
        &pid,
        "-e",
        &format!("fds().filter(|f| f.fd == {fd})[0]"),
    ]);
    assert_eq!(one.lines().count(), 2, "{one}");
    assert!(one.lines().nth(1).unwrap().contains("CLOSE_WAIT"));
}

#[test]
fn json_parses_and_carries_the_same_values() {
    let fx = Target::fds_fixture(&[], &["all"]);
    let pid = fx.pid.to_string();
    let out = ok(&["-p", &pid, "--json", "-e", "fds()"]);
    let json: Value = serde_json::from_str(&out).expect("--json output parses");
    let listed = fds::list(fx.pid).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), listed.len());
    for (row, f) in rows.iter().zip(&listed) {
        assert_eq!(row["fd"], f.fd);
        assert_eq!(row["kind"], f.kind.as_str());
        assert_eq!(row["path"], f.path);
        assert_eq!(row["proto"].as_str(), f.proto.as_deref());
        assert_eq!(row["state"].as_str(), f.state.as_deref());
        assert_eq!(row["local"].as_str(), f.local.as_deref());
        assert_eq!(row["remote"].as_str(), f.remote.as_deref());
        assert_eq!(row["local_port"].as_u64(), f.local_port.map(u64::from));
        assert_eq!(row["remote_port"].as_u64(), f.remote_port.map(u64::from));
        assert_eq!(row["inode"].as_u64(), f.inode);
        assert_eq!(row["pos"].as_u64(), f.pos);
        assert_eq!(row["deleted"], f.deleted);
    }
    let by_fd = |n: i32| rows.iter().find(|r| r["fd"] == n).unwrap();
    let e = by_fd(fx.json_fd("/established/fd"));
    assert_eq!(e["state"], "ESTABLISHED");
    assert_eq!(e["rx_queue"], 5);
    assert_eq!(e["remote_port"], fx.json()["listen"]["port"]);
    assert_eq!(by_fd(fx.json_fd("/file/fd"))["pos"], 4);
    assert_eq!(by_fd(fx.json_fd("/eventfd/fd"))["anon"], "eventfd");
    assert_eq!(by_fd(fx.json_fd("/udp/fd"))["proto"], "udp");
    assert!(by_fd(fx.json_fd("/file/fd"))["state"].is_null());
}

#[test]
fn fields_are_scriptable_and_work_as_target_methods() {
    let fx = Target::fds_fixture(&[], &["all"]);
    let pid = fx.pid.to_string();
    let fd = fx.json_fd("/established/fd");
    let out = ok(&[
        "-p",
        &pid,
        "-e",
        &format!(
            "let f = fds().filter(|f| f.fd == {fd})[0]; \
             `${{f.proto}} ${{f.state}} ${{f.remote_port}} ${{f.rx_queue}} ${{f.kind}}`"
        ),
    ]);
    let port = fx.json()["listen"]["port"].as_u64().unwrap();
    assert_eq!(out.trim(), format!("tcp ESTABLISHED {port} 5 socket"));
    // t.fds() on an attached Target, without -p.
    let out = ok(&[
        "-e",
        &format!("let t = attach({pid}); t.fds().len() == fds().len()"),
    ]);
    assert_eq!(out.trim(), "true");
    // Missing socket fields are (), so comparisons on any fd are safe.
    let out = ok(&[
        "-p",
        &pid,
        "-e",
        "fds().filter(|f| f.kind == \"file\" && f.state == ()).len() > 0",
    ]);
    assert_eq!(out.trim(), "true");
    assert_eq!(
        ok(&["-p", &pid, "-e", "signals().SIGPIPE.ignored"]).trim(),
        "true"
    );
    assert_eq!(
        ok(&["-p", &pid, "-e", "signals()[\"SIGINT\"].caught"]).trim(),
        "true"
    );
}

#[test]
fn close_wait_count_matches_ss() {
    let fx = Target::fds_fixture(&[], &["many", "400"]);
    let pid = fx.pid.to_string();
    let out = ok(&[
        "-p",
        &pid,
        "-e",
        "fds().filter(|f| f.state == \"CLOSE_WAIT\").len()",
    ]);
    let ours: usize = out.trim().parse().unwrap();
    let ss = output(
        Command::new("ss").args(["-Htanp", "state", "close-wait"]),
        REACH_DEADLINE,
    );
    let needle = format!("pid={},", fx.pid);
    let by_ss = String::from_utf8_lossy(&ss.stdout)
        .lines()
        .filter(|l| l.contains(&needle))
        .count();
    assert_eq!(ours, by_ss);
    assert_eq!(ours as u64, fx.json()["close_wait"].as_u64().unwrap());
}

#[test]
fn threads_and_waiters_show_the_blocked_reader() {
    let fx = Target::fds_fixture(&[], &["blocked"]);
    let pid = fx.pid.to_string();
    let fd = fx.json_fd("/fd");
    let tid = fx.json_fd("/reader_tid");
    let out = ok(&["-p", &pid, "--json", "-e", "threads()"]);
    let threads: Value = serde_json::from_str(&out).unwrap();
    let reader = threads
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tid"] == tid)
        .unwrap_or_else(|| panic!("no thread {tid} in {out}"));
    assert_eq!(reader["name"], "reader");
    assert_eq!(reader["syscall"], "recvfrom");
    assert_eq!(reader["fd"], fd);
    let text = ok(&["-p", &pid, "-e", "threads()"]);
    // The TID column is right-aligned to the widest tid.
    assert!(text.trim_start().starts_with("TID"), "{text}");
    let row = text
        .lines()
        .find(|l| l.contains("reader"))
        .expect("reader row");
    assert!(row.contains("recvfrom"), "{row}");
    let out = ok(&[
        "-p",
        &pid,
        "-e",
        &format!("fds().filter(|f| f.fd == {fd})[0].waiters"),
    ]);
    let waiters: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(waiters, serde_json::json!([tid]));
}

#[test]
fn shutdown_from_the_cli_wakes_the_reader_and_says_how() {
    let mut fx = Target::fds_fixture(&[], &["blocked"]);
    let pid = fx.pid.to_string();
    let fd = fx.json_fd("/fd");
    let expr = format!("fds().filter(|f| f.fd == {fd})[0].shutdown(SHUT_RDWR)");

    // --dry-run changes nothing; with -e, what it would do is on stderr
    // (stdout keeps the value).
    let out = reach(&["-p", &pid, "--dry-run", "-e", &expr]);
    assert_ok(&out);
    assert!(
        out.stderr.contains("dry-run: would shut down fd"),
        "{out:#?}"
    );
    let still = fds::list(fx.pid).unwrap();
    let reader = fx.json_fd("/reader_tid");
    assert_eq!(
        still.iter().find(|f| f.fd == fd).unwrap().waiters,
        vec![reader]
    );

    let out = reach(&["-p", &pid, "-e", &expr]);
    assert_ok(&out);
    assert_eq!(out.stdout.trim(), "0");
    assert!(
        out.stderr.contains("pidfd_getfd"),
        "says which path: {}",
        out.stderr
    );
    let woke = fx.next_json();
    assert_eq!(woke["event"], "woke");
    let status = fx.ask_json("status");
    assert_eq!(status["tracer_max"], 0, "{status}");

    // A non-socket is refused with exit status 1 and one clear line.
    let out = reach(&["-p", &pid, "-e", "fds()[0].shutdown(SHUT_RDWR)"]);
    assert_error(&out, 1, &["not a socket"]);
}
