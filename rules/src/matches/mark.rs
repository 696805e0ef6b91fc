//! `-m mark --mark VALUE[/MASK]`: the packet mark, as the traversal has set it so far
//! (a MARK target earlier in the same table counts).

use std::fmt::Write as _;

use crate::extension::{Arg, Done, MatchExt, Opt};
use crate::value::{parse_value_mask, write_value_mask};
use crate::{Marks, PacketCtx, RuleError};

pub(crate) const OPTIONS: &[Opt] = &[Opt::value(&["--mark"], true)];

/// `--mark value/mask` with its `!`: shared with `-m connmark` (`connmark.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MarkSpec {
    pub(crate) value: u32,
    pub(crate) mask: u32,
    pub(crate) invert: bool,
}

impl Default for MarkSpec {
    fn default() -> MarkSpec {
        MarkSpec {
            value: 0,
            mask: u32::MAX,
            invert: false,
        }
    }
}

impl MarkSpec {
    pub(crate) fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        (self.value, self.mask) = parse_value_mask(arg.text()).map_err(|e| arg.err(e))?;
        self.invert = arg.invert;
        Ok(())
    }

    #[inline]
    pub(crate) fn hit(&self, mark: u32) -> bool {
        (mark & self.mask == self.value) != self.invert
    }

    /// ` -m MODULE [!] --mark value[/mask]`.
    pub(crate) fn save(&self, module: &str, out: &mut String) {
        let not = if self.invert { " !" } else { "" };
        let _ = write!(out, " -m {module}{not} --mark ");
        write_value_mask(out, self.value, self.mask);
    }
}

/// `-m mark`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Mark(pub(crate) MarkSpec);

impl MatchExt for Mark {
    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        self.0.option(arg)
    }

    fn check(&self, done: &Done) -> Result<(), RuleError> {
        done.require_any("-m mark needs --mark")
    }

    #[inline]
    fn matches(&self, _: &PacketCtx, marks: &Marks) -> bool {
        self.0.hit(marks.mark)
    }

    fn save(&self, out: &mut String) {
        self.0.save("mark", out);
    }
}
