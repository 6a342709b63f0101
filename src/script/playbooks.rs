//! The recovery playbooks of `scripts/`, compiled into the binary so an
//! installed `reach` has them: `reach --list`, `reach -p PID NAME ARGS…`.
//!
//! Each playbook opens with a header comment; its first line is
//! `// NAME: one-line summary`, the rest says its arguments and safety.

pub struct Playbook {
    pub name: &'static str,
    pub source: &'static str,
}

macro_rules! playbook {
    ($name:literal) => {
        Playbook {
            name: $name,
            source: include_str!(concat!("../../scripts/", $name, ".rhai")),
        }
    };
}

pub const PLAYBOOKS: &[Playbook] = &[
    playbook!("unstick"),
    playbook!("reap-close-wait"),
    playbook!("ignore-sigpipe"),
    playbook!("drop"),
    playbook!("tcpdrop"),
    playbook!("sockets"),
    playbook!("stacks"),
];

impl Playbook {
    /// The first header line, after `NAME:`.
    pub fn summary(&self) -> &'static str {
        let first = self.source.lines().next().unwrap_or("");
        let text = first.trim_start_matches('/').trim();
        text.split_once(':')
            .map_or(text, |(_, summary)| summary)
            .trim()
    }

    /// The header comment, without the comment markers.
    pub fn header(&self) -> String {
        header(self.source)
    }

    /// Its arguments, from the header's `Usage: reach -p PID NAME ARGS`.
    pub fn arguments(&self) -> &'static str {
        let usage = self
            .source
            .lines()
            .find_map(|l| l.trim_start_matches('/').trim().strip_prefix("Usage:"))
            .unwrap_or("");
        usage
            .split_once(self.name)
            .map_or("", |(_, args)| args)
            .trim()
    }

    /// How errors name it: the file it came from.
    pub fn origin(&self) -> String {
        format!("scripts/{}.rhai", self.name)
    }
}

/// A script's header comment (its leading `//` lines), without the
/// comment markers: what `reach -p PID NAME --help` prints.
pub fn header(source: &str) -> String {
    source
        .lines()
        .take_while(|l| l.starts_with("//"))
        .map(|l| l.trim_start_matches("//").strip_prefix(' ').unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn find(name: &str) -> Option<&'static Playbook> {
    PLAYBOOKS.iter().find(|p| p.name == name)
}

/// `reach --list`: each playbook with its arguments, and its summary.
pub fn list_text() -> String {
    let mut out = String::from(
        "built-in playbooks (reach [--dry-run] -p PID NAME ARGS…; reach -p PID NAME --help shows one in full):\n",
    );
    for p in PLAYBOOKS {
        out.push_str(&format!(
            "  {} {}\n      {}\n",
            p.name,
            p.arguments(),
            p.summary()
        ));
    }
    out.pop();
    out
}

/// The largest script reach reads (a file or stdin).
pub const MAX_SCRIPT: u64 = 16 << 20;

/// The text of the script at `path`: a regular file of at most
/// [`MAX_SCRIPT`] bytes. Opened without blocking, so a FIFO cannot hang
/// reach, and checked before reading, so `/dev/zero` cannot fill memory.
pub fn read_file(path: &str) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    let file = crate::sys::filemap::open_regular(path)?;
    let len = file.metadata()?.len();
    if len > MAX_SCRIPT {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{len} bytes; scripts are at most {MAX_SCRIPT}"),
        ));
    }
    let mut text = String::new();
    file.take(MAX_SCRIPT).read_to_string(&mut text)?;
    Ok(text)
}

/// The script on stdin, at most [`MAX_SCRIPT`] bytes; Ctrl-C (SIGINT,
/// SIGTERM) ends the wait for it.
pub fn read_stdin() -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let mut stdin = std::io::stdin().lock();
    loop {
        match stdin.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() as u64 > MAX_SCRIPT {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!("more than {MAX_SCRIPT} bytes; scripts are at most that"),
                    ));
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {
                if let Some(sig) = crate::sys::interrupt::pending() {
                    return Err(Error::new(
                        ErrorKind::Interrupted,
                        format!(
                            "interrupted by {}",
                            crate::process::engine::signal_name(sig)
                        ),
                    ));
                }
            }
            Err(e) => return Err(e),
        }
    }
    String::from_utf8(buf).map_err(|_| Error::new(ErrorKind::InvalidData, "not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::Settings;
    use crate::script::{Session, engine};

    #[test]
    fn every_playbook_has_a_header_and_compiles() {
        let shared = Session::new(Settings::default(), false);
        let engine = engine::new_engine(&shared);
        for p in PLAYBOOKS {
            assert!(
                p.source.starts_with(&format!("// {}: ", p.name)),
                "{} must open with `// {}: summary`",
                p.name,
                p.name
            );
            assert!(!p.summary().is_empty());
            assert!(
                !p.arguments().is_empty(),
                "{}: Usage names no arguments",
                p.name
            );
            for part in ["Usage:", "Safety:"] {
                assert!(p.header().contains(part), "{} header lacks {part}", p.name);
            }
            if let Err(e) = engine.compile(p.source) {
                panic!("{} does not compile: {e}", p.name);
            }
        }
    }
}
