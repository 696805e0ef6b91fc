//! `-m string`: a pattern searched in the packet, with the `search` crate's
//! engines behind iptables' options.
//!
//! As in the kernel, offsets count from the start of the network header, so
//! by default the whole packet (headers included) is searched, and every
//! matched byte must lie between `--from` and `--to` (inclusive: `--to N`
//! is the last byte a match may use). A reassembled datagram is searched as
//! the chain of its fragments' segments, without copying it into one buffer.
//!
//! Algorithms: iptables' `bm` and `kmp`, plus `ac`, `memmem`, `regex`
//! (`--string` is then a regular expression) and `auto`. Unlike the kernel's
//! `bm`, ours also finds matches that straddle segment boundaries.

use std::fmt::Write as _;
use std::sync::Arc;

use search::{Algorithm, MatchMode, Pattern, SearchOptions, Searcher};

use crate::extension::{Arg, Done, MatchExt, Opt};
use crate::lex::quote_always;
use crate::value::parse_uint;
use crate::{Marks, PacketCtx, RuleError};

pub(crate) const OPTIONS: &[Opt] = &[
    Opt::value(&["--algo"], false),
    Opt::grouped(&["--string"], "pattern", true),
    Opt::grouped(&["--hex-string"], "pattern", true),
    Opt::value(&["--from"], false),
    Opt::value(&["--to"], false),
    Opt::flag(&["--icase"], "--icase", false),
];

/// The kernel's limit on a pattern (`XT_STRING_MAX_PATTERN_SIZE`).
pub(crate) const MAX_PATTERN: usize = 128;

/// A `-m string` match: the options as given, and the searcher built from them.
#[derive(Debug, Clone)]
pub(crate) struct StringMatch {
    pub(crate) algo: Algorithm,
    pub(crate) pattern: Vec<u8>,
    /// Given with `--hex-string` (kept so a save reproduces the form).
    pub(crate) hex: bool,
    pub(crate) from: u16,
    pub(crate) to: u16,
    pub(crate) icase: bool,
    pub(crate) invert: bool,
    pub(crate) searcher: Option<Arc<Searcher>>,
}

impl PartialEq for StringMatch {
    // The searcher is derived from the rest.
    fn eq(&self, o: &StringMatch) -> bool {
        (
            self.algo,
            &self.pattern,
            self.hex,
            self.from,
            self.to,
            self.icase,
            self.invert,
        ) == (o.algo, &o.pattern, o.hex, o.from, o.to, o.icase, o.invert)
    }
}

impl Default for StringMatch {
    fn default() -> Self {
        StringMatch {
            algo: Algorithm::Auto,
            pattern: Vec::new(),
            hex: false,
            from: 0,
            to: u16::MAX,
            icase: false,
            invert: false,
            searcher: None,
        }
    }
}

/// Whether a pattern can be saved as a `--string` (printable ASCII only); anything else is
/// saved as a `--hex-string`.
pub(crate) fn printable(pattern: &[u8]) -> bool {
    pattern.iter().all(|b| (0x20..0x7f).contains(b))
}

/// `--algo` names: iptables' two, then ours.
pub(crate) fn parse_algo(s: &str) -> Result<Algorithm, String> {
    match s {
        "bm" => Ok(Algorithm::BoyerMoore),
        "kmp" => Ok(Algorithm::Kmp),
        "ac" => Ok(Algorithm::AhoCorasick),
        "memmem" => Ok(Algorithm::Memmem),
        "regex" => Ok(Algorithm::Regex),
        "auto" => Ok(Algorithm::Auto),
        other => Err(format!(
            "unknown string algorithm {other} (expected bm, kmp, ac, memmem, regex or auto)"
        )),
    }
}

/// `--hex-string`: literal characters, with bytes in hex between `|` pairs
/// (`|0d 0a|`, `|03|www|07|example|03|com|00|`). Errors carry the offset of
/// the offending character, counted in characters (the unit of a column), not bytes.
pub(crate) fn parse_hex(s: &str) -> Result<Vec<u8>, (usize, String)> {
    let mut out = Vec::new();
    let mut in_hex = false;
    let mut open = 0;
    let mut nibble: Option<(u8, usize)> = None;
    for (i, c) in s.chars().enumerate() {
        match (c, in_hex) {
            ('|', false) => {
                in_hex = true;
                open = i;
            }
            ('|', true) => {
                if let Some((_, at)) = nibble {
                    return Err((at, "odd number of hex digits".into()));
                }
                in_hex = false;
            }
            (' ', true) => {
                if let Some((_, at)) = nibble {
                    return Err((at, "a hex byte needs two digits".into()));
                }
            }
            (c, true) => {
                let v = c
                    .to_digit(16)
                    .ok_or((i, format!("{c:?} is not a hex digit")))? as u8;
                nibble = match nibble {
                    None => Some((v, i)),
                    Some((hi, _)) => {
                        out.push(hi << 4 | v);
                        None
                    }
                };
            }
            (c, false) => {
                let mut b = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    if in_hex {
        return Err((open, "unterminated |".into()));
    }
    Ok(out)
}

impl StringMatch {
    /// Builds the searcher; called once the rule's options are all read.
    pub(crate) fn compile(&mut self) -> Result<(), String> {
        if self.pattern.is_empty() {
            return Err("-m string needs a non-empty --string or --hex-string".into());
        }
        if self.pattern.len() > MAX_PATTERN {
            return Err(format!(
                "string pattern of {} bytes is longer than {MAX_PATTERN}",
                self.pattern.len()
            ));
        }
        if self.from > self.to {
            return Err(format!("--from {} is beyond --to {}", self.from, self.to));
        }
        let pattern = if self.algo == Algorithm::Regex {
            let text = std::str::from_utf8(&self.pattern)
                .map_err(|_| "a regex pattern must be UTF-8 text".to_string())?;
            Pattern::regex(text)
        } else {
            Pattern::literal(&self.pattern)
        };
        let opts = SearchOptions {
            icase: self.icase,
            from: u64::from(self.from),
            // `--to N` is the last byte a match may use.
            to: Some(u64::from(self.to) + 1),
            mode: MatchMode::Earliest,
            anchored: false,
        };
        let s = Searcher::new(self.algo, &[pattern], opts).map_err(|e| e.to_string())?;
        self.searcher = Some(Arc::new(s));
        Ok(())
    }
}

impl MatchExt for StringMatch {
    fn option(&mut self, arg: &Arg) -> Result<(), RuleError> {
        let v = arg.tok();
        let offset = |what: &str| {
            parse_uint(&v.text, u64::from(u16::MAX))
                .map(|n| n as u16)
                .map_err(|_| arg.err(format!("bad {what} offset {} (0..=65535)", v.text)))
        };
        match arg.name {
            "--algo" => self.algo = parse_algo(&v.text).map_err(|e| arg.err(e))?,
            "--string" => {
                self.pattern = v.text.as_bytes().to_vec();
                // A pattern with bytes outside printable ASCII is saved as a hex
                // string (as iptables-save does): record that form, so that the saved
                // text loads back as this very rule.
                self.hex = !printable(&self.pattern);
                self.invert = arg.invert;
            }
            "--hex-string" => {
                // Past the opening quote of a quoted value (iptables-save quotes it).
                let q = usize::from(v.quoted);
                self.pattern =
                    parse_hex(&v.text).map_err(|(off, e)| arg.cx.err(v.col + q + off, e))?;
                self.hex = true;
                self.invert = arg.invert;
            }
            "--from" => self.from = offset("--from")?,
            "--to" => self.to = offset("--to")?,
            _ => self.icase = true,
        }
        Ok(())
    }

    fn finish(&mut self, done: &Done) -> Result<(), RuleError> {
        // Missing options are reported by `check`.
        if done.has("pattern") && done.has("--algo") {
            self.compile().map_err(|e| done.err(e))?;
        }
        Ok(())
    }

    fn check(&self, done: &Done) -> Result<(), RuleError> {
        if !done.has("pattern") {
            return Err(done.err("-m string needs --string or --hex-string"));
        }
        if !done.has("--algo") {
            return Err(done.err("-m string needs --algo"));
        }
        Ok(())
    }

    fn matches(&self, ctx: &PacketCtx, _: &Marks) -> bool {
        let Some(s) = &self.searcher else {
            // Not compiled: the loader always compiles, so this is not reached; fail closed.
            return false;
        };
        let found = match ctx.chain {
            Some(chain) => s.find_in_chunks(chain.iter().copied()).is_some(),
            None => s.find_in_chunks([ctx.packet]).is_some(),
        };
        found != self.invert
    }

    /// The iptables-save form: `-m string --string "..." --algo bm --to 65535`.
    fn save(&self, out: &mut String) {
        let not = if self.invert { " !" } else { "" };
        out.push_str(" -m string");
        if printable(&self.pattern) && !self.hex {
            let text = String::from_utf8_lossy(&self.pattern);
            let _ = write!(out, "{not} --string {}", quote_always(&text));
        } else {
            let _ = write!(out, "{not} --hex-string \"|");
            for b in &self.pattern {
                let _ = write!(out, "{b:02x}");
            }
            out.push_str("|\"");
        }
        let algo = match self.algo {
            Algorithm::BoyerMoore => "bm",
            a => a.name(),
        };
        let _ = write!(out, " --algo {algo}");
        if self.from != 0 {
            let _ = write!(out, " --from {}", self.from);
        }
        let _ = write!(out, " --to {}", self.to);
        if self.icase {
            out.push_str(" --icase");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_strings() {
        assert_eq!(parse_hex("|0d 0a|").unwrap(), b"\r\n");
        assert_eq!(
            parse_hex("|03|www|07|example|00|").unwrap(),
            b"\x03www\x07example\x00"
        );
        assert_eq!(parse_hex("ab|4A|").unwrap(), b"abJ");
        assert_eq!(parse_hex("|0d0|").unwrap_err().0, 3, "the lone digit");
        assert_eq!(parse_hex("x|0g|").unwrap_err().0, 3);
        assert_eq!(parse_hex("ok|0d").unwrap_err().0, 2);
        assert_eq!(parse_hex("|0 d|").unwrap_err().0, 1);
    }

    fn ctx(packet: &[u8]) -> PacketCtx<'_> {
        PacketCtx::new(
            crate::Family::V4,
            "192.0.2.1".parse().unwrap(),
            "192.0.2.2".parse().unwrap(),
            6,
            packet,
        )
    }

    #[test]
    fn window_is_inclusive_of_to_and_counts_from_the_ip_header() {
        let pkt = b"0123456789GET /x";
        for (from, to, want) in [
            (0, 65535, true),
            (10, 13, true),  // "GET " is bytes 10..=13
            (10, 12, false), // the space at 13 is out
            (11, 65535, false),
        ] {
            let mut m = StringMatch {
                algo: Algorithm::Kmp,
                pattern: b"GET ".to_vec(),
                from,
                to,
                ..StringMatch::default()
            };
            m.compile().unwrap();
            assert_eq!(
                m.matches(&ctx(pkt), &Marks::default()),
                want,
                "{from}..={to}"
            );
        }
    }

    #[test]
    fn segments_icase_invert_and_save() {
        let chain: [&[u8]; 2] = [b"...get /ind", b"ex.html ..."];
        let mut c = ctx(b"");
        c.chain = Some(&chain);
        for algo in [
            Algorithm::BoyerMoore,
            Algorithm::Kmp,
            Algorithm::AhoCorasick,
        ] {
            let mut m = StringMatch {
                algo,
                pattern: b"GET /index".to_vec(),
                icase: true,
                ..StringMatch::default()
            };
            m.compile().unwrap();
            assert!(
                m.matches(&c, &Marks::default()),
                "{algo:?} across the segment boundary"
            );
            m.invert = true;
            assert!(!m.matches(&c, &Marks::default()));
        }
        let mut s = String::new();
        StringMatch {
            algo: Algorithm::BoyerMoore,
            pattern: b"say \"hi\"".to_vec(),
            from: 20,
            icase: true,
            ..StringMatch::default()
        }
        .save(&mut s);
        assert_eq!(
            s,
            " -m string --string \"say \\\"hi\\\"\" --algo bm --from 20 --to 65535 --icase"
        );
        let mut s = String::new();
        StringMatch {
            algo: Algorithm::Kmp,
            pattern: b"\r\n".to_vec(),
            invert: true,
            ..StringMatch::default()
        }
        .save(&mut s);
        assert_eq!(
            s,
            " -m string ! --hex-string \"|0d0a|\" --algo kmp --to 65535"
        );
    }

    #[test]
    fn bad_patterns_are_refused_at_compile() {
        let long = StringMatch {
            pattern: vec![b'a'; 129],
            ..StringMatch::default()
        };
        assert!(long
            .clone()
            .compile()
            .unwrap_err()
            .contains("longer than 128"));
        let re = StringMatch {
            algo: Algorithm::Regex,
            pattern: b"(unclosed".to_vec(),
            ..StringMatch::default()
        };
        assert!(re.clone().compile().is_err());
        let window = StringMatch {
            pattern: b"x".to_vec(),
            from: 10,
            to: 5,
            ..StringMatch::default()
        };
        assert!(window
            .clone()
            .compile()
            .unwrap_err()
            .contains("beyond --to"));
    }
}
