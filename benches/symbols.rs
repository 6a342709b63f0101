//! Symbol resolution in a process with 160 libraries, cold and warm.
//!
//! `cargo bench --bench symbols`. Cold: a new resolver (what one `reach`
//! run starts with): read the maps and the link map, open and look through
//! every object up to the one that defines the name. Warm: the same
//! resolver asked again (what every later call in a script or the REPL
//! does). Also the whole `reach -p PID -e 'sym(...)'` run.

#[path = "../tests/suite/support/mod.rs"]
mod support;

use reach::process::symbols::Symbols;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

const LIBRARIES: usize = 160;

fn main() {
    let dir = workdir("bench");
    let libs = build_many(&dir, LIBRARIES);
    let host = build_host(&dir);
    let mut cmd = Command::new(&host);
    cmd.args(&libs);
    let target = Target::spawn(cmd);
    let pid = target.pid;
    let objects = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap()
        .lines()
        .filter(|l| l.contains(".so"))
        .map(|l| l.split_whitespace().nth(5).unwrap_or(""))
        .collect::<std::collections::HashSet<_>>()
        .len();
    println!("target: pid {pid}, {objects} shared objects mapped");

    let last = format!("many_fn_{}", LIBRARIES - 1);
    let names = ["shutdown", "many_fn_0", last.as_str()];
    println!("{:<28} {:>12} {:>12}", "lookup", "cold", "warm");
    for name in names {
        let cold = median(21, || {
            let mut symbols = Symbols::default();
            let t = Instant::now();
            symbols.resolve(pid, name).unwrap();
            t.elapsed()
        });
        let mut symbols = Symbols::default();
        symbols.resolve(pid, name).unwrap();
        let rounds = 20_000;
        let t = Instant::now();
        for _ in 0..rounds {
            symbols.resolve(pid, name).unwrap();
        }
        let warm = t.elapsed() / rounds;
        println!("{:<28} {:>12?} {:>12?}", name, cold, warm);
    }
    // Warm (every object already opened), but each lookup a name not
    // asked before: a walk through the hash tables in search order.
    let mut symbols = Symbols::default();
    symbols.resolve(pid, &last).unwrap();
    let t = Instant::now();
    for i in 0..LIBRARIES {
        symbols.resolve(pid, &format!("many_fn_{i}")).unwrap();
    }
    let fresh_names = t.elapsed() / LIBRARIES as u32;
    println!(
        "{:<28} {:>12} {:>12?}",
        "each many_fn_N, new name", "", fresh_names
    );

    let expr = format!("sym(\"{last}\")");
    let whole = median(11, || {
        let t = Instant::now();
        evals_ok(pid, &[&expr]);
        t.elapsed()
    });
    println!("reach -p {pid} -e '{expr}': {whole:?} (whole process, median of 11)");
}

fn median(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..runs).map(|_| f()).collect();
    times.sort();
    times[runs / 2]
}
