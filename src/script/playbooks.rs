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
    playbook!("sockets"),
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
        self.source
            .lines()
            .take_while(|l| l.starts_with("//"))
            .map(|l| l.trim_start_matches("//").strip_prefix(' ').unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// How errors name it: the file it came from.
    pub fn origin(&self) -> String {
        format!("scripts/{}.rhai", self.name)
    }
}

pub fn find(name: &str) -> Option<&'static Playbook> {
    PLAYBOOKS.iter().find(|p| p.name == name)
}

/// `reach --list`: one line per playbook.
pub fn list_text() -> String {
    let width = PLAYBOOKS.iter().map(|p| p.name.len()).max().unwrap_or(0);
    let mut out = String::from("built-in playbooks (reach [--dry-run] -p PID NAME ARGS…):\n");
    for p in PLAYBOOKS {
        out.push_str(&format!("  {:width$}  {}\n", p.name, p.summary()));
    }
    out.pop();
    out
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
            for part in ["Usage:", "Safety:"] {
                assert!(p.header().contains(part), "{} header lacks {part}", p.name);
            }
            if let Err(e) = engine.compile(p.source) {
                panic!("{} does not compile: {e}", p.name);
            }
        }
    }
}
