//! `-j MARK --set-xmark V[/M] | --set-mark V[/M] | --and-mark B | --or-mark B | --xor-mark B`:
//! set the packet mark and continue. Every form reduces to `--set-xmark`
//! (`mark = (mark & !mask) ^ value`), which is also what iptables-save prints. The same
//! options set the connection mark in `-j CONNMARK` (`connmark.rs`).

use std::fmt::Write as _;

use crate::extension::{Arg, Cx, TargetExt};
use crate::lex::Tok;
use crate::value::{parse_u32, parse_value_mask};
use crate::{Marks, RuleError};

/// The options that set a mark.
pub(crate) const MARK_OPS: [&str; 5] = [
    "--set-xmark",
    "--set-mark",
    "--and-mark",
    "--or-mark",
    "--xor-mark",
];

/// `-j MARK`, as its `--set-xmark` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    pub(crate) value: u32,
    pub(crate) mask: u32,
}

impl Mark {
    #[inline]
    pub(crate) fn apply(self, marks: &mut Marks) {
        marks.mark = (marks.mark & !self.mask) ^ self.value;
    }

    pub(crate) fn save(self, out: &mut String) {
        let _ = write!(
            out,
            " -j MARK --set-xmark {:#x}/{:#x}",
            self.value, self.mask
        );
    }
}

/// The `--set-xmark` (value, mask) pair of a MARK / CONNMARK option: `--set-xmark v/m`,
/// `--set-mark v/m` (bits of `m` cleared, `v` ORed), `--and-mark b`, `--or-mark b`,
/// `--xor-mark b`. `None` for other option names.
pub(crate) fn xmark_of(opt: &str, value: u32, mask: u32) -> Option<(u32, u32)> {
    Some(match opt {
        "--set-xmark" => (value, mask),
        "--set-mark" => (value, mask | value),
        "--and-mark" => (0, !value),
        "--or-mark" => (value, value),
        "--xor-mark" => (value, 0),
        _ => return None,
    })
}

/// The value of a [`MARK_OPS`] option as its `--set-xmark` pair: `v[/m]` for the set forms,
/// a plain value for and/or/xor.
pub(crate) fn xmark_value(arg: &Arg) -> Result<(u32, u32), RuleError> {
    let (value, mask) = if arg.name.starts_with("--set-") {
        parse_value_mask(arg.text())
    } else {
        parse_u32(arg.text()).map(|x| (x, u32::MAX))
    }
    .map_err(|e| arg.err(e))?;
    Ok(xmark_of(arg.name, value, mask).unwrap_or((value, mask)))
}

/// The error for a second action of MARK or CONNMARK.
pub(crate) fn one_action(target: &str, arg: &Arg) -> RuleError {
    arg.err_opt(format!(
        "{target} takes one action; {} conflicts with an earlier one",
        arg.name
    ))
}

/// `-j MARK` being built.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    op: Option<(u32, u32)>,
}

impl TargetExt for Builder {
    type Output = Mark;

    fn takes(&self, opt: &Tok, _: &Cx) -> Result<Option<u8>, RuleError> {
        Ok(MARK_OPS.contains(&opt.text.as_str()).then_some(1))
    }

    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        let xm = xmark_value(arg)?;
        if self.op.is_some() {
            return Err(one_action("MARK", arg));
        }
        self.op = Some(xm);
        Ok(())
    }

    fn finish(self, cx: &Cx, col: usize, _: Option<(u8, bool)>) -> Result<Mark, RuleError> {
        match self.op {
            Some((value, mask)) => Ok(Mark { value, mask }),
            None => Err(cx.err(
                col,
                "MARK needs one of --set-xmark, --set-mark, --and-mark, --or-mark, --xor-mark",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_option_forms() {
        let apply = |opt: &str, v: u32, m: u32, mark: u32| {
            let (value, mask) = xmark_of(opt, v, m).unwrap();
            (mark & !mask) ^ value
        };
        assert_eq!(apply("--set-mark", 0x5, u32::MAX, 0xff00), 0x5);
        assert_eq!(apply("--set-mark", 0x5, 0xf, 0xff0a), 0xff05);
        assert_eq!(apply("--set-xmark", 0x5, 0xf, 0xff0f), 0xff05);
        assert_eq!(apply("--set-xmark", 0x1, 0x0, 0x3), 0x2);
        assert_eq!(apply("--and-mark", 0x0f, 0, 0xff), 0x0f);
        assert_eq!(apply("--or-mark", 0x100, 0, 0xff), 0x1ff);
        assert_eq!(apply("--xor-mark", 0x3, 0, 0x5), 0x6);
        assert_eq!(xmark_of("--mark", 1, 1), None);
    }
}
