//! `/proc/PID/maps`, parsed: the target's memory mappings, as
//! proc_pid_maps(5) describes them. Reading never stops the target.

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    /// `r-xp` and the like.
    pub perms: String,
    /// Offset in the file of the first mapped byte.
    pub offset: u64,
    /// `major:minor` in hex, as the kernel prints it.
    pub dev: String,
    pub inode: u64,
    /// A file path (with ` (deleted)` if it was unlinked), `[heap]`,
    /// `[stack]`, `[vdso]`, … or empty for an anonymous mapping.
    pub path: String,
}

impl Mapping {
    /// Backed by a regular file (not anonymous, not a `[pseudo]` mapping).
    pub fn is_file(&self) -> bool {
        self.inode != 0 && self.path.starts_with('/')
    }

    pub fn is_executable(&self) -> bool {
        self.perms.as_bytes().get(2) == Some(&b'x')
    }

    /// The file's path without the ` (deleted)` the kernel appends.
    pub fn file_path(&self) -> &str {
        self.path
            .strip_suffix(" (deleted)")
            .unwrap_or(self.path.as_str())
    }
}

/// The raw text of `/proc/PID/maps`.
pub fn read_text(pid: i32) -> std::io::Result<String> {
    let bytes = super::procinfo::read_process_file(pid, "maps")?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Every mapping in `text`; lines that do not parse are skipped.
pub fn parse(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(parse_line).collect()
}

/// `start-end perms offset dev inode path`.
fn parse_line(line: &str) -> Option<Mapping> {
    let mut fields = line.splitn(6, ' ');
    let (start, end) = fields.next()?.split_once('-')?;
    let perms = fields.next()?;
    let offset = fields.next()?;
    let dev = fields.next()?;
    let inode = fields.next()?;
    let path = fields.next().unwrap_or("").trim_start();
    Some(Mapping {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        perms: perms.to_string(),
        offset: u64::from_str_radix(offset, 16).ok()?,
        dev: dev.to_string(),
        inode: inode.parse().ok()?,
        path: path.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_maps_line() {
        let line = "7f0c1a200000-7f0c1a228000 r-xp 00001000 fd:01 1234   /usr/lib/x86_64-linux-gnu/libc.so.6 (deleted)";
        let m = parse_line(line).unwrap();
        assert_eq!(
            (m.start, m.end, m.offset),
            (0x7f0c1a200000, 0x7f0c1a228000, 0x1000)
        );
        assert_eq!((m.dev.as_str(), m.inode), ("fd:01", 1234));
        assert_eq!(m.file_path(), "/usr/lib/x86_64-linux-gnu/libc.so.6");
        assert!(m.is_file() && m.is_executable());
        let anon = parse_line("7ffd1000-7ffd2000 rw-p 00000000 00:00 0 ").unwrap();
        assert!(!anon.is_file() && anon.path.is_empty());
    }
}
