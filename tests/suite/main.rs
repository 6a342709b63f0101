//! reach's integration suite: one test binary, one harness (`support`).
//!
//! Every test runs the real `reach` binary (or its library, for the
//! process-layer tests) against real processes — C fixtures from
//! `tests/fixtures`, Python, Perl, static and musl programs — and asserts
//! what happened to the target: it woke up, it survived, its memory and
//! registers are intact, nothing is left stopped or traced. The tests
//! need root (or CAP_SYS_PTRACE).
//!
//! `cargo test --test suite MODULE::` runs one file, e.g.
//! `cargo test --test suite reliability_stress::`.

mod support;

mod ansible;
mod call_basic;
mod call_errors;
mod call_registers;
mod call_survival;
mod cli_oncall;
mod engine;
mod fds_cli;
mod fds_process;
mod fds_sources;
mod fds_ss;
mod fds_waiters;
mod fds_walk;
mod hostile;
mod hostile_files;
mod incidents;
mod library_upgrade;
mod permissions;
mod playbooks;
mod reliability_faults;
mod reliability_input;
mod reliability_interrupt;
mod reliability_kill;
mod reliability_stress;
mod reliability_threads;
mod repl;
mod stacks;
mod symbols_files;
mod symbols_libc;
mod symbols_link;
mod symbols_many;
mod syscall_static;
mod target_identity;
mod walkthrough;
