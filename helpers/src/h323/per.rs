//! A reader of ITU-T X.691 PER, ALIGNED variant, over a chain of segments, and a skipper
//! driven by type descriptions ([`Ty`]) of the ASN.1 that H.225.0 and H.245 messages use.
//!
//! The reader holds a bit position and an end; every read checks both and returns a
//! [`PerError`] past the end or on a value the encoding cannot hold, so a message of any
//! shape, cut anywhere, gives a typed error and never a panic. Open types, extension
//! additions and octet strings holding an embedded encoding are read by *sub-readers* over
//! the same segments with a nearer end: nothing is copied and every bit is visited at most
//! once, so the cost is linear in the message length. Nesting is bounded ([`MAX_DEPTH`]).
//!
//! What X.691 says and this reader does (clause numbers of X.691 (02/2021)):
//!
//! - a *constrained whole number* (11.5.7) of range `r`: nothing if `r` = 1, a bit-field of
//!   the minimum width if `r` ≤ 255, one aligned octet if `r` = 256, two aligned octets up
//!   to 64K, else a length (1 to the octets `r - 1` needs, itself a constrained whole
//!   number) and that many aligned octets;
//! - a *normally small non-negative whole number* (11.6): a bit 0 and six bits, or a bit 1
//!   and a semi-constrained number;
//! - a *length determinant* (11.9): a constrained whole number when the upper bound is under
//!   64K, else one aligned octet (`0xxxxxxx`), two (`10xxxxxx xxxxxxxx`) or a fragment count
//!   (`11000mmm`, `m` × 16K items followed by another length);
//! - SEQUENCE (19): an extension bit if extensible, a bit per OPTIONAL root component, the
//!   root components, then (extension bit set) a normally small count of addition bits, the
//!   bits, and each present addition as an open type;
//! - CHOICE (23): an extension bit if extensible, then the root index as a constrained whole
//!   number, or (bit set) a normally small index and the value as an open type;
//! - an open type (11.2): an unconstrained length in octets and the octets;
//! - OCTET STRING (17), BIT STRING (16) and the known-multiplier character strings (30.5;
//!   `b` bits a character: 8 for IA5String and PrintableString, 16 for BMPString, 4 for
//!   NumericString and a FROM of up to 16 characters): no length and no alignment for a fixed
//!   size of at most 16 bits, no length but alignment for a larger fixed size, else a length
//!   and an aligned field. An empty field after a length is aligned too (pycrate and
//!   Wireshark read it so; H.323 never sends one where it matters);
//! - INTEGER (13): a constrained whole number when both bounds are known, else (or with the
//!   extension bit set) an unconstrained length and the octets;
//! - OBJECT IDENTIFIER (24): an unconstrained length and the octets.

use std::fmt;

/// Deepest nesting of types (and embedded messages) the skipper follows. The deepest path
/// in H.225.0 to H.245 is about 25; a message nested deeper is refused, not a stack overflow.
pub const MAX_DEPTH: u32 = 64;

/// What was wrong with a message, and where (bit offset from the start of the message the
/// reader was made for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerError {
    /// The kind of fault.
    pub kind: PerErrorKind,
    /// Bit offset where it was found.
    pub at: usize,
}

/// The kinds of [`PerError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PerErrorKind {
    /// The message (or the open type or octet string holding the value) ended inside it.
    Truncated,
    /// A value the type does not allow: a root choice index or enumeration past the root, a
    /// length outside its bounds, an integer too wide.
    Invalid(&'static str),
    /// A fragmented length (16K items or more) where a value had to be read, not skipped.
    Fragmented,
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl fmt::Display for PerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            PerErrorKind::Truncated => write!(f, "truncated at bit {}", self.at),
            PerErrorKind::Invalid(what) => write!(f, "{what} at bit {}", self.at),
            PerErrorKind::Fragmented => write!(f, "fragmented length at bit {}", self.at),
            PerErrorKind::TooDeep => write!(f, "nested too deep at bit {}", self.at),
        }
    }
}

impl std::error::Error for PerError {}

/// Results of the reader.
pub type PerResult<T> = Result<T, PerError>;

/// A length determinant as read: `n` items, and whether more lengths follow (a fragment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Length {
    /// Items (octets, bits, characters or components) in this part.
    pub n: usize,
    /// A fragment: another length determinant follows these items.
    pub more: bool,
}

/// A bit reader over a chain of segments, between a start and an end bit.
#[derive(Clone, Debug)]
pub struct PerReader<'a> {
    parts: &'a [&'a [u8]],
    /// Next bit to read, from the start of the chain.
    pos: usize,
    /// First bit past the readable ones.
    end: usize,
    /// Where `pos` is relative to for error reports (the message's first bit).
    origin: usize,
    /// Cached segment: index and its first byte's position in the chain.
    seg: usize,
    seg_start: usize,
    /// Nesting depth of the value being read.
    depth: u32,
}

impl<'a> PerReader<'a> {
    /// A reader of the whole chain.
    pub fn new(parts: &'a [&'a [u8]]) -> PerReader<'a> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        PerReader::window(parts, 0, len)
    }

    /// A reader of bytes `start..end` of the chain (an embedded message). Positions stay
    /// relative to the chain, errors relative to `start`.
    pub fn window(parts: &'a [&'a [u8]], start: usize, end: usize) -> PerReader<'a> {
        PerReader {
            parts,
            pos: start * 8,
            end: end.max(start) * 8,
            origin: start * 8,
            seg: 0,
            seg_start: 0,
            depth: 0,
        }
    }

    fn err(&self, kind: PerErrorKind) -> PerError {
        PerError {
            kind,
            at: self.pos.saturating_sub(self.origin),
        }
    }

    fn truncated(&self) -> PerError {
        self.err(PerErrorKind::Truncated)
    }

    /// An error of kind `Invalid(what)` at the current position.
    pub fn invalid(&self, what: &'static str) -> PerError {
        self.err(PerErrorKind::Invalid(what))
    }

    /// Bits left before the end.
    pub fn remaining(&self) -> usize {
        self.end - self.pos
    }

    /// The current position in bytes from the start of the chain (rounded down).
    pub fn byte_pos(&self) -> usize {
        self.pos / 8
    }

    /// The byte at chain position `i` (which the caller checked is before `end`).
    fn byte_at(&mut self, i: usize) -> u8 {
        if i < self.seg_start {
            self.seg = 0;
            self.seg_start = 0;
        }
        while let Some(p) = self.parts.get(self.seg) {
            if i < self.seg_start + p.len() {
                return p[i - self.seg_start];
            }
            self.seg_start += p.len();
            self.seg += 1;
        }
        // Unreachable for a position before `end`, which never passes the chain's length;
        // a zero keeps the reader total.
        0
    }

    /// Reads `n` (at most 32) bits as a big-endian number.
    pub fn bits(&mut self, n: u32) -> PerResult<u32> {
        debug_assert!(n <= 32);
        let n = n.min(32) as usize;
        if self.remaining() < n {
            return Err(self.truncated());
        }
        let mut v: u64 = 0;
        let mut left = n;
        while left > 0 {
            let byte = self.byte_at(self.pos / 8);
            let off = self.pos % 8;
            let take = (8 - off).min(left);
            let chunk = (byte >> (8 - off - take)) & ((1u16 << take) - 1) as u8;
            v = (v << take) | u64::from(chunk);
            self.pos += take;
            left -= take;
        }
        Ok(v as u32)
    }

    /// Reads one bit.
    pub fn bit(&mut self) -> PerResult<bool> {
        Ok(self.bits(1)? == 1)
    }

    /// Moves to the next octet boundary.
    pub fn align(&mut self) -> PerResult<()> {
        let to = self.pos.div_ceil(8) * 8;
        if to > self.end {
            return Err(self.truncated());
        }
        self.pos = to;
        Ok(())
    }

    /// Skips `n` bits.
    pub fn skip_bits(&mut self, n: usize) -> PerResult<()> {
        if self.remaining() < n {
            self.pos = self.end;
            return Err(self.truncated());
        }
        self.pos += n;
        Ok(())
    }

    /// Aligns, then returns the byte position of `n` octets and skips them.
    pub fn octets(&mut self, n: usize) -> PerResult<usize> {
        self.align()?;
        let at = self.pos / 8;
        self.skip_bits(n.checked_mul(8).ok_or_else(|| self.truncated())?)?;
        Ok(at)
    }

    /// Copies `out.len()` aligned octets.
    pub fn read_octets(&mut self, out: &mut [u8]) -> PerResult<usize> {
        let at = self.octets(out.len())?;
        for (k, b) in out.iter_mut().enumerate() {
            *b = self.byte_at(at + k);
        }
        Ok(at)
    }

    /// A constrained whole number of range `range` (≥ 1): its offset from the lower bound.
    pub fn constrained(&mut self, range: u64) -> PerResult<u64> {
        match range {
            0 | 1 => Ok(0),
            2..=255 => {
                let width = 64 - (range - 1).leading_zeros();
                let v = u64::from(self.bits(width)?);
                if v >= range {
                    return Err(self.invalid("number past its range"));
                }
                Ok(v)
            }
            256 => {
                self.align()?;
                Ok(u64::from(self.bits(8)?))
            }
            257..=65536 => {
                self.align()?;
                let v = u64::from(self.bits(16)?);
                if v >= range {
                    return Err(self.invalid("number past its range"));
                }
                Ok(v)
            }
            _ => {
                // The octets that range - 1 needs bound the length, read as a constrained
                // whole number 1..=that.
                let need = (64 - (range - 1).leading_zeros()).div_ceil(8) as u64;
                let len = self.constrained(need)? as usize + 1;
                let v = self.uint(len)?;
                if v >= range {
                    return Err(self.invalid("number past its range"));
                }
                Ok(v)
            }
        }
    }

    /// `len` (at most 8) aligned octets as an unsigned big-endian number.
    fn uint(&mut self, len: usize) -> PerResult<u64> {
        if len > 8 {
            return Err(self.invalid("integer wider than 64 bits"));
        }
        let at = self.octets(len)?;
        let mut v = 0u64;
        for k in 0..len {
            v = (v << 8) | u64::from(self.byte_at(at + k));
        }
        Ok(v)
    }

    /// A normally small non-negative whole number.
    pub fn normally_small(&mut self) -> PerResult<u64> {
        if !self.bit()? {
            return Ok(u64::from(self.bits(6)?));
        }
        let len = self.length(0, None)?;
        if len.more {
            return Err(self.err(PerErrorKind::Fragmented));
        }
        self.uint(len.n)
    }

    /// A length determinant with bounds `lb..=ub` (`None`: no upper bound). A constrained
    /// length outside its bounds is invalid.
    pub fn length(&mut self, lb: u32, ub: Option<u32>) -> PerResult<Length> {
        if let Some(ub) = ub.filter(|&ub| ub < 65536) {
            if ub < lb {
                return Err(self.invalid("empty size range"));
            }
            let v = self.constrained(u64::from(ub - lb) + 1)?;
            return Ok(Length {
                n: (u64::from(lb) + v) as usize,
                more: false,
            });
        }
        self.align()?;
        let b = self.bits(8)?;
        let l = if b & 0x80 == 0 {
            Length {
                n: b as usize,
                more: false,
            }
        } else if b & 0xc0 == 0x80 {
            let lo = self.bits(8)?;
            Length {
                n: (((b & 0x3f) << 8) | lo) as usize,
                more: false,
            }
        } else {
            let m = b & 0x3f;
            if m == 0 || m > 4 {
                return Err(self.invalid("fragment count not 1 to 4"));
            }
            Length {
                n: m as usize * 16384,
                more: true,
            }
        };
        if !l.more && (l.n < lb as usize || ub.is_some_and(|ub| l.n > ub as usize)) {
            return Err(self.invalid("length outside its size constraint"));
        }
        Ok(l)
    }

    /// An unfragmented unconstrained length of octets; fragments are refused.
    pub fn whole_length(&mut self) -> PerResult<usize> {
        let l = self.length(0, None)?;
        if l.more {
            return Err(self.err(PerErrorKind::Fragmented));
        }
        Ok(l.n)
    }

    /// An open type: its octets as a sub-reader (for the caller to read or not), and this
    /// reader moved past them.
    pub fn open(&mut self) -> PerResult<PerReader<'a>> {
        let n = self.whole_length()?;
        let at = self.octets(n)?;
        Ok(self.sub(at, n))
    }

    /// A reader of the `n` bytes at chain position `at` (inside this one), one level deeper.
    pub fn sub(&self, at: usize, n: usize) -> PerReader<'a> {
        PerReader {
            parts: self.parts,
            pos: at * 8,
            end: (at + n) * 8,
            origin: at * 8,
            seg: self.seg,
            seg_start: self.seg_start,
            depth: self.depth + 1,
        }
    }

    /// Fails with `TooDeep` when this reader, `depth` levels further down, would be nested
    /// past [`MAX_DEPTH`]. Walkers call it where they enter an embedded message.
    pub fn check_depth(&self, depth: u32) -> PerResult<()> {
        if self.depth + depth > MAX_DEPTH {
            return Err(self.err(PerErrorKind::TooDeep));
        }
        Ok(())
    }

    /// Skips an open type, fragments and all.
    pub fn skip_open(&mut self) -> PerResult<()> {
        self.skip_counted(0, None, 8, true)
    }

    /// Skips a length-counted field of `unit` bits an item (aligned), with fragments.
    fn skip_counted(
        &mut self,
        lb: u32,
        ub: Option<u32>,
        unit: usize,
        aligned: bool,
    ) -> PerResult<()> {
        loop {
            let l = self.length(lb, ub)?;
            if aligned {
                self.align()?;
            }
            let bits = l.n.checked_mul(unit).ok_or_else(|| self.truncated())?;
            self.skip_bits(bits)?;
            if !l.more {
                return Ok(());
            }
        }
    }

    /// Reads the preamble of a SEQUENCE: its extension bit (if extensible) and `optional`
    /// presence bits (at most 64), first component in the highest bit of the mask returned
    /// as `(extended, mask)` with bit `optional - 1 - i` for component `i`.
    pub fn preamble(&mut self, extensible: bool, optional: u32) -> PerResult<(bool, u64)> {
        let ext = extensible && self.bit()?;
        let mut mask = 0u64;
        for _ in 0..optional.min(64) {
            mask = (mask << 1) | u64::from(self.bit()?);
        }
        Ok((ext, mask))
    }

    /// The number of extension addition bits (a normally small length, n - 1 encoded), no
    /// more than the bits left (a count of 2^64 - 1 must not overflow).
    fn addition_count(&mut self) -> PerResult<usize> {
        let n = self.normally_small()?;
        if n >= self.remaining() as u64 {
            return Err(self.truncated());
        }
        Ok(n as usize + 1)
    }

    /// Reads the extension additions of a SEQUENCE whose extension bit was set, calling
    /// `each(index, reader)` for each present addition with a reader of its open type.
    pub fn additions(
        &mut self,
        mut each: impl FnMut(usize, &mut PerReader<'a>) -> PerResult<()>,
    ) -> PerResult<()> {
        let n = self.addition_count()?;
        // The presence bits come first, then the open types in the same order: a second
        // cursor reads the bits while this one reads the open types.
        let mut bitmap = self.clone();
        self.skip_bits(n)?;
        for i in 0..n {
            if bitmap.bit()? {
                let mut sub = self.open()?;
                each(i, &mut sub)?;
            }
        }
        Ok(())
    }

    /// Skips the extension additions of a SEQUENCE whose extension bit was set.
    pub fn skip_additions(&mut self) -> PerResult<()> {
        let n = self.addition_count()?;
        let mut present = 0usize;
        for _ in 0..n {
            present += usize::from(self.bit()?);
        }
        for _ in 0..present {
            self.skip_open()?;
        }
        Ok(())
    }

    /// Reads a CHOICE's index: `Ok(Root(i))`, or `Ok(Ext(i, reader))` for an extension
    /// alternative with a reader of its open type.
    pub fn choice(&mut self, extensible: bool, root: u32) -> PerResult<Choice<'a>> {
        if extensible && self.bit()? {
            let i = self.normally_small()?;
            let sub = self.open()?;
            return Ok(Choice::Ext(i, sub));
        }
        let i = self.constrained(u64::from(root))?;
        if i >= u64::from(root) {
            return Err(self.invalid("choice index past the root"));
        }
        Ok(Choice::Root(i as u32))
    }

    /// Skips a value of type `ty`.
    pub fn skip(&mut self, ty: &Ty) -> PerResult<()> {
        self.check_depth(0)?;
        self.skip_at(ty, 0)
    }

    fn skip_at(&mut self, ty: &Ty, depth: u32) -> PerResult<()> {
        self.check_depth(depth)?;
        match *ty {
            Ty::Null => Ok(()),
            Ty::Bool => self.skip_bits(1),
            Ty::Int { lb, ub, ext } => {
                if ext && self.bit()? {
                    return self.skip_counted(0, None, 8, true);
                }
                self.constrained(ub.abs_diff(lb) + 1).map(drop)
            }
            Ty::Unbounded => self.skip_counted(0, None, 8, true),
            Ty::Enum { count, ext } => {
                if ext && self.bit()? {
                    return self.normally_small().map(drop);
                }
                let i = self.constrained(u64::from(count))?;
                if i >= u64::from(count) {
                    return Err(self.invalid("enumeration past the root"));
                }
                Ok(())
            }
            Ty::Octets(sz) => self.skip_string(sz, 8),
            Ty::Bits(sz) => self.skip_string(sz, 1),
            Ty::Chars(sz, b) => self.skip_string(sz, usize::from(b)),
            Ty::Oid | Ty::Open => self.skip_counted(0, None, 8, true),
            Ty::Seq(ref s) => {
                let opt = s.fields.iter().filter(|f| f.opt).count() as u32;
                let (ext, mask) = self.preamble(s.ext, opt)?;
                let mut k = opt;
                for f in s.fields {
                    if f.opt {
                        k -= 1;
                        if mask >> k & 1 == 0 {
                            continue;
                        }
                    }
                    self.skip_at(f.ty, depth + 1)?;
                }
                if ext {
                    self.skip_additions()?;
                }
                Ok(())
            }
            Ty::Choice(ref c) => match self.choice(c.ext, c.alts.len() as u32)? {
                Choice::Ext(..) => Ok(()),
                Choice::Root(i) => self.skip_at(c.alts[i as usize].1, depth + 1),
            },
            Ty::SeqOf(sz, elem) => {
                if sz.ext && self.bit()? {
                    return self.skip_items(0, None, elem, depth);
                }
                if Some(sz.lb) == sz.ub && sz.lb < 65536 {
                    return self.skip_n(sz.lb as usize, elem, depth);
                }
                self.skip_items(sz.lb, sz.ub, elem, depth)
            }
        }
    }

    /// Skips `n` values of `elem`; values that take no bits end the loop early (the rest
    /// take none either), so a huge count of nothing costs nothing.
    fn skip_n(&mut self, n: usize, elem: &Ty, depth: u32) -> PerResult<()> {
        for _ in 0..n {
            let before = self.pos;
            self.skip_at(elem, depth + 1)?;
            if self.pos == before {
                break;
            }
        }
        Ok(())
    }

    fn skip_items(&mut self, lb: u32, ub: Option<u32>, elem: &Ty, depth: u32) -> PerResult<()> {
        loop {
            let l = self.length(lb, ub)?;
            self.skip_n(l.n, elem, depth)?;
            if !l.more {
                return Ok(());
            }
        }
    }

    /// Skips a string of `unit`-bit items with size constraint `sz`.
    fn skip_string(&mut self, sz: Size, unit: usize) -> PerResult<()> {
        if sz.ext && self.bit()? {
            return self.skip_counted(0, None, unit, true);
        }
        if Some(sz.lb) == sz.ub && sz.lb < 65536 {
            let bits = sz.lb as usize * unit;
            if bits > 16 {
                self.align()?;
            }
            return self.skip_bits(bits);
        }
        self.skip_counted(sz.lb, sz.ub, unit, true)
    }
}

/// A CHOICE index as read by [`PerReader::choice`].
#[derive(Debug)]
pub enum Choice<'a> {
    /// A root alternative.
    Root(u32),
    /// An extension alternative (index from 0) and a reader of its encoding.
    Ext(u64, PerReader<'a>),
}

/// A size constraint: `lb..=ub` (`ub` None: unbounded), extensible or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    /// Lower bound.
    pub lb: u32,
    /// Upper bound, if any.
    pub ub: Option<u32>,
    /// `SIZE (lb..ub, ...)`.
    pub ext: bool,
}

impl Size {
    /// No constraint.
    pub const ANY: Size = Size {
        lb: 0,
        ub: None,
        ext: false,
    };

    /// `SIZE (lb..ub)`.
    pub const fn range(lb: u32, ub: u32) -> Size {
        Size {
            lb,
            ub: Some(ub),
            ext: false,
        }
    }

    /// `SIZE (n)`.
    pub const fn fixed(n: u32) -> Size {
        Size::range(n, n)
    }
}

/// The shape of an ASN.1 type, as far as skipping its PER encoding needs: only the root
/// components of extensible types (additions are open types, skipped by their length).
#[derive(Debug)]
pub enum Ty {
    /// NULL.
    Null,
    /// BOOLEAN.
    Bool,
    /// INTEGER (lb..ub), with `...` if `ext`.
    Int {
        /// Lower bound.
        lb: i64,
        /// Upper bound.
        ub: i64,
        /// Extensible constraint.
        ext: bool,
    },
    /// INTEGER without an upper bound (an unconstrained length and octets).
    Unbounded,
    /// ENUMERATED with `count` root items.
    Enum {
        /// Root items.
        count: u32,
        /// Extensible.
        ext: bool,
    },
    /// OCTET STRING.
    Octets(Size),
    /// BIT STRING.
    Bits(Size),
    /// A known-multiplier character string of `b` bits a character.
    Chars(Size, u8),
    /// OBJECT IDENTIFIER.
    Oid,
    /// An open type (`TYPE-IDENTIFIER.&Type`).
    Open,
    /// SEQUENCE.
    Seq(Seq),
    /// CHOICE.
    Choice(Alts),
    /// SEQUENCE (SIZE) OF.
    SeqOf(Size, &'static Ty),
}

/// A SEQUENCE's root components.
#[derive(Debug)]
pub struct Seq {
    /// Has an extension marker.
    pub ext: bool,
    /// Root components in order.
    pub fields: &'static [Field],
}

/// One component of a SEQUENCE.
#[derive(Debug)]
pub struct Field {
    /// Its name in the ASN.1 (documentation).
    pub name: &'static str,
    /// OPTIONAL (or DEFAULT).
    pub opt: bool,
    /// Its type.
    pub ty: &'static Ty,
}

/// A CHOICE's root alternatives.
#[derive(Debug)]
pub struct Alts {
    /// Has an extension marker.
    pub ext: bool,
    /// Root alternatives in order, by name.
    pub alts: &'static [(&'static str, &'static Ty)],
}

/// A mandatory component.
pub const fn f(name: &'static str, ty: &'static Ty) -> Field {
    Field {
        name,
        opt: false,
        ty,
    }
}

/// An OPTIONAL component.
pub const fn o(name: &'static str, ty: &'static Ty) -> Field {
    Field {
        name,
        opt: true,
        ty,
    }
}
