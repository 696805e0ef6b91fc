//! `-m comment --comment TEXT`: a note saved with the rule; always matches.

use std::fmt::Write as _;

use crate::extension::{Arg, Done, MatchExt, Opt};
use crate::lex::quote;
use crate::{Marks, PacketCtx, RuleError};

pub(crate) const OPTIONS: &[Opt] = &[Opt::value(&["--comment"], false)];

/// `-m comment`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Comment {
    pub(crate) text: String,
}

impl MatchExt for Comment {
    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        // The kernel's comment buffer holds 255 bytes plus the NUL.
        if arg.text().len() > 255 {
            return Err(arg.err("comment longer than 255 bytes"));
        }
        self.text = arg.text().to_string();
        Ok(())
    }

    fn check(&self, done: &Done) -> Result<(), RuleError> {
        done.require_any("-m comment needs --comment")
    }

    #[inline]
    fn matches(&self, _: &PacketCtx, _: &Marks) -> bool {
        true
    }

    fn save(&self, out: &mut String) {
        let _ = write!(out, " -m comment --comment {}", quote(&self.text));
    }
}
