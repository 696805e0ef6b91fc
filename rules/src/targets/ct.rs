//! raw table: `-j NOTRACK`, `-j CT --notrack` (leave the packet untracked) and
//! `-j CT --zone N` (track it in conntrack zone N); both continue the traversal. A NOTRACK
//! hit turns the traversal's final ACCEPT into [`crate::Verdict::NoTrack`]; the zone is
//! reported in [`crate::EvalOutput::ct_zone`]. Zones are numeric and not directional:
//! `--zone-orig`, `--zone-reply`, `--zone mark`, `--ctevents`, `--expevents` and `--timeout`
//! are refused, and so is every `--helper` (tunfilter has no application helpers).

use std::fmt::Write as _;

use crate::extension::{Arg, Cx, TargetExt};
use crate::lex::Tok;
use crate::RuleError;

/// What a CT or NOTRACK rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ct {
    /// Untrack the packet. `ct` remembers the `-j CT --notrack` spelling.
    NoTrack { ct: bool },
    /// `--zone N`.
    Zone(u16),
}

impl Ct {
    /// Applies a hit: marks the traversal untracking, or sets the zone.
    #[inline]
    pub(crate) fn apply(self, notrack: &mut bool, zone: &mut Option<u16>) {
        match self {
            Ct::NoTrack { .. } => *notrack = true,
            Ct::Zone(z) => *zone = Some(z),
        }
    }

    pub(crate) fn save(self, out: &mut String) {
        match self {
            Ct::NoTrack { ct: true } => out.push_str(" -j CT --notrack"),
            Ct::NoTrack { ct: false } => out.push_str(" -j NOTRACK"),
            Ct::Zone(z) => {
                let _ = write!(out, " -j CT --zone {z}");
            }
        }
    }
}

/// `-j CT` being built.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    notrack: bool,
    /// `--zone N` with the option's column.
    zone: Option<(u16, usize)>,
}

impl TargetExt for Builder {
    type Output = Ct;

    fn takes(&self, opt: &Tok, cx: &Cx) -> Result<Option<u8>, RuleError> {
        let o = opt.text.as_str();
        Ok(match o {
            "--notrack" => Some(0),
            "--zone" | "--helper" => Some(1),
            "--zone-orig" | "--zone-reply" => {
                return Err(cx.err(
                    opt.col,
                    format!(
                        "CT option {o} is not supported (one zone for both directions: \
                         --zone N)"
                    ),
                ))
            }
            "--ctevents" | "--expevents" | "--timeout" => {
                return Err(cx.err(
                    opt.col,
                    format!("CT option {o} is not supported (only --notrack and --zone)"),
                ))
            }
            _ => None,
        })
    }

    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        let dup = || arg.err_opt(format!("{} given twice", arg.name));
        match arg.name {
            "--notrack" => {
                if self.notrack {
                    return Err(dup());
                }
                self.notrack = true;
            }
            "--zone" => {
                let v = arg.text();
                let z = match v.parse::<u16>() {
                    Ok(z) => z,
                    Err(_) if v == "mark" || v.starts_with("mark/") => {
                        return Err(arg
                            .err("CT --zone mark is not supported (a numeric zone 0-65535 only)"))
                    }
                    Err(_) => return Err(arg.err(format!("--zone needs 0-65535, not {v:?}"))),
                };
                if self.zone.is_some() {
                    return Err(dup());
                }
                self.zone = Some((z, arg.opt.col));
            }
            _ => {
                // --helper. The kernel refuses a helper it does not have (ENOENT); tunfilter
                // has no application helpers, so every name is refused the same way, at load
                // time.
                return Err(arg.err(format!(
                    "CT --helper: no conntrack helper named {:?} (tunfilter has no \
                     application helpers)",
                    arg.text()
                )));
            }
        }
        Ok(())
    }

    fn finish(self, cx: &Cx, col: usize, _: Option<(u8, bool)>) -> Result<Ct, RuleError> {
        match (self.notrack, self.zone) {
            (true, None) => Ok(Ct::NoTrack { ct: true }),
            (true, Some((_, zcol))) => {
                Err(cx.err(zcol, "CT --notrack cannot be combined with --zone"))
            }
            (false, Some((z, _))) => Ok(Ct::Zone(z)),
            (false, None) => Err(cx.err(col, "CT needs --notrack or --zone")),
        }
    }
}
