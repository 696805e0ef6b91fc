//! `-j TCPMSS --set-mss N | --clamp-mss-to-pmtu` (needs `-p tcp`): lower the MSS option of
//! TCP SYNs and continue. Hits are reported in [`crate::EvalOutput::tcpmss`]; the engine
//! rewrites the packet. `--clamp-mss-to-pmtu` needs the egress route, so only FORWARD,
//! OUTPUT and POSTROUTING may reach it (checked at COMMIT for rules in user chains).
//! iptables-legacy also demands a SYN-only tcp match; iptables-nft cannot check that and
//! accepts the rule. The engine rewrites SYNs only, so the rule is safe either way and loads
//! as iptables-nft saves it.

use std::fmt::Write as _;

use crate::extension::{hook_list, Arg, Cx, TargetExt};
use crate::lex::Tok;
use crate::{Hook, RuleError};

/// What `-j TCPMSS` sets the MSS option to. Either way the option is only ever lowered, as
/// the kernel does; a SYN without the option gets one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpMss {
    /// `--set-mss N`.
    Set(u16),
    /// `--clamp-mss-to-pmtu`: the path MTU (the smaller of the egress and ingress MTUs) less
    /// the IP and TCP headers (40 bytes for IPv4, 60 for IPv6).
    ClampToPmtu,
}

/// Hooks where `--clamp-mss-to-pmtu` knows the egress route.
pub(crate) const MSS_CLAMP_HOOKS: &[Hook] = &[Hook::Forward, Hook::Output, Hook::Postrouting];

impl TcpMss {
    /// The hooks this form is limited to, with its name for errors.
    pub(crate) fn hook_limits(self) -> Option<(&'static str, &'static [Hook])> {
        match self {
            TcpMss::ClampToPmtu => Some(("TCPMSS --clamp-mss-to-pmtu", MSS_CLAMP_HOOKS)),
            TcpMss::Set(_) => None,
        }
    }

    pub(crate) fn save(self, out: &mut String) {
        match self {
            TcpMss::Set(mss) => {
                let _ = write!(out, " -j TCPMSS --set-mss {mss}");
            }
            TcpMss::ClampToPmtu => out.push_str(" -j TCPMSS --clamp-mss-to-pmtu"),
        }
    }
}

/// `-j TCPMSS` being built: its one option with the option's column.
#[derive(Debug, Default)]
pub(crate) struct Builder(Option<(TcpMss, usize)>);

impl TargetExt for Builder {
    type Output = TcpMss;

    fn takes(&self, opt: &Tok, _: &Cx) -> Result<Option<u8>, RuleError> {
        Ok(match opt.text.as_str() {
            "--set-mss" => Some(1),
            "--clamp-mss-to-pmtu" => Some(0),
            _ => None,
        })
    }

    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        let m = if arg.name == "--set-mss" {
            let mss = arg
                .text()
                .parse::<u16>()
                .map_err(|_| arg.err(format!("--set-mss needs 0-65535, not {:?}", arg.text())))?;
            TcpMss::Set(mss)
        } else {
            TcpMss::ClampToPmtu
        };
        if self.0.is_some() {
            return Err(arg.err_opt("TCPMSS takes one of --set-mss and --clamp-mss-to-pmtu"));
        }
        self.0 = Some((m, arg.opt.col));
        Ok(())
    }

    fn finish(self, cx: &Cx, col: usize, proto: Option<(u8, bool)>) -> Result<TcpMss, RuleError> {
        let Some((m, ocol)) = self.0 else {
            return Err(cx.err(col, "TCPMSS needs --set-mss or --clamp-mss-to-pmtu"));
        };
        if proto != Some((6, false)) {
            return Err(cx.err(col, "TCPMSS needs -p tcp (not negated)"));
        }
        if let Some((_, ok)) = m.hook_limits() {
            if let Some(h) = cx.hook.filter(|h| !ok.contains(h)) {
                return Err(cx.err(
                    ocol,
                    format!(
                        "--clamp-mss-to-pmtu is not valid in chain {} (only in {})",
                        h.chain_name(),
                        hook_list(ok)
                    ),
                ));
            }
        }
        Ok(m)
    }
}
