//! Which descriptors fds() finds: where the fd table is dense it tries
//! every number below its size instead of listing `/proc/PID/fd`, where it
//! is sparse it lists the directory. Both must find exactly the open ones.

use crate::support::*;
use reach::process::fds;

/// A Python process that opens `sockets` sockets, dups one of them to
/// `high`, then says ready with the numbers of its open descriptors.
fn holder(sockets: usize, high: i32) -> (Target, Vec<i32>) {
    let program = format!(
        "import json, os, socket, sys\n\
         keep = [socket.socket() for _ in range({sockets})]\n\
         os.dup2(keep[0].fileno(), {high})\n\
         def is_open(fd):\n\
         \x20   try:\n\
         \x20       os.fstat(fd)\n\
         \x20       return True\n\
         \x20   except OSError:\n\
         \x20       return False\n\
         listed = [int(n) for n in os.listdir('/proc/self/fd')]\n\
         print('ready', json.dumps(sorted(n for n in listed if is_open(n))), flush=True)\n\
         sys.stdin.read()\n"
    );
    let t = Target::python(&program, &[]);
    let open = t.ready["ready ".len()..].to_string();
    let open = serde_json::from_str(&open).unwrap_or_else(|e| panic!("{open:?}: {e}"));
    (t, open)
}

fn listed(pid: i32) -> Vec<i32> {
    fds::list(pid).unwrap().iter().map(|f| f.fd).collect()
}

#[test]
fn a_dense_table_is_read_number_by_number() {
    // ~205 open in a table of 512: every number is tried.
    let (h, open) = holder(200, 300);
    assert!(open.contains(&300));
    assert_eq!(listed(h.pid), open);
}

#[test]
fn a_sparse_table_is_listed() {
    // A handful open in a table of thousands: the directory is listed.
    let (h, open) = holder(2, 5000);
    assert!(open.contains(&5000));
    assert_eq!(listed(h.pid), open);
}
