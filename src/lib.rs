//! reach: call functions and system calls inside a running Linux process.
//!
//! Layers, each depending only on the ones below it:
//! `script` (Rhai, printing) → `process` (targets, symbols, calls) →
//! `sys` (ptrace, registers, memory: the only unsafe code).

#![deny(unsafe_code)]

pub mod process;
pub mod script;
pub mod sys;
