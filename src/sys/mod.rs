//! The only place that talks to the kernel's debugging interfaces.
//!
//! Owns: ptrace requests and raw wait statuses (`ptrace.rs`), x86-64
//! registers, signal frames and the code reach runs in a target
//! (`x86_64/`), target memory (`memory.rs`),
//! read-only file mappings (`filemap.rs`), one-mapping queries of
//! `/proc/PID/maps` (`procmap.rs`), pidfds (`pidfd.rs`), `/proc`
//! directories held open (`procdir.rs`), sockets seen from outside
//! (`socket.rs`), TCP/UDP socket tables by netlink (`sock_diag.rs`) and
//! reach's own signal handling (`interrupt.rs`).
//! All `unsafe` lives here. Must never know about Rhai, never print, and
//! never decide policy: callers above decide what a stop means.

#![allow(unsafe_code)]

pub mod filemap;
pub mod interrupt;
pub mod memory;
pub mod pidfd;
pub mod procdir;
pub mod procmap;
pub mod ptrace;
pub mod sock_diag;
pub mod socket;
pub mod x86_64;
