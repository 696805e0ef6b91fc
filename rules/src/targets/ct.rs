//! raw table: `-j NOTRACK`, `-j CT --notrack` (leave the packet untracked), `-j CT --zone N`
//! (track it in conntrack zone N) and `-j CT --helper NAME` (attach the application helper
//! NAME to the connection the packet starts, the kernel's explicit assignment); all but
//! NOTRACK continue the traversal. A NOTRACK hit turns the traversal's final ACCEPT into
//! [`crate::Verdict::NoTrack`]; the zone and the helper are reported in
//! [`crate::EvalOutput::ct_zone`] and [`crate::EvalOutput::ct_helper`]. Zones are numeric and
//! not directional: `--zone-orig`, `--zone-reply`, `--zone mark`, `--ctevents`,
//! `--expevents` and `--timeout` are refused. A helper must be one tunfilter has, and the
//! rule must name its protocol with `-p` (as the kernel's CT target requires).

use std::fmt::Write as _;

use crate::extension::{Arg, Cx, TargetExt};
use crate::lex::Tok;
use crate::RuleError;

/// What a CT or NOTRACK rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ct {
    /// Untrack the packet. `ct` remembers the `-j CT --notrack` spelling.
    NoTrack { ct: bool },
    /// `--helper NAME` and/or `--zone N`.
    Set {
        helper: Option<&'static str>,
        zone: Option<u16>,
    },
}

impl Ct {
    /// Applies a hit: marks the traversal untracking, or sets the zone.
    #[inline]
    pub(crate) fn apply(
        self,
        notrack: &mut bool,
        zone: &mut Option<u16>,
        helper: &mut Option<&'static str>,
    ) {
        match self {
            Ct::NoTrack { .. } => *notrack = true,
            Ct::Set { helper: h, zone: z } => {
                if z.is_some() {
                    *zone = z;
                }
                if h.is_some() {
                    *helper = h;
                }
            }
        }
    }

    pub(crate) fn save(self, out: &mut String) {
        match self {
            Ct::NoTrack { ct: true } => out.push_str(" -j CT --notrack"),
            Ct::NoTrack { ct: false } => out.push_str(" -j NOTRACK"),
            // iptables-save's order: --helper before --zone.
            Ct::Set { helper, zone } => {
                out.push_str(" -j CT");
                if let Some(h) = helper {
                    let _ = write!(out, " --helper {}", crate::lex::quote(h));
                }
                if let Some(z) = zone {
                    let _ = write!(out, " --zone {z}");
                }
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
    /// `--helper NAME`: the helper, and the column of its name.
    helper: Option<(&'static Known, usize)>,
}

/// A helper of `helpers::Registry::builtin()`: what the CT target checks of it.
#[derive(Debug)]
struct Known {
    name: &'static str,
    proto: u8,
}

/// The helpers tunfilter has, once: (name, protocol).
fn known_helpers() -> &'static [Known] {
    static KNOWN: std::sync::OnceLock<Vec<Known>> = std::sync::OnceLock::new();
    KNOWN.get_or_init(|| {
        let r = helpers::Registry::builtin();
        r.names()
            .filter_map(|n| {
                r.get(n).map(|h| Known {
                    name: h.name(),
                    proto: h.proto(),
                })
            })
            .collect()
    })
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
                    format!("CT option {o} is not supported (only --notrack, --zone and --helper)"),
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
                // --helper. The kernel refuses a helper it does not have (ENOENT).
                let name = arg.text();
                let Some(h) = known_helpers().iter().find(|h| h.name == name) else {
                    let names: Vec<&str> = known_helpers().iter().map(|h| h.name).collect();
                    return Err(arg.err(format!(
                        "CT --helper: no conntrack helper named {name:?} (expected one of: {})",
                        names.join(", ")
                    )));
                };
                if self.helper.is_some() {
                    return Err(dup());
                }
                self.helper = Some((h, arg.tok().col));
            }
        }
        Ok(())
    }

    fn finish(self, cx: &Cx, col: usize, proto: Option<(u8, bool)>) -> Result<Ct, RuleError> {
        if let Some((h, hcol)) = self.helper {
            // xt_CT: "You must specify a L4 protocol and not use inversions on it".
            if proto != Some((h.proto, false)) {
                let want = if h.proto == 6 { "tcp" } else { "udp" };
                return Err(cx.err(
                    hcol,
                    format!(
                        "CT --helper {} needs -p {want} (the helper's protocol, not inverted)",
                        h.name
                    ),
                ));
            }
        }
        let helper = self.helper.map(|(h, _)| h.name);
        match (self.notrack, self.zone, helper) {
            (true, None, None) => Ok(Ct::NoTrack { ct: true }),
            (true, Some((_, c)), _) => {
                Err(cx.err(c, "CT --notrack cannot be combined with --zone"))
            }
            (true, None, Some(_)) => Err(cx.err(
                self.helper.map_or(col, |(_, c)| c),
                "CT --notrack cannot be combined with --helper",
            )),
            (false, None, None) => Err(cx.err(col, "CT needs --notrack, --zone or --helper")),
            (false, zone, helper) => Ok(Ct::Set {
                helper,
                zone: zone.map(|(z, _)| z),
            }),
        }
    }
}
