//! A library replaced or deleted on disk after the target mapped it: reach
//! resolves symbols from what is mapped (through /proc/PID/map_files), not
//! from the file now at that path, so the call still lands on the old code.
//! libanswer_v2 has answer() at a different offset, so reading the new file
//! would jump into the wrong bytes.

use crate::support::*;
use std::fs;
use std::path::PathBuf;

/// A libuser target with a private copy of libanswer v1 at the returned path.
fn target_with_v1() -> (Target, PathBuf) {
    let dir = workdir("lib");
    let lib = dir.join("libanswer.so");
    fs::copy(fixture("libanswer_v1"), &lib).unwrap();
    let t = Target::fixture("libuser", &[lib.to_str().unwrap()]);
    assert_eq!(t.field("answer"), "1");
    (t, lib)
}

#[test]
fn library_replaced_on_disk_still_resolves_to_the_mapped_code() {
    let (mut t, lib) = target_with_v1();
    // Upgrade the way package managers do: write a new file, rename it over.
    let new = lib.with_extension("so.new");
    fs::copy(fixture("libanswer_v2"), &new).unwrap();
    fs::rename(&new, &lib).unwrap();
    assert!(maps(t.pid).contains("libanswer.so (deleted)"));

    assert_eq!(eval_ok(t.pid, r#"call("answer", [])"#), "1");
    assert_eq!(t.ask("answer"), "answer=1");
    assert_untouched(&t);
}

#[test]
fn library_deleted_on_disk_still_resolves() {
    let (mut t, lib) = target_with_v1();
    fs::remove_file(&lib).unwrap();

    assert_eq!(eval_ok(t.pid, r#"call("answer", [])"#), "1");
    assert_eq!(t.ask("answer"), "answer=1");
    assert_untouched(&t);
}
