//! Unwinding a copied stack with the target's own unwind information:
//! `.eh_frame` (through `.eh_frame_hdr`) or a debug file's
//! `.debug_frame`, by framehop, which falls back to frame pointers where
//! an object has none. Code no mapped object describes (JIT, generated
//! code, the vDSO) ends the walk: whatever frame pointers say there is not
//! to be trusted.

use super::super::engine::Snapshot;
use super::super::symbols::{CodeObject, Object};
use super::End;
use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, Module, Unwinder as _};
use std::ops::Range;
use std::rc::Rc;

/// The most frames one walk gives.
const MAX_FRAMES: usize = 256;

/// A section's bytes, borrowed from its object.
pub struct Section {
    object: Rc<Object>,
    bytes: Range<usize>,
}

impl std::ops::Deref for Section {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.object.bytes()[self.bytes.clone()]
    }
}

/// `object`'s section `name`: its address range and bytes.
fn section(object: &Rc<Object>, name: &str) -> Option<(Range<u64>, Option<Section>)> {
    let (svma, bytes) = object.section(name)?;
    let bytes = bytes.map(|bytes| Section {
        object: object.clone(),
        bytes,
    });
    Some((svma, bytes))
}

pub struct Unwinder {
    inner: UnwinderX86_64<Section>,
    /// framehop's cache of unwind rules by address, shared by the walks of
    /// one call (threads in the same functions share their rules).
    cache: std::cell::RefCell<CacheX86_64>,
    /// The code every module covers.
    code: Vec<Range<u64>>,
}

/// The addresses of one walk, innermost first, and how it ended.
pub struct Walk {
    pub addresses: Vec<u64>,
    pub end: End,
    /// It ended where the frame pointer it did not have was needed: a
    /// walk from the thread's real registers would go further.
    pub needs_bp: bool,
}

impl Unwinder {
    pub fn new(objects: &[CodeObject]) -> Unwinder {
        let mut inner = UnwinderX86_64::new();
        let mut code = Vec::new();
        for o in objects {
            let (Some(start), Some(end)) = (
                o.code.iter().map(|r| r.start).min(),
                o.code.iter().map(|r| r.end).max(),
            ) else {
                continue;
            };
            code.extend(o.code.iter().cloned());
            let text = section(&o.object, ".text");
            let eh_frame = section(&o.object, ".eh_frame");
            let eh_frame_hdr = section(&o.object, ".eh_frame_hdr");
            // .debug_frame: the object's own, else — only where it has no
            // .eh_frame — its debug file's.
            let debug_frame = section(&o.object, ".debug_frame")
                .and_then(|(_, s)| s)
                .or_else(|| match eh_frame {
                    Some(_) => None,
                    None => section(o.debug()?, ".debug_frame")?.1,
                });
            let got = section(&o.object, ".got");
            let info = ExplicitModuleSectionInfo {
                base_svma: 0,
                text_svma: text.as_ref().map(|t| t.0.clone()),
                text: text.and_then(|t| t.1),
                eh_frame_svma: eh_frame.as_ref().map(|s| s.0.clone()),
                eh_frame: eh_frame.and_then(|s| s.1),
                eh_frame_hdr_svma: eh_frame_hdr.as_ref().map(|s| s.0.clone()),
                eh_frame_hdr: eh_frame_hdr.and_then(|s| s.1),
                debug_frame,
                got_svma: got.map(|g| g.0),
                stubs_svma: None,
                stub_helper_svma: None,
                unwind_info: None,
                text_segment_svma: None,
                text_segment: None,
            };
            inner.add_module(Module::new(o.path.clone(), start..end, o.bias, info));
        }
        Unwinder {
            inner,
            cache: std::cell::RefCell::new(CacheX86_64::new()),
            code,
        }
    }

    fn knows(&self, address: u64) -> bool {
        self.code.iter().any(|r| r.contains(&address))
    }

    /// Walk the stack `snapshot` copied: from the copy, and from the live
    /// process for what lies beyond it (callers' frames, which do not
    /// move while the thread runs in the frames inside them).
    pub fn walk(&self, pid: i32, snapshot: &Snapshot) -> Walk {
        let mut cache = self.cache.borrow_mut();
        let mut read = |addr: u64| -> Result<u64, ()> {
            if let Some(word) = snapshot.word(addr) {
                return Ok(word);
            }
            let mut buf = [0u8; 8];
            crate::sys::memory::read(pid, addr, &mut buf).map_err(|_| ())?;
            Ok(u64::from_le_bytes(buf))
        };
        // Without the frame pointer (a copy taken with no stop), a value no
        // frame can have: a walk that needs it reads near 0, fails, and
        // the caller stops the thread. (Not 0 itself: a zero frame pointer
        // marks the outermost frame.)
        const UNKNOWN_BP: u64 = 0x10;
        let regs =
            UnwindRegsX86_64::new(snapshot.ip, snapshot.sp, snapshot.bp.unwrap_or(UNKNOWN_BP));
        let mut frames = self
            .inner
            .iter_frames(snapshot.ip, regs, &mut cache, &mut read);
        let mut addresses = Vec::new();
        let mut needs_bp = false;
        let end = loop {
            match frames.next() {
                Ok(Some(frame)) => {
                    let address = frame.address();
                    addresses.push(address);
                    if !self.knows(frame.address_for_lookup()) {
                        break End::UnknownCode(address);
                    }
                    if addresses.len() >= MAX_FRAMES {
                        break End::Truncated(format!("more than {MAX_FRAMES} frames"));
                    }
                }
                Ok(None) | Err(framehop::Error::ReturnAddressIsNull) => break End::Complete,
                Err(e) => {
                    needs_bp = snapshot.bp.is_none()
                        && matches!(
                            e,
                            framehop::Error::CouldNotReadStack(at) if at < 4096
                        ) | matches!(e, framehop::Error::FramepointerUnwindingMovedBackwards);
                    break End::Truncated(e.to_string());
                }
            }
        };
        Walk {
            addresses,
            end,
            needs_bp,
        }
    }
}
