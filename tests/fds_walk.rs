//! Which descriptors fds() finds: where the fd table is dense it tries
//! every number below its size instead of listing `/proc/PID/fd`, where it
//! is sparse it lists the directory. Both must find exactly the open ones.

use reach::process::fds;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A Python process that opens `sockets` sockets, dups one of them to
/// `high`, then prints the numbers of its open descriptors and waits.
struct Holder {
    child: Child,
    open: Vec<i32>,
}

impl Holder {
    fn spawn(sockets: usize, high: i32) -> Holder {
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
             print(json.dumps(sorted(n for n in listed if is_open(n))), flush=True)\n\
             sys.stdin.read()\n"
        );
        let mut child = Command::new("python3")
            .args(["-c", &program])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let open = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        Holder { child, open }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listed(pid: i32) -> Vec<i32> {
    fds::list(pid).unwrap().iter().map(|f| f.fd).collect()
}

#[test]
fn a_dense_table_is_read_number_by_number() {
    // ~205 open in a table of 512: every number is tried.
    let h = Holder::spawn(200, 300);
    assert!(h.open.contains(&300));
    assert_eq!(listed(h.pid()), h.open);
}

#[test]
fn a_sparse_table_is_listed() {
    // A handful open in a table of thousands: the directory is listed.
    let h = Holder::spawn(2, 5000);
    assert!(h.open.contains(&5000));
    assert_eq!(listed(h.pid()), h.open);
}
