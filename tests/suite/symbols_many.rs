//! A process with 150 libraries: every library's function is found and
//! called. How long that takes is measured in benches/, not here.

use crate::support::*;
use std::process::Command;

#[test]
fn every_one_of_150_libraries_is_callable() {
    let dir = workdir("many");
    let libs = build_many(&dir, 150);
    let host = build_host(&dir);
    let mut cmd = Command::new(&host);
    cmd.args(&libs);
    let target = Target::spawn(cmd);
    let script = r#"
        let wrong = [];
        for i in 0..150 {
            if call("many_fn_" + i) != i { wrong.push(i); }
        }
        wrong
    "#;
    assert_eq!(evals_ok(target.pid, &[script]), "[]");
    let qualified = r#"call("libmany_149.so:many_fn_149") + call("libmany_7:many_fn_7")"#;
    assert_eq!(evals_ok(target.pid, &[qualified]), "156");
}
