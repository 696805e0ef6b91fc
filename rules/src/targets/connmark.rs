//! `-j CONNMARK`: set the connection mark (with MARK's options, `mark.rs`), or copy between
//! it and the packet mark: `--save-mark` and `--restore-mark`, with `--nfmask`, `--ctmask`
//! or `--mask` (both). The traversal continues; the engine stores both marks afterwards.

use std::fmt::Write as _;

use super::mark::{one_action, xmark_value, MARK_OPS};
use crate::extension::{Arg, Cx, TargetExt};
use crate::lex::Tok;
use crate::value::parse_u32;
use crate::{Marks, RuleError};

/// What CONNMARK does to the connection mark (`ctmark`) or, for restore, the packet mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnmarkOp {
    /// `ctmark = (ctmark & !mask) ^ value`.
    Set { value: u32, mask: u32 },
    /// `--save-mark`: `ctmark = (ctmark & !ctmask) ^ (mark & nfmask)`.
    Save { nfmask: u32, ctmask: u32 },
    /// `--restore-mark`: `mark = (mark & !nfmask) ^ (ctmark & ctmask)`.
    Restore { nfmask: u32, ctmask: u32 },
}

impl ConnmarkOp {
    #[inline]
    pub(crate) fn apply(self, marks: &mut Marks) {
        match self {
            ConnmarkOp::Set { value, mask } => marks.ctmark = (marks.ctmark & !mask) ^ value,
            ConnmarkOp::Save { nfmask, ctmask } => {
                marks.ctmark = (marks.ctmark & !ctmask) ^ (marks.mark & nfmask);
            }
            ConnmarkOp::Restore { nfmask, ctmask } => {
                marks.mark = (marks.mark & !nfmask) ^ (marks.ctmark & ctmask);
            }
        }
    }

    pub(crate) fn save(self, out: &mut String) {
        match self {
            ConnmarkOp::Set { value, mask } => {
                let _ = write!(out, " -j CONNMARK --set-xmark {value:#x}/{mask:#x}");
            }
            ConnmarkOp::Save { nfmask, ctmask } => {
                let _ = write!(
                    out,
                    " -j CONNMARK --save-mark --nfmask {nfmask:#x} --ctmask {ctmask:#x}"
                );
            }
            ConnmarkOp::Restore { nfmask, ctmask } => {
                let _ = write!(
                    out,
                    " -j CONNMARK --restore-mark --nfmask {nfmask:#x} --ctmask {ctmask:#x}"
                );
            }
        }
    }
}

/// A CONNMARK action being built.
#[derive(Debug, Clone, Copy)]
enum Action {
    Set(u32, u32),
    Save,
    Restore,
}

/// `-j CONNMARK` being built.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    op: Option<Action>,
    nfmask: Option<u32>,
    ctmask: Option<u32>,
}

impl TargetExt for Builder {
    type Output = ConnmarkOp;

    fn takes(&self, opt: &Tok, _: &Cx) -> Result<Option<u8>, RuleError> {
        let o = opt.text.as_str();
        Ok(
            if MARK_OPS.contains(&o) || matches!(o, "--nfmask" | "--ctmask" | "--mask") {
                Some(1)
            } else if matches!(o, "--save-mark" | "--restore-mark") {
                Some(0)
            } else {
                None
            },
        )
    }

    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        match arg.name {
            "--save-mark" | "--restore-mark" => {
                if self.op.is_some() {
                    return Err(one_action("CONNMARK", arg));
                }
                self.op = Some(if arg.name == "--save-mark" {
                    Action::Save
                } else {
                    Action::Restore
                });
            }
            "--nfmask" | "--ctmask" | "--mask" => {
                let m = parse_u32(arg.text()).map_err(|e| arg.err(e))?;
                let (nf, ct) = match arg.name {
                    "--nfmask" => (true, false),
                    "--ctmask" => (false, true),
                    _ => (true, true),
                };
                if (nf && self.nfmask.is_some()) || (ct && self.ctmask.is_some()) {
                    return Err(arg.err_opt(format!("{} given twice", arg.name)));
                }
                if nf {
                    self.nfmask = Some(m);
                }
                if ct {
                    self.ctmask = Some(m);
                }
            }
            _ => {
                let (value, mask) = xmark_value(arg)?;
                if self.op.is_some() {
                    return Err(one_action("CONNMARK", arg));
                }
                self.op = Some(Action::Set(value, mask));
            }
        }
        Ok(())
    }

    fn finish(self, cx: &Cx, col: usize, _: Option<(u8, bool)>) -> Result<ConnmarkOp, RuleError> {
        let masks = (
            self.nfmask.unwrap_or(u32::MAX),
            self.ctmask.unwrap_or(u32::MAX),
        );
        Ok(match self.op {
            None => {
                return Err(cx.err(
                    col,
                    "CONNMARK needs one of --set-xmark, --set-mark, --and-mark, --or-mark, --xor-mark, --save-mark, --restore-mark",
                ))
            }
            Some(Action::Set(..)) if self.nfmask.is_some() || self.ctmask.is_some() => {
                return Err(cx.err(
                    col,
                    "--nfmask, --ctmask and --mask go only with --save-mark or --restore-mark",
                ))
            }
            Some(Action::Set(value, mask)) => ConnmarkOp::Set { value, mask },
            Some(Action::Save) => ConnmarkOp::Save {
                nfmask: masks.0,
                ctmask: masks.1,
            },
            Some(Action::Restore) => ConnmarkOp::Restore {
                nfmask: masks.0,
                ctmask: masks.1,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_restore_and_set() {
        let mut m = Marks {
            mark: 0xab,
            ctmark: 0x1200,
        };
        ConnmarkOp::Save {
            nfmask: 0xff,
            ctmask: 0xff,
        }
        .apply(&mut m);
        assert_eq!(m.ctmark, 0x12ab);
        m.mark = 0;
        ConnmarkOp::Restore {
            nfmask: 0xffff_ffff,
            ctmask: 0xff00,
        }
        .apply(&mut m);
        assert_eq!(m.mark, 0x1200);
        ConnmarkOp::Set {
            value: 1,
            mask: 0xffff_ffff,
        }
        .apply(&mut m);
        assert_eq!(m.ctmark, 1);
    }
}
