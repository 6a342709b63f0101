//! Walking a target's descriptors: `/proc/PID/fd` links and `fdinfo`.
//!
//! Cost is linear in the number of descriptors: one `readlink` and one
//! `fdinfo` read per descriptor (plus a `stat` for anything that is not a
//! socket, pipe or anon inode). That readlink is the bulk of the cost, so
//! the walk is shared, a chunk at a time, with the thread that reads the
//! socket tables.

use super::{Fd, Kind};
use crate::process::procinfo;
use crate::sys::procdir::ProcDir;
use std::os::unix::fs::FileTypeExt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Descriptor numbers to read without listing `/proc/PID/fd`: every number
/// below the size of the fd table (`FDSize`), when that is not much more
/// than the number of open descriptors (the directory's size, Linux 6.2+).
/// Listing the directory costs a fifth of reading every link, since the
/// kernel looks each descriptor up for it too, while a closed number costs
/// one failed lookup. `None`: list the directory.
pub(super) fn numbers_to_try(dir: &str, fd_dir: &ProcDir) -> Option<Vec<i32>> {
    let open = fd_dir.size().ok().filter(|&n| n > 0)?;
    let table = u64::from(procinfo::status_at(dir)?.fdsize);
    (table <= 2 * open + 256).then(|| (0..table.min(i32::MAX as u64) as i32).collect())
}

/// The descriptor numbers in `/proc/PID/fd`.
pub(super) fn fd_numbers(entries: std::fs::ReadDir) -> Vec<i32> {
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Describes descriptors, a chunk at a time, for any thread that asks.
pub(super) struct Walker<'a> {
    /// The process's `/proc` directory ([`procinfo::dir`]).
    pub(super) dir: &'a str,
    pub(super) fd_dir: ProcDir,
    pub(super) info_dir: Option<ProcDir>,
    /// The descriptor numbers to read, ascending; set once known, and
    /// [`Walker::walk`] waits for it.
    pub(super) numbers: OnceLock<Vec<i32>>,
    /// The next index into `numbers` not yet claimed.
    pub(super) next: AtomicUsize,
}

impl Walker<'_> {
    const CHUNK: usize = 256;

    /// Describe descriptors until none are left unclaimed: each chunk
    /// with its position in `numbers`.
    pub(super) fn walk(&self) -> Vec<(usize, Vec<Fd>)> {
        let numbers = self.numbers.wait();
        let mut chunks = Vec::new();
        loop {
            let start = self.next.fetch_add(Self::CHUNK, Ordering::Relaxed);
            let Some(chunk) = numbers.get(start..) else {
                return chunks;
            };
            let mut fds = Vec::with_capacity(Self::CHUNK);
            for &fd in chunk.iter().take(Self::CHUNK) {
                // Not open (closed since the directory was read, or a
                // number tried without listing it): leave it out.
                let Ok(target) = self.fd_dir.readlink_number(fd) else {
                    continue;
                };
                fds.push(describe(self.dir, fd, self.info_dir.as_ref(), target));
            }
            chunks.push((start, fds));
        }
    }
}

/// Kind, path and fdinfo of one descriptor, from its link text. Sockets
/// skip fdinfo: their position is meaningless, and with thousands of them
/// it would double the cost of the listing.
fn describe(dir: &str, fd: i32, info_dir: Option<&ProcDir>, target: String) -> Fd {
    let (kind, inode, anon) = classify(&target);
    let mut f = Fd::new(fd, kind, target);
    f.inode = inode;
    f.anon = anon;
    if f.kind != Kind::Socket
        && let Some(info) = info_dir.and_then(|d| read_fdinfo(d, fd))
    {
        f.pos = info.pos;
        f.flags = info.flags;
        f.inode = f.inode.or(info.ino);
    }
    if f.kind == Kind::Unknown {
        // A path (or something new): ask the file itself.
        match std::fs::metadata(format!("{dir}/fd/{fd}")) {
            Ok(meta) => {
                let t = meta.file_type();
                f.kind = if t.is_dir() {
                    Kind::Dir
                } else if t.is_file() {
                    Kind::File
                } else if t.is_char_device() {
                    Kind::Char
                } else if t.is_block_device() {
                    Kind::Block
                } else if t.is_fifo() {
                    Kind::Pipe
                } else if t.is_socket() {
                    Kind::Socket
                } else {
                    Kind::Unknown
                };
                f.inode = Some(std::os::unix::fs::MetadataExt::ino(&meta));
            }
            Err(_) => f.kind = Kind::Unknown,
        }
        f.deleted = f.path.ends_with(" (deleted)");
    }
    f
}

/// Recognise the link texts that are not paths: `socket:[N]`, `pipe:[N]`,
/// `anon_inode:[eventfd]`, `net:[N]`, … Anything else is `Unknown` here and
/// looked at with `stat`.
pub(super) fn classify(target: &str) -> (Kind, Option<u64>, Option<String>) {
    if target.starts_with('/') {
        return (Kind::Unknown, None, None);
    }
    if let Some(name) = target.strip_prefix("anon_inode:") {
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let name = match name {
            "eventpoll" => "epoll",
            other => other,
        };
        return (Kind::Anon, None, Some(name.to_string()));
    }
    let Some((prefix, rest)) = target.split_once(":[") else {
        return (Kind::Unknown, None, None);
    };
    let inode = rest.strip_suffix(']').and_then(|n| n.parse().ok());
    let kind = match prefix {
        "socket" => Kind::Socket,
        "pipe" => Kind::Pipe,
        "pidfd" => return (Kind::Anon, inode, Some("pidfd".into())),
        "net" | "mnt" | "uts" | "ipc" | "pid" | "user" | "cgroup" | "time" | "pid_for_children"
        | "time_for_children" => Kind::Ns,
        _ => Kind::Unknown,
    };
    (kind, inode, None)
}

#[derive(Debug, Default, PartialEq, Eq)]
struct FdInfo {
    pos: Option<u64>,
    flags: Option<u32>,
    ino: Option<u64>,
}

fn read_fdinfo(dir: &ProcDir, fd: i32) -> Option<FdInfo> {
    let mut text = String::new();
    dir.read_to_string(&fd.to_string(), &mut text).ok()?;
    Some(parse_fdinfo(&text))
}

fn parse_fdinfo(text: &str) -> FdInfo {
    let mut info = FdInfo::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "pos" => info.pos = value.parse().ok(),
            "flags" => info.flags = u32::from_str_radix(value, 8).ok(),
            "ino" => info.ino = value.parse().ok(),
            _ => {}
        }
    }
    info
}

/// The `O_*` names of open flags (include/uapi/asm-generic/fcntl.h).
pub fn flag_names(flags: u32) -> String {
    let mut names = vec![match flags & 0o3 {
        0o0 => "O_RDONLY",
        0o1 => "O_WRONLY",
        0o2 => "O_RDWR",
        _ => "O_ACCMODE",
    }];
    const FLAGS: &[(u32, &str)] = &[
        (0o100, "O_CREAT"),
        (0o200, "O_EXCL"),
        (0o400, "O_NOCTTY"),
        (0o1000, "O_TRUNC"),
        (0o2000, "O_APPEND"),
        (0o4000, "O_NONBLOCK"),
        (0o10000, "O_DSYNC"),
        (0o20000, "O_ASYNC"),
        (0o40000, "O_DIRECT"),
        (0o100000, "O_LARGEFILE"),
        (0o200000, "O_DIRECTORY"),
        (0o400000, "O_NOFOLLOW"),
        (0o1000000, "O_NOATIME"),
        (0o2000000, "O_CLOEXEC"),
        (0o4000000, "O_SYNC"),
        (0o10000000, "O_PATH"),
        (0o20000000, "O_TMPFILE"),
    ];
    for (bit, name) in FLAGS {
        // O_SYNC includes O_DSYNC's bit; O_TMPFILE includes O_DIRECTORY's.
        if flags & bit == *bit {
            names.push(name);
        }
    }
    names.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_links() {
        assert_eq!(classify("socket:[12]"), (Kind::Socket, Some(12), None));
        assert_eq!(classify("pipe:[13]"), (Kind::Pipe, Some(13), None));
        assert_eq!(
            classify("anon_inode:[eventfd]"),
            (Kind::Anon, None, Some("eventfd".into()))
        );
        assert_eq!(
            classify("anon_inode:[eventpoll]"),
            (Kind::Anon, None, Some("epoll".into()))
        );
        assert_eq!(
            classify("anon_inode:inotify"),
            (Kind::Anon, None, Some("inotify".into()))
        );
        assert_eq!(classify("net:[4026531840]").0, Kind::Ns);
        assert_eq!(classify("/etc/passwd").0, Kind::Unknown);
        assert_eq!(classify("weird").0, Kind::Unknown);
    }

    #[test]
    fn fdinfo_and_flags() {
        let info = parse_fdinfo("pos:\t42\nflags:\t02104002\nmnt_id:\t15\nino:\t777\n");
        assert_eq!(info.pos, Some(42));
        assert_eq!(info.ino, Some(777));
        assert_eq!(
            flag_names(info.flags.unwrap()),
            "O_RDWR|O_NONBLOCK|O_LARGEFILE|O_CLOEXEC"
        );
        assert_eq!(flag_names(0o4010001), "O_WRONLY|O_DSYNC|O_SYNC");
    }
}
