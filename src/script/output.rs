//! How results look: plain text for people, JSON with `--json`.

use super::TargetHandle;
use super::address::Address;
use super::builtins::target_label;
use rhai::{Array, Blob, Dynamic, Map};
use serde_json::{Value, json};

/// Print a line on stdout. A closed stdout (`reach … | head`) is no error
/// worth a panic: the rest of the output is dropped.
pub fn say(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// `println!` that survives a closed stdout: see [`say`].
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::script::output::say(&format!($($arg)*))
    };
}

/// Print a line on stderr; a closed or hung-up stderr (an operator's
/// dropped session) loses the line, never panics.
pub fn tell(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// `eprintln!` that survives a closed stderr: see [`tell`].
#[macro_export]
macro_rules! tell {
    ($($arg:tt)*) => {
        $crate::script::output::tell(&format!($($arg)*))
    };
}

/// `text` made safe for a terminal, the way `ls -b` and `ss` show names:
/// control characters (a newline that would forge a table row, an escape
/// sequence that would rewrite the screen) and backslashes as C escapes.
/// Names the target controls — file names, socket paths, thread and
/// library names — pass through this before reaching a terminal.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    // Bidirectional overrides and isolates reorder what follows them on
    // screen (a name that reads as another): escaped too.
    let bidi = |c: char| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(|c| c.is_control() || c == '\\' || bidi(c)) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x1b' => out.push_str("\\e"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if bidi(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Text for the value of the last expression; `None` for `()`.
pub fn render(value: &Dynamic, as_json: bool) -> Option<String> {
    if value.is_unit() {
        return None;
    }
    if as_json {
        return Some(serde_json::to_string_pretty(&to_json(value)).unwrap_or_default());
    }
    Some(to_text(value))
}

/// Plain text: ints in decimal, strings as they are, containers readable.
pub fn to_text(value: &Dynamic) -> String {
    if value.is_string() {
        return value.clone().into_string().unwrap_or_default();
    }
    if let Some(table) = super::fds::to_text(value) {
        return table;
    }
    if let Some(text) = super::stacks::to_text(value) {
        return text;
    }
    if let Some(t) = value.clone().try_cast::<TargetHandle>() {
        return target_label(&t);
    }
    if let Some(a) = value.clone().try_cast::<Address>() {
        return a.to_string();
    }
    if let Some(table) = mappings_table(value) {
        return table;
    }
    if let Some(blob) = value.clone().try_cast::<Blob>() {
        return hex_dump(&blob);
    }
    if value.is_array() || value.is_map() {
        return serde_json::to_string_pretty(&to_json(value)).unwrap_or_default();
    }
    value.to_string()
}

/// JSON for any value reach produces.
pub fn to_json(value: &Dynamic) -> Value {
    if value.is_unit() {
        return Value::Null;
    }
    if let Some(i) = value.clone().try_cast::<i64>() {
        return json!(i);
    }
    if let Some(b) = value.clone().try_cast::<bool>() {
        return json!(b);
    }
    if let Some(f) = value.clone().try_cast::<f64>() {
        return json!(f);
    }
    if value.is_string() {
        return json!(value.clone().into_string().unwrap_or_default());
    }
    if let Some(v) = super::fds::to_json(value) {
        return v;
    }
    if let Some(v) = super::stacks::to_json(value) {
        return v;
    }
    if let Some(a) = value.clone().try_cast::<Address>() {
        return json!(a.0);
    }
    if let Some(t) = value.clone().try_cast::<TargetHandle>() {
        let t = t.0.borrow();
        return json!({"pid": t.pid(), "name": t.name()});
    }
    if let Some(blob) = value.clone().try_cast::<Blob>() {
        return json!(blob);
    }
    if let Some(array) = value.clone().try_cast::<Array>() {
        return Value::Array(array.iter().map(to_json).collect());
    }
    if let Some(map) = value.clone().try_cast::<Map>() {
        return Value::Object(
            map.iter()
                .map(|(k, v)| (k.to_string(), to_json(v)))
                .collect(),
        );
    }
    json!(value.to_string())
}

/// `maps()` as /proc/PID/maps shows it: start-end in hex, perms, offset,
/// dev, inode, path. `None` unless every item is a mapping.
fn mappings_table(value: &Dynamic) -> Option<String> {
    let items = value.read_lock::<Array>()?;
    if items.is_empty() {
        return None;
    }
    let mut lines = Vec::with_capacity(items.len());
    for item in items.iter() {
        let m = item.read_lock::<Map>()?;
        let addr = |k: &str| m.get(k)?.clone().try_cast::<Address>();
        let (start, end) = (addr("start")?, addr("end")?);
        let field = |k: &str| m.get(k).map(|v| v.to_string()).unwrap_or_default();
        lines.push(format!(
            "{:x}-{:x} {} {:08x} {} {:<8} {}",
            start.0,
            end.0,
            field("perms"),
            m.get("offset")?.as_int().ok()?,
            field("dev"),
            field("inode"),
            escape_controls(&field("path")),
        ));
    }
    Some(lines.join("\n"))
}

/// `xxd`-style lines: offset, 16 bytes in hex, printable ASCII.
fn hex_dump(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "(empty blob)".into();
    }
    bytes
        .chunks(16)
        .enumerate()
        .map(|(i, chunk)| {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            let text: String = chunk
                .iter()
                .map(|&b| {
                    if b.is_ascii_graphic() || b == b' ' {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            format!("{:08x}: {:<47}  {text}", i * 16, hex.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_print_in_decimal_and_unit_prints_nothing() {
        assert_eq!(render(&Dynamic::from(-5_i64), false).as_deref(), Some("-5"));
        assert_eq!(render(&Dynamic::UNIT, false), None);
        assert_eq!(render(&Dynamic::from("x"), true).as_deref(), Some("\"x\""));
    }

    #[test]
    fn blobs_print_as_hex_dump() {
        let text = to_text(&Dynamic::from_blob(b"hi\0".to_vec()));
        assert_eq!(text, format!("00000000: {:<47}  hi.", "68 69 00"));
    }
}
