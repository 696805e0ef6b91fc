//! `-m helper [!] --helper NAME`: the packet's connection was expected by a connection whose
//! helper is NAME (xt_helper): `-m helper --helper ftp` matches FTP data connections. A
//! connection that no helper expected never matches (nor does `!` make it match, as in the
//! kernel). NAME may carry a port suffix as iptables documents (`ftp-2121`): only the
//! helper's name is compared, as the kernel compares the helper's name length. An empty
//! NAME matches any helper.

use std::fmt::Write as _;

use crate::extension::{Arg, Done, MatchExt, Opt};
use crate::lex::quote;
use crate::{Marks, PacketCtx, RuleError};

pub(crate) const OPTIONS: &[Opt] = &[Opt::value(&["--helper"], true)];

/// `-m helper`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Helper {
    pub(crate) name: String,
    pub(crate) invert: bool,
}

impl MatchExt for Helper {
    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        // The kernel's name buffer holds 29 bytes plus the NUL.
        if arg.text().len() > 29 {
            return Err(arg.err("helper name longer than 29 bytes"));
        }
        self.name = arg.text().to_string();
        self.invert = arg.invert;
        Ok(())
    }

    fn check(&self, done: &Done) -> Result<(), RuleError> {
        done.require_any("-m helper needs --helper")
    }

    #[inline]
    fn matches(&self, ctx: &PacketCtx, _: &Marks) -> bool {
        let Some(master) = ctx.conn.as_ref().and_then(|c| c.master_helper) else {
            return false;
        };
        let hit = self.name.is_empty()
            || self
                .name
                .as_bytes()
                .get(..master.len())
                .is_some_and(|n| n == master.as_bytes());
        hit != self.invert
    }

    fn save(&self, out: &mut String) {
        let not = if self.invert { " !" } else { "" };
        let _ = write!(out, " -m helper{not} --helper {}", quote(&self.name));
    }
}
