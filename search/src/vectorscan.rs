//! A minimal binding to Vectorscan (the Hyperscan fork, `libhs`), used to
//! compare this crate against it on the same pattern sets and chunkings.
//! Only built with the `vectorscan` feature; the only unsafe code of the
//! crate lives here.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void, CStr, CString};
use std::ptr;

use crate::{Pattern, PatternKind};

#[repr(C)]
struct HsDatabase {
    _opaque: [u8; 0],
}
#[repr(C)]
struct HsScratch {
    _opaque: [u8; 0],
}
#[repr(C)]
struct HsStream {
    _opaque: [u8; 0],
}
#[repr(C)]
struct HsCompileError {
    message: *const c_char,
    expression: c_int,
}

type MatchHandler = unsafe extern "C" fn(
    id: c_uint,
    from: c_ulonglong,
    to: c_ulonglong,
    flags: c_uint,
    ctx: *mut c_void,
) -> c_int;

extern "C" {
    fn hs_compile_multi(
        expressions: *const *const c_char,
        flags: *const c_uint,
        ids: *const c_uint,
        elements: c_uint,
        mode: c_uint,
        platform: *const c_void,
        db: *mut *mut HsDatabase,
        error: *mut *mut HsCompileError,
    ) -> c_int;
    fn hs_free_compile_error(error: *mut HsCompileError) -> c_int;
    fn hs_free_database(db: *mut HsDatabase) -> c_int;
    fn hs_alloc_scratch(db: *const HsDatabase, scratch: *mut *mut HsScratch) -> c_int;
    fn hs_free_scratch(scratch: *mut HsScratch) -> c_int;
    fn hs_scan(
        db: *const HsDatabase,
        data: *const c_char,
        length: c_uint,
        flags: c_uint,
        scratch: *mut HsScratch,
        on_event: Option<MatchHandler>,
        ctx: *mut c_void,
    ) -> c_int;
    fn hs_open_stream(db: *const HsDatabase, flags: c_uint, stream: *mut *mut HsStream) -> c_int;
    fn hs_scan_stream(
        stream: *mut HsStream,
        data: *const c_char,
        length: c_uint,
        flags: c_uint,
        scratch: *mut HsScratch,
        on_event: Option<MatchHandler>,
        ctx: *mut c_void,
    ) -> c_int;
    fn hs_close_stream(
        stream: *mut HsStream,
        scratch: *mut HsScratch,
        on_event: Option<MatchHandler>,
        ctx: *mut c_void,
    ) -> c_int;
}

const HS_SUCCESS: c_int = 0;
const HS_FLAG_CASELESS: c_uint = 1;
const HS_MODE_BLOCK: c_uint = 1;
const HS_MODE_STREAM: c_uint = 2;

/// Callback state: the caller's closure, reached through `ctx`.
type Sink<'a> = &'a mut dyn FnMut(usize, u64);

unsafe extern "C" fn on_event(
    id: c_uint,
    _from: c_ulonglong,
    to: c_ulonglong,
    _flags: c_uint,
    ctx: *mut c_void,
) -> c_int {
    // SAFETY: `ctx` is the `&mut Sink` passed by `scan_block`/`scan_stream`
    // for the duration of the call that invokes this handler.
    let sink = unsafe { &mut *ctx.cast::<Sink<'_>>() };
    sink(id as usize, to);
    0
}

/// A compiled Vectorscan database with its scratch space.
#[derive(Debug)]
pub struct Database {
    db: *mut HsDatabase,
    scratch: *mut HsScratch,
    streaming: bool,
}

impl Database {
    /// Compile `patterns` (same syntax rules as [`Searcher`](crate::Searcher):
    /// literals and wildcards are translated to regex) in block or stream mode.
    pub fn compile(patterns: &[Pattern], icase: bool, streaming: bool) -> Result<Database, String> {
        let mut sources = Vec::with_capacity(patterns.len());
        for (i, p) in patterns.iter().enumerate() {
            let src = match p.kind {
                PatternKind::Regex => {
                    String::from_utf8(p.bytes.clone()).map_err(|e| e.to_string())?
                }
                _ => crate::algo::dfa::to_regex(i, p).map_err(|e| e.to_string())?,
            };
            sources.push(CString::new(src).map_err(|e| e.to_string())?);
        }
        let ptrs: Vec<*const c_char> = sources.iter().map(|s| s.as_ptr()).collect();
        let flags = vec![if icase { HS_FLAG_CASELESS } else { 0 }; ptrs.len()];
        let ids: Vec<c_uint> = (0..ptrs.len() as c_uint).collect();
        let mode = if streaming {
            HS_MODE_STREAM
        } else {
            HS_MODE_BLOCK
        };
        let mut db = ptr::null_mut();
        let mut err = ptr::null_mut();
        // SAFETY: the arrays have `ptrs.len()` elements and outlive the call;
        // the out-pointers are valid.
        let rc = unsafe {
            hs_compile_multi(
                ptrs.as_ptr(),
                flags.as_ptr(),
                ids.as_ptr(),
                ptrs.len() as c_uint,
                mode,
                ptr::null(),
                &mut db,
                &mut err,
            )
        };
        if rc != HS_SUCCESS {
            let msg = if err.is_null() {
                format!("hs_compile_multi failed ({rc})")
            } else {
                // SAFETY: on failure `err` points to a valid compile error
                // whose message is a NUL-terminated string; freed once.
                unsafe {
                    let m = CStr::from_ptr((*err).message)
                        .to_string_lossy()
                        .into_owned();
                    hs_free_compile_error(err);
                    m
                }
            };
            return Err(msg);
        }
        let mut scratch = ptr::null_mut();
        // SAFETY: `db` is a valid database from hs_compile_multi.
        let rc = unsafe { hs_alloc_scratch(db, &mut scratch) };
        if rc != HS_SUCCESS {
            // SAFETY: `db` is valid and not used afterwards.
            unsafe { hs_free_database(db) };
            return Err(format!("hs_alloc_scratch failed ({rc})"));
        }
        Ok(Database {
            db,
            scratch,
            streaming,
        })
    }

    /// Block mode: scan one contiguous buffer.
    pub fn scan_block(
        &mut self,
        data: &[u8],
        mut on_match: impl FnMut(usize, u64),
    ) -> Result<(), String> {
        if self.streaming {
            return Err("database compiled for streaming".into());
        }
        let len = c_uint::try_from(data.len()).map_err(|e| e.to_string())?;
        let mut sink: Sink<'_> = &mut on_match;
        // SAFETY: db/scratch are valid; `data` is readable for `len` bytes;
        // `sink` outlives the call.
        let rc = unsafe {
            hs_scan(
                self.db,
                data.as_ptr().cast(),
                len,
                0,
                self.scratch,
                Some(on_event),
                (&mut sink as *mut Sink<'_>).cast(),
            )
        };
        if rc == HS_SUCCESS {
            Ok(())
        } else {
            Err(format!("hs_scan failed ({rc})"))
        }
    }

    /// Stream mode: open a stream, scan every chunk, close it.
    pub fn scan_stream<'a>(
        &mut self,
        chunks: impl IntoIterator<Item = &'a [u8]>,
        mut on_match: impl FnMut(usize, u64),
    ) -> Result<(), String> {
        if !self.streaming {
            return Err("database compiled for block mode".into());
        }
        let mut stream = ptr::null_mut();
        // SAFETY: `db` is a valid streaming database.
        let rc = unsafe { hs_open_stream(self.db, 0, &mut stream) };
        if rc != HS_SUCCESS {
            return Err(format!("hs_open_stream failed ({rc})"));
        }
        let mut sink: Sink<'_> = &mut on_match;
        let ctx: *mut c_void = (&mut sink as *mut Sink<'_>).cast();
        let mut result = Ok(());
        for chunk in chunks {
            let Ok(len) = c_uint::try_from(chunk.len()) else {
                result = Err("chunk too long".to_string());
                break;
            };
            // SAFETY: stream/scratch valid; chunk readable; ctx outlives it.
            let rc = unsafe {
                hs_scan_stream(
                    stream,
                    chunk.as_ptr().cast(),
                    len,
                    0,
                    self.scratch,
                    Some(on_event),
                    ctx,
                )
            };
            if rc != HS_SUCCESS {
                result = Err(format!("hs_scan_stream failed ({rc})"));
                break;
            }
        }
        // SAFETY: `stream` is open and closed exactly once here.
        let rc = unsafe { hs_close_stream(stream, self.scratch, Some(on_event), ctx) };
        if rc != HS_SUCCESS && result.is_ok() {
            result = Err(format!("hs_close_stream failed ({rc})"));
        }
        result
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // SAFETY: both were allocated by Vectorscan and are freed once.
        unsafe {
            hs_free_scratch(self.scratch);
            hs_free_database(self.db);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_and_stream_agree() {
        let pats = [Pattern::literal("abc"), Pattern::regex("x[0-9]+y")];
        let mut block = Database::compile(&pats, false, false).unwrap();
        let mut stream = Database::compile(&pats, false, true).unwrap();
        let data = b"abc x12y abc";
        let mut a = Vec::new();
        block.scan_block(data, |id, end| a.push((id, end))).unwrap();
        let mut b = Vec::new();
        stream
            .scan_stream(data.chunks(1), |id, end| b.push((id, end)))
            .unwrap();
        assert_eq!(a, vec![(0, 3), (1, 8), (0, 12)]);
        assert_eq!(a, b);
    }
}
