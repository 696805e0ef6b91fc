//! `-m connmark --mark VALUE[/MASK]`: the connection mark, as the traversal has set it so
//! far (0 for an untracked packet).

use super::mark::MarkSpec;
use crate::extension::{Arg, Done, MatchExt, Opt};
use crate::{Marks, PacketCtx, RuleError};

pub(crate) const OPTIONS: &[Opt] = &[Opt::value(&["--mark"], true)];

/// `-m connmark`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Connmark(pub(crate) MarkSpec);

impl MatchExt for Connmark {
    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        self.0.option(arg)
    }

    fn check(&self, done: &Done) -> Result<(), RuleError> {
        done.require_any("-m connmark needs --mark")
    }

    #[inline]
    fn matches(&self, _: &PacketCtx, marks: &Marks) -> bool {
        self.0.hit(marks.ctmark)
    }

    fn save(&self, out: &mut String) {
        self.0.save("connmark", out);
    }
}
