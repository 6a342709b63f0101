//! Rhai values → arguments of an injected call.

use crate::process::Arg;
use rhai::{Array, Blob, Dynamic};

/// Convert the array given to `call`/`syscall` into call arguments: ints
/// (and bools, chars) by value; strings NUL-terminated and blobs as they
/// are, both copied into the target for the duration of the call.
pub fn to_args(function: &str, values: &Array) -> Result<Vec<Arg>, String> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| to_arg(v).ok_or_else(|| bad_arg(function, i, v)))
        .collect()
}

fn to_arg(v: &Dynamic) -> Option<Arg> {
    if let Some(i) = v.clone().try_cast::<i64>() {
        return Some(Arg::Int(i as u64));
    }
    if let Some(a) = v.clone().try_cast::<super::address::Address>() {
        return Some(Arg::Int(a.0));
    }
    if let Some(b) = v.clone().try_cast::<bool>() {
        return Some(Arg::Int(b as u64));
    }
    if let Some(c) = v.clone().try_cast::<char>() {
        return Some(Arg::Int(c as u64));
    }
    if v.is_string() {
        let mut bytes = v.clone().into_string().ok()?.into_bytes();
        bytes.push(0);
        return Some(Arg::Bytes(bytes));
    }
    if let Some(blob) = v.clone().try_cast::<Blob>() {
        return Some(Arg::Bytes(blob));
    }
    None
}

fn bad_arg(function: &str, index: usize, v: &Dynamic) -> String {
    format!(
        "argument {} of {function} is {} ({v}); arguments must be ints, bools, strings or blobs",
        index + 1,
        type_name(v)
    )
}

/// A type name an operator understands.
pub fn type_name(v: &Dynamic) -> &'static str {
    match v.type_name() {
        "i64" => "an int",
        "f64" => "a float",
        "bool" => "a bool",
        "char" => "a char",
        t if t.ends_with("Address") => "an address",
        "string" | "ImmutableString" => "a string",
        "()" => "()",
        t if t.contains("Array") || t == "array" => "an array",
        t if t.contains("Map") || t == "map" => "a map",
        t if t.contains("Blob") || t == "blob" => "a blob",
        _ => "a value of another type",
    }
}

/// Render args as C would read them, for dry-run output and messages.
pub fn describe(values: &Array) -> String {
    values
        .iter()
        .map(|v| {
            if v.is_string() {
                format!("{:?}", v.clone().into_string().unwrap_or_default())
            } else if let Some(b) = v.clone().try_cast::<Blob>() {
                format!("<blob of {} bytes>", b.len())
            } else {
                v.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
