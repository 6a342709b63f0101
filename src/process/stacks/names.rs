//! Naming a code address: the function and offset from the symbol tables
//! (the object's, then its debug file's), the object's file name, and the
//! source file and line from DWARF (`.debug_info` and `.debug_line` of the
//! object or its debug file, through addr2line) where there is some.

use super::super::symbols::{CodeObject, Object, inflate};
use super::Frame;
use gimli::{EndianRcSlice, LittleEndian, Reader as _};
use std::collections::HashMap;
use std::rc::Rc;

pub struct Namer<'a> {
    objects: &'a [CodeObject],
    /// Each object's DWARF, read on first use (`None`: it has none).
    lines: HashMap<usize, Option<Lines>>,
}

/// The sections finding a line needs: not location lists, macros or
/// frames, which are most of a debug file and would be decompressed for
/// nothing.
const LINE_SECTIONS: &[gimli::SectionId] = {
    use gimli::SectionId::*;
    &[
        DebugAbbrev,
        DebugAddr,
        DebugAranges,
        DebugInfo,
        DebugLine,
        DebugLineStr,
        DebugRanges,
        DebugRngLists,
        DebugStr,
        DebugStrOffsets,
    ]
};

type R = EndianRcSlice<LittleEndian>;

/// Finding the source line of an address in one object's DWARF: through
/// `.debug_aranges` straight to the one unit that holds it, whose line
/// program alone is run (a debug file holds thousands of units; parsing
/// them all, as addr2line's `Context` does, is most of the cost). Objects
/// without `.debug_aranges` (Go's) go through addr2line.
enum Lines {
    Aranges {
        dwarf: Box<gimli::Dwarf<R>>,
        /// Address ranges and the unit each belongs to, by start.
        ranges: Vec<(u64, u64, gimli::DebugInfoOffset<usize>)>,
        units: HashMap<usize, Option<gimli::Unit<R>>>,
    },
    Context(addr2line::Context<R>),
}

/// `object`'s DWARF for finding lines, if it has `.debug_info`
/// (compressed or not, as distributions ship debug files).
fn lines(object: &Object) -> Option<Lines> {
    object.section(".debug_info")?.1?;
    // Inflated here, one after another: helper threads would compete
    // with the target's own running threads for the CPU.
    let inflated: Vec<(gimli::SectionId, Option<Vec<u8>>)> = LINE_SECTIONS
        .iter()
        .map(|&id| {
            let data = match object.section_raw(id.name()) {
                Some((bytes, true)) => inflate(bytes),
                Some((bytes, false)) => Some(bytes.to_vec()),
                None => None,
            };
            (id, data)
        })
        .collect();
    let load = |id: gimli::SectionId| -> Result<R, gimli::Error> {
        let bytes: Rc<[u8]> = inflated
            .iter()
            .find(|(i, _)| *i == id)
            .and_then(|(_, data)| data.as_deref())
            .map_or_else(|| Rc::from(&[][..]), Rc::from);
        Ok(EndianRcSlice::new(bytes, LittleEndian))
    };
    let dwarf = gimli::Dwarf::load(load).ok()?;
    let mut ranges = Vec::new();
    let mut headers = dwarf.debug_aranges.headers();
    while let Ok(Some(header)) = headers.next() {
        let unit = header.debug_info_offset();
        let mut entries = header.entries();
        while let Ok(Some(entry)) = entries.next() {
            let range = entry.range();
            if range.end > range.begin {
                ranges.push((range.begin, range.end, unit));
            }
        }
    }
    if ranges.is_empty() {
        return addr2line::Context::from_dwarf(dwarf)
            .ok()
            .map(Lines::Context);
    }
    ranges.sort_unstable_by_key(|r| r.0);
    Some(Lines::Aranges {
        dwarf: Box::new(dwarf),
        ranges,
        units: HashMap::new(),
    })
}

impl Lines {
    /// The source file and line of `svma`.
    fn find(&mut self, svma: u64) -> Option<(Option<String>, Option<u32>)> {
        let (dwarf, ranges, units) = match self {
            Lines::Context(context) => {
                let location = context.find_location(svma).ok()??;
                return Some((location.file.map(str::to_string), location.line));
            }
            Lines::Aranges {
                dwarf,
                ranges,
                units,
            } => (dwarf, ranges, units),
        };
        let i = ranges.partition_point(|r| r.0 <= svma).checked_sub(1)?;
        let (_, end, offset) = ranges[i];
        if svma >= end {
            return None;
        }
        let unit = units
            .entry(offset.0)
            .or_insert_with(|| {
                let header = dwarf.debug_info.header_from_offset(offset).ok()?;
                dwarf.unit(header).ok()
            })
            .as_ref()?;
        let program = unit.line_program.clone()?;
        let mut rows = program.rows();
        // The row that covers svma: the last at or before it in its
        // sequence, before the next row starts.
        let mut previous: Option<(u64, u64, Option<u32>)> = None;
        let mut found = None;
        while let Ok(Some((_, row))) = rows.next_row() {
            if let Some((at, file, line)) = previous
                && at <= svma
                && svma < row.address()
            {
                found = Some((file, line));
                break;
            }
            previous = if row.end_sequence() {
                None
            } else {
                Some((
                    row.address(),
                    row.file_index(),
                    row.line().map(|l| l.get() as u32),
                ))
            };
        }
        let (file, line) = found?;
        let header = rows.header();
        let name = header.file(file).and_then(|entry| {
            let mut path = String::new();
            if let Some(dir) = entry.directory(header)
                && let Ok(dir) = dwarf.attr_string(unit, dir)
            {
                path.push_str(&dir.to_string_lossy().ok()?);
            }
            let name = dwarf.attr_string(unit, entry.path_name()).ok()?;
            let name = name.to_string_lossy().ok()?;
            if name.starts_with('/') || path.is_empty() {
                return Some(name.into_owned());
            }
            if !path.starts_with('/')
                && let Some(comp) = &unit.comp_dir
                && let Ok(comp) = comp.to_string_lossy()
            {
                path = format!("{comp}/{path}");
            }
            Some(format!("{}/{name}", path.trim_end_matches('/')))
        });
        Some((name, line))
    }
}

impl<'a> Namer<'a> {
    pub fn new(objects: &'a [CodeObject]) -> Namer<'a> {
        Namer {
            objects,
            lines: HashMap::new(),
        }
    }

    /// The frame at `address`; `is_return`: it is a return address, so
    /// the call that returns there (the byte before) is what is named.
    pub fn name(&mut self, address: u64, is_return: bool) -> Frame {
        let lookup = if is_return {
            address.saturating_sub(1)
        } else {
            address
        };
        let mut frame = Frame {
            address,
            function: None,
            offset: 0,
            object: None,
            file: None,
            line: None,
        };
        let objects = self.objects;
        let Some(i) = objects
            .iter()
            .position(|o| o.code.iter().any(|r| r.contains(&lookup)))
        else {
            return frame;
        };
        let o = &objects[i];
        frame.object = Some(o.file_name().to_string());
        let svma = lookup.wrapping_sub(o.bias);
        let function = o
            .object
            .function_at(svma)
            .or_else(|| o.debug()?.function_at(svma));
        if let Some(f) = function {
            frame.function = Some(demangle(&f.name));
            frame.offset = address.wrapping_sub(o.bias).wrapping_sub(f.start);
        }
        let lines = self.lines.entry(i).or_insert_with(|| {
            o.debug()
                .and_then(|d| lines(d))
                .or_else(|| lines(&o.object))
        });
        if let Some((file, line)) = lines.as_mut().and_then(|l| l.find(svma)) {
            frame.file = file;
            frame.line = line;
        }
        frame
    }
}

/// A C++ or Rust symbol as people read it; C names as they are.
fn demangle(name: &str) -> String {
    addr2line::demangle_auto(name.into(), None).into_owned()
}
