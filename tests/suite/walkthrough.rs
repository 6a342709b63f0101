//! README.md's walkthrough, run: the same examples, the same reach
//! commands, and what reach prints checked against the README's blocks —
//! numbers (pids, ports, inodes, queue sizes) and times aside, a `…` line
//! standing for lines left out.

use crate::support::*;

/// One `$ reach …` (or `reach[…]> EXPR`) of the walkthrough and the lines
/// the README shows it printing.
struct Step {
    args: Vec<String>,
    expect: Vec<String>,
}

/// The steps of walkthrough section `title` (a `### ` heading).
fn steps(title: &str) -> Vec<Step> {
    let readme = std::fs::read_to_string(manifest_dir().join("README.md")).unwrap();
    let start = readme
        .find(title)
        .unwrap_or_else(|| panic!("no {title:?} in README.md"));
    let end = readme[start + 4..]
        .find("\n## ")
        .into_iter()
        .chain(readme[start + 4..].find("\n### "))
        .min()
        .map_or(readme.len(), |i| start + 4 + i);
    let mut steps: Vec<Step> = Vec::new();
    // Inside a block: whether it shows output (bare ```; ```sh blocks
    // are what to type).
    let (mut block, mut repl_pid) = (None::<bool>, None::<String>);
    let mut taking = false;
    for line in readme[start..end].lines() {
        if line.starts_with("```") {
            block = match block {
                None => Some(line == "```"),
                Some(_) => None,
            };
            taking = false;
            continue;
        }
        if block != Some(true) {
            continue;
        }
        if let Some(cmd) = line.strip_prefix("$ reach ") {
            let args: Vec<String> = cmd.split_whitespace().map(String::from).collect();
            // `$ reach -p PID` alone opens the REPL: its lines follow.
            repl_pid = (args.len() == 2 && args[0] == "-p").then(|| args[1].clone());
            taking = repl_pid.is_none();
            if taking {
                steps.push(Step {
                    args,
                    expect: Vec::new(),
                });
            }
        } else if let (Some(pid), Some((_, expr))) = (&repl_pid, line.split_once("]> ")) {
            steps.push(Step {
                args: vec!["-p".into(), pid.clone(), "-e".into(), expr.into()],
                expect: Vec::new(),
            });
            taking = true;
        } else if line.starts_with("$ ") {
            taking = false;
        } else if taking {
            steps.last_mut().unwrap().expect.push(line.to_string());
        }
    }
    assert!(!steps.is_empty(), "no reach command under {title:?}");
    steps
}

/// A line with numbers and durations blanked and spaces collapsed.
fn normal(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            while chars
                .peek()
                .is_some_and(|d| d.is_ascii_digit() || *d == '.')
            {
                chars.next();
            }
            // A duration as the tables show it: 40ms, 1.5s, 7m05s, 3h02m.
            let mut unit = String::new();
            while chars
                .peek()
                .is_some_and(|u| "mshd".contains(*u) || u.is_ascii_digit())
            {
                unit.push(chars.next().unwrap());
            }
            out.push_str(if unit.is_empty() { "#" } else { "#T" });
        } else if c.is_whitespace() {
            if !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    out.trim().to_string()
}

/// Each expected line (but `…`) is printed, in order.
fn assert_prints(step: &Step, out: &ReachOutput) {
    assert_ok(out);
    let got: Vec<String> = out.stdout.lines().map(normal).collect();
    let mut at = 0;
    for want in step.expect.iter().filter(|l| l.trim() != "…") {
        let want = normal(want);
        match got[at..].iter().position(|g| *g == want) {
            Some(i) => at += i + 1,
            None => panic!(
                "reach {} did not print\n  {want}\nafter line {at} of:\n{}",
                step.args.join(" "),
                got.join("\n")
            ),
        }
    }
}

/// Run `steps`, with the README's pid and port replaced by the live ones.
fn run(steps: &[Step], readme: &[(&str, String)]) {
    for step in steps {
        let args: Vec<String> = step
            .args
            .iter()
            .map(|a| {
                readme
                    .iter()
                    .fold(a.clone(), |a, (from, to)| a.replace(from, to))
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_prints(step, &reach(&args));
    }
}

#[test]
fn incident_1_the_stuck_job() {
    let server = Target::example("silent_server.py", &["0"], "silent server on");
    let port = server.ready.split(':').nth(1).unwrap().trim().to_string();
    let addr = format!("127.0.0.1:{port}");
    let client = Target::example("stuck_client.py", &[&addr], "client pid");
    assert!(wait_until(STATE_DEADLINE, || task_syscall(
        client.pid, client.pid
    ) == Some(libc::SYS_recvfrom)));
    let live = [("5614", client.pid.to_string()), ("7777", port)];
    run(&steps("### 1. A job stuck"), &live);
    client
        .find_line(STATE_DEADLINE, |l| l == "job finished")
        .expect("the client's job never finished");
    drop(server);
}

#[test]
fn incident_2_the_leaky_server() {
    let server = Target::example("leaky_server.py", &["0"], "leaky server pid");
    let port = server.ready.rsplit(':').next().unwrap().to_string();
    let poke = manifest_dir().join("examples/poke.py");
    let out = output(
        std::process::Command::new("python3")
            .arg(&poke)
            .args([&port, "3"]),
        REACH_DEADLINE,
    );
    assert!(out.status.success(), "{out:?}");
    server
        .find_line(STATE_DEADLINE, |l| l == "client left; 3 connections held")
        .expect("the clients never left");
    let live = [("6206", server.pid.to_string()), ("7778", port.clone())];
    run(&steps("### 2. A server leaking"), &live);
    // The announce the README runs next: the server survives it.
    let out = output(
        std::process::Command::new("python3")
            .arg(&poke)
            .args([&port, "announce", "hello"]),
        REACH_DEADLINE,
    );
    assert!(out.status.success(), "{out:?}");
    server
        .find_line(STATE_DEADLINE, |l| l.starts_with("announced to"))
        .expect("the server did not announce");
    assert_running(&server);
}
