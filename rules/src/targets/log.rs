//! `-j LOG [--log-prefix P] [--log-level L] [--log-tcp-sequence] [--log-tcp-options]
//! [--log-ip-options] [--log-uid] [--log-macdecode]`: report the packet and continue. A hit
//! is a [`LogRecord`] in [`crate::EvalOutput::logs`]; the engine formats and writes the line.
//! The flags are accepted for compatibility and saved back.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::extension::{Arg, Cx, TargetExt};
use crate::lex::{quote, Tok};
use crate::value::parse_uint;
use crate::{LogRecord, RuleError, RuleRef};

/// LOG target options (`--log-prefix`, `--log-level`, flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Log {
    pub(crate) prefix: Arc<str>,
    pub(crate) level: u8,
    /// `--log-tcp-sequence`, `--log-tcp-options`, `--log-ip-options`, `--log-uid`,
    /// `--log-macdecode`, as bits in that order: accepted for compatibility and saved back.
    pub(crate) flags: u8,
}

pub(crate) const LOG_DEFAULT_LEVEL: u8 = 4;

pub(crate) const LOG_FLAGS: [&str; 5] = [
    "--log-tcp-sequence",
    "--log-tcp-options",
    "--log-ip-options",
    "--log-uid",
    "--log-macdecode",
];

const LOG_LEVELS: [&str; 8] = [
    "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
];

pub(crate) fn parse_log_level(s: &str) -> Result<u8, String> {
    if let Ok(n) = parse_uint(s, 7) {
        return Ok(n as u8);
    }
    let lower = s.to_ascii_lowercase();
    let alias = match lower.as_str() {
        "panic" => "emerg",
        "err" => "error",
        "warn" => "warning",
        other => other,
    };
    LOG_LEVELS
        .iter()
        .position(|l| *l == alias)
        .map(|p| p as u8)
        .ok_or_else(|| format!("bad log level {s} (0..7 or emerg..debug)"))
}

impl Log {
    /// The record of a hit by `rule`.
    pub(crate) fn record(&self, rule: RuleRef) -> LogRecord {
        LogRecord {
            rule,
            prefix: self.prefix.clone(),
            level: self.level,
        }
    }

    /// ` -j LOG ...` with the options that differ from the defaults.
    pub(crate) fn save(&self, out: &mut String) {
        out.push_str(" -j LOG");
        if !self.prefix.is_empty() {
            let _ = write!(out, " --log-prefix {}", quote(&self.prefix));
        }
        if self.level != LOG_DEFAULT_LEVEL {
            let _ = write!(out, " --log-level {}", self.level);
        }
        for (i, flag) in LOG_FLAGS.iter().enumerate() {
            if self.flags & (1 << i) != 0 {
                let _ = write!(out, " {flag}");
            }
        }
    }
}

/// `-j LOG` being built.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    prefix: Option<String>,
    level: Option<u8>,
    flags: u8,
}

impl TargetExt for Builder {
    type Output = Log;

    fn takes(&self, opt: &Tok, _: &Cx) -> Result<Option<u8>, RuleError> {
        Ok(match opt.text.as_str() {
            "--log-prefix" | "--log-level" => Some(1),
            // The flags, and any other `--log-` option, which `option` refuses by name.
            o if o.starts_with("--log-") => Some(0),
            _ => None,
        })
    }

    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        let dup = || arg.err_opt(format!("{} given twice", arg.name));
        match arg.name {
            "--log-prefix" => {
                // The kernel keeps 29 characters plus the NUL.
                if arg.text().len() > 29 {
                    return Err(arg.err("log prefix longer than 29 bytes"));
                }
                if self.prefix.is_some() {
                    return Err(dup());
                }
                self.prefix = Some(arg.text().to_string());
            }
            "--log-level" => {
                let l = parse_log_level(arg.text()).map_err(|e| arg.err(e))?;
                if self.level.is_some() {
                    return Err(dup());
                }
                self.level = Some(l);
            }
            o => {
                let Some(bit) = LOG_FLAGS.iter().position(|f| *f == o) else {
                    return Err(arg.err_opt(format!("unknown or unsupported option {o}")));
                };
                if self.flags & (1 << bit) != 0 {
                    return Err(dup());
                }
                self.flags |= 1 << bit;
            }
        }
        Ok(())
    }

    fn finish(self, _: &Cx, _: usize, _: Option<(u8, bool)>) -> Result<Log, RuleError> {
        Ok(Log {
            prefix: Arc::from(self.prefix.unwrap_or_default().as_str()),
            level: self.level.unwrap_or(LOG_DEFAULT_LEVEL),
            flags: self.flags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels() {
        assert_eq!(parse_log_level("7").unwrap(), 7);
        assert_eq!(parse_log_level("warn").unwrap(), 4);
        assert_eq!(parse_log_level("DEBUG").unwrap(), 7);
        assert!(parse_log_level("8").is_err());
    }
}
