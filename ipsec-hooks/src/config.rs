//! SAs and policies as TOML tables (`[[ipsec.sa]]`, `[[ipsec.policy]]`), with serde: the same
//! words as `ip xfrm`, keys in kebab-case, key material as hex. A table converts into an
//! [`SaConfig`] or [`PolicyConfig`]; a [`FieldError`] names the key at fault so that the
//! configuration loader can point at its line and column.
//!
//! ```
//! use ipsec_hooks::config::{PolicyTable, SaTable};
//!
//! let sa: SaTable = toml::from_str(r#"
//!     src = "203.0.113.1"
//!     dst = "203.0.113.2"
//!     spi = "0x1000"
//!     reqid = 1
//!     mode = "tunnel"
//!     replay-window = 64
//!     key = "0x0102030405060708090a0b0c0d0e0f1011121314"
//! "#).unwrap();
//! let cfg = sa.to_config().unwrap();
//! assert_eq!((cfg.spi, cfg.replay_window), (0x1000, 64));
//!
//! let pol: PolicyTable = toml::from_str(r#"
//!     src = "192.0.2.0/24"
//!     dst = "198.51.100.0/24"
//!     dir = "out"
//!     tmpl = [{ src = "203.0.113.1", dst = "203.0.113.2", reqid = 1, mode = "tunnel" }]
//! "#).unwrap();
//! assert_eq!(pol.to_config().unwrap().templates.len(), 1);
//! ```

use crate::aead;
use crate::flow::Selector;
use crate::sa::{Lifetime, Mode, SaConfig, SaFlags};
use crate::spd::{Action, Level, PolicyConfig, Template};
use crate::text;
use conntrack::tuple::Family;
use core::fmt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A number as an integer or as a string (`"0x1000"`), as SPIs are usually written in hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Number {
    /// An integer.
    Int(u64),
    /// A decimal or `0x` hexadecimal string.
    Text(String),
}

impl Number {
    fn get(&self, max: u64) -> Result<u64, String> {
        match self {
            Number::Int(v) if *v <= max => Ok(*v),
            Number::Int(v) => Err(format!("{v} is above {max}")),
            Number::Text(s) => text::parse_number(s, max),
        }
    }
}

/// A key of a table and what is wrong with its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The key (`spi`, `tmpl[1].dst`, ...); empty for the table as a whole.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "`{}`: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for FieldError {}

fn field<T>(name: &str, r: Result<T, String>) -> Result<T, FieldError> {
    r.map_err(|message| FieldError {
        field: name.to_string(),
        message,
    })
}

fn default_proto() -> String {
    "esp".to_string()
}

fn default_aead() -> String {
    aead::ALG_NAME.to_string()
}

fn default_icv() -> u32 {
    aead::ICV_BITS
}

/// One `[[ipsec.sa]]` table: the words of `ip xfrm state add`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SaTable {
    /// Source address.
    pub src: String,
    /// Destination address.
    pub dst: String,
    /// `esp`.
    #[serde(default = "default_proto")]
    pub proto: String,
    /// SPI.
    pub spi: Number,
    /// Request id.
    #[serde(default)]
    pub reqid: Option<Number>,
    /// `transport` (default) or `tunnel`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Anti-replay window.
    #[serde(default)]
    pub replay_window: u32,
    /// Flag words (`esn`, `af-unspec`, `noecn`, `decap-dscp`, `nopmtudisc`).
    #[serde(default)]
    pub flags: Vec<String>,
    /// `rfc4106(gcm(aes))`.
    #[serde(default = "default_aead")]
    pub aead: String,
    /// Key then salt, as `0x` and hex.
    pub key: String,
    /// 128.
    #[serde(default = "default_icv")]
    pub icv_bits: u32,
    /// A selector in `ip xfrm` words (`src 192.0.2.0/24 dst 198.51.100.0/24 proto tcp`).
    #[serde(default)]
    pub sel: Option<String>,
    /// Limits by `ip xfrm`'s names (`time-soft`, `byte-hard`, ...).
    #[serde(default)]
    pub limits: BTreeMap<String, u64>,
}

impl SaTable {
    /// The SA this table describes, checked.
    pub fn to_config(&self) -> Result<SaConfig, FieldError> {
        let src = field("src", text::parse_addr(&self.src))?;
        let dst = field("dst", text::parse_addr(&self.dst))?;
        if src.is_ipv4() != dst.is_ipv4() {
            return field("dst", Err("src and dst must be of the same family".into()));
        }
        field("proto", text::parse_xfrm_proto(&self.proto))?;
        let spi = field("spi", self.spi.get(u64::from(u32::MAX)))? as u32;
        let reqid = match &self.reqid {
            Some(n) => field("reqid", n.get(u64::from(u32::MAX)))? as u32,
            None => 0,
        };
        let mode = match &self.mode {
            Some(m) => field("mode", text::parse_mode(m))?,
            None => Mode::Transport,
        };
        let mut flags = SaFlags::default();
        for f in &self.flags {
            field("flags", text::set_flag(&mut flags, f))?;
        }
        if self.aead != aead::ALG_NAME {
            return field(
                "aead",
                Err(format!(
                    "expected {}, found `{}`",
                    aead::ALG_NAME,
                    self.aead
                )),
            );
        }
        let key = field("key", text::parse_key(&self.key))?;
        let sel = match &self.sel {
            Some(s) => Some(field(
                "sel",
                text::parse_selector(s).map_err(|e| e.to_string()),
            )?),
            None if flags.af_unspec => None,
            None => Some(Selector::any(Family::of(&dst))),
        };
        let mut lifetime = Lifetime::default();
        for (k, v) in &self.limits {
            if !lifetime.set(k, *v) {
                return field(
                    "limits",
                    Err(format!("unknown limit `{k}` (time-soft, time-hard, time-use-soft, time-use-hard, byte-soft, byte-hard, packet-soft, packet-hard)")),
                );
            }
        }
        let cfg = SaConfig {
            src,
            dst,
            spi,
            reqid,
            mode,
            replay_window: self.replay_window,
            flags,
            key,
            icv_bits: self.icv_bits,
            selector: sel,
            lifetime,
            replay_seq: 0,
            replay_oseq: 0,
        };
        cfg.validate().map_err(|e| FieldError {
            field: String::new(),
            message: e.0,
        })?;
        Ok(cfg)
    }
}

/// One template of a `[[ipsec.policy]]` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TemplateTable {
    /// Tunnel source.
    #[serde(default)]
    pub src: Option<String>,
    /// Tunnel destination.
    #[serde(default)]
    pub dst: Option<String>,
    /// `esp`.
    #[serde(default = "default_proto")]
    pub proto: String,
    /// SPI the SA must have.
    #[serde(default)]
    pub spi: Option<Number>,
    /// Request id.
    #[serde(default)]
    pub reqid: Option<Number>,
    /// `transport` (default) or `tunnel`.
    #[serde(default)]
    pub mode: Option<String>,
    /// `required` (default) or `use`.
    #[serde(default)]
    pub level: Option<String>,
}

/// One `[[ipsec.policy]]` table: the words of `ip xfrm policy add`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PolicyTable {
    /// Source prefix (default: any, of the family of `dst`).
    #[serde(default)]
    pub src: Option<String>,
    /// Destination prefix.
    #[serde(default)]
    pub dst: Option<String>,
    /// Upper protocol, by name or number.
    #[serde(default)]
    pub proto: Option<String>,
    /// Source port.
    #[serde(default)]
    pub sport: Option<u16>,
    /// Destination port.
    #[serde(default)]
    pub dport: Option<u16>,
    /// ICMP type.
    #[serde(default, rename = "type")]
    pub icmp_type: Option<u8>,
    /// ICMP code.
    #[serde(default)]
    pub code: Option<u8>,
    /// `in`, `out` or `fwd`.
    pub dir: String,
    /// Lower wins.
    #[serde(default)]
    pub priority: u32,
    /// `allow` (default) or `block`.
    #[serde(default)]
    pub action: Option<String>,
    /// Templates, innermost first.
    #[serde(default)]
    pub tmpl: Vec<TemplateTable>,
}

impl PolicyTable {
    /// The policy this table describes, checked.
    pub fn to_config(&self) -> Result<PolicyConfig, FieldError> {
        // The selector goes through the text parser, so that both forms check alike.
        let mut words = Vec::new();
        for (k, v) in [
            ("src", &self.src),
            ("dst", &self.dst),
            ("proto", &self.proto),
        ] {
            if let Some(v) = v {
                field(
                    k,
                    if v.split_whitespace().count() == 1 {
                        Ok(())
                    } else {
                        Err(format!("`{v}` is not one word"))
                    },
                )?;
                words.push(format!("{k} {v}"));
            }
        }
        for (k, v) in [
            ("sport", self.sport.map(u32::from)),
            ("dport", self.dport.map(u32::from)),
            ("type", self.icmp_type.map(u32::from)),
            ("code", self.code.map(u32::from)),
        ] {
            if let Some(v) = v {
                words.push(format!("{k} {v}"));
            }
        }
        let selector = if words.is_empty() {
            Selector::any(Family::V4)
        } else {
            let line = words.join(" ");
            text::parse_selector(&line).map_err(|e| {
                // Name the key whose words the error points into.
                let mut at = 1;
                let mut name = String::new();
                for w in &words {
                    if e.column >= at {
                        name = w.split(' ').next().unwrap_or("").to_string();
                    }
                    at += w.chars().count() + 1;
                }
                FieldError {
                    field: name,
                    message: e.message,
                }
            })?
        };
        let dir = field("dir", text::parse_dir(&self.dir))?;
        let action = match &self.action {
            Some(a) => field("action", text::parse_action(a))?,
            None => Action::Allow,
        };
        let mut templates = Vec::new();
        for (i, t) in self.tmpl.iter().enumerate() {
            let name = |k: &str| format!("tmpl[{i}].{k}");
            let addr =
                |k: &str, v: &Option<String>| -> Result<Option<std::net::IpAddr>, FieldError> {
                    match v {
                        Some(s) => Ok(Some(field(&name(k), text::parse_addr(s))?)
                            .filter(|a| !a.is_unspecified())),
                        None => Ok(None),
                    }
                };
            field(&name("proto"), text::parse_xfrm_proto(&t.proto))?;
            let tm = Template {
                src: addr("src", &t.src)?,
                dst: addr("dst", &t.dst)?,
                spi: match &t.spi {
                    Some(n) => Some(field(&name("spi"), n.get(u64::from(u32::MAX)))? as u32)
                        .filter(|&s| s != 0),
                    None => None,
                },
                reqid: match &t.reqid {
                    Some(n) => field(&name("reqid"), n.get(u64::from(u32::MAX)))? as u32,
                    None => 0,
                },
                mode: match &t.mode {
                    Some(m) => field(&name("mode"), text::parse_mode(m))?,
                    None => Mode::Transport,
                },
                level: match &t.level {
                    Some(l) => field(&name("level"), text::parse_level(l))?,
                    None => Level::Required,
                },
            };
            templates.push(tm);
        }
        let cfg = PolicyConfig {
            selector,
            dir,
            priority: self.priority,
            action,
            templates,
        };
        cfg.validate().map_err(|e| FieldError {
            field: if e.0.contains("tmpl") || e.0.contains("templates") {
                "tmpl".into()
            } else {
                String::new()
            },
            message: e.0,
        })?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0x0102030405060708090a0b0c0d0e0f1011121314";

    fn sa(extra: &str) -> Result<SaConfig, FieldError> {
        let t: SaTable = toml::from_str(&format!(
            "src = \"203.0.113.1\"\ndst = \"203.0.113.2\"\nspi = 4096\nkey = \"{KEY}\"\n{extra}"
        ))
        .unwrap();
        t.to_config()
    }

    #[test]
    fn sa_tables_agree_with_the_text_form() {
        let cfg = sa("mode = \"tunnel\"\nreqid = \"0x10\"\nreplay-window = 128\nflags = [\"esn\"]\nsel = \"src 192.0.2.0/24 dst 198.51.100.0/24\"\nlimits = { byte-soft = 1000, time-hard = 60 }").unwrap();
        let text = text::parse_state(&format!(
            "src 203.0.113.1 dst 203.0.113.2 proto esp spi 4096 reqid 16 mode tunnel replay-window 128 flag esn aead 'rfc4106(gcm(aes))' {KEY} 128 sel src 192.0.2.0/24 dst 198.51.100.0/24 limit byte-soft 1000 limit time-hard 60"
        ))
        .unwrap();
        assert_eq!(cfg, text);
    }

    #[test]
    fn sa_table_errors_name_the_field() {
        let e = sa("mode = \"tunel\"").unwrap_err();
        assert_eq!(e.field, "mode");
        assert_eq!(
            e.to_string(),
            "`mode`: expected transport or tunnel, found `tunel`"
        );
        assert_eq!(
            sa("flags = [\"esn\"]").unwrap_err().message,
            "flag esn needs a replay-window above 0"
        );
        assert_eq!(
            sa("sel = \"src 192.0.2.0/24 dst nowhere\"")
                .unwrap_err()
                .field,
            "sel"
        );
        assert_eq!(
            sa("limits = { bytes-soft = 1 }").unwrap_err().field,
            "limits"
        );
        let bad: Result<SaTable, _> =
            toml::from_str("src = \"a\"\ndst = \"b\"\nspi = 1\nkey = \"0x00\"\ncolour = 1");
        assert!(bad.unwrap_err().to_string().contains("colour"));
    }

    #[test]
    fn policy_tables() {
        let t: PolicyTable = toml::from_str(
            "src = \"2001:db8:1::/48\"\ndst = \"2001:db8:2::/48\"\nproto = \"tcp\"\ndport = 443\ndir = \"fwd\"\npriority = 5\ntmpl = [{ src = \"2001:db8::1\", dst = \"2001:db8::2\", reqid = 7, mode = \"tunnel\", level = \"use\" }]",
        )
        .unwrap();
        let cfg = t.to_config().unwrap();
        assert_eq!(
            cfg.to_string(),
            "src 2001:db8:1::/48 dst 2001:db8:2::/48 proto tcp dport 443 dir fwd priority 5 tmpl src 2001:db8::1 dst 2001:db8::2 proto esp reqid 7 mode tunnel level use"
        );
        let t: PolicyTable =
            toml::from_str("src = \"192.0.2.0/24\"\nproto = \"icmp\"\ndport = 80\ndir = \"in\"")
                .unwrap();
        let e = t.to_config().unwrap_err();
        assert_eq!(e.field, "dport");
        let t: PolicyTable =
            toml::from_str("dir = \"in\"\ntmpl = [{ mode = \"tunnel\" }]").unwrap();
        assert_eq!(t.to_config().unwrap_err().field, "tmpl");
        let t: PolicyTable = toml::from_str("dir = \"in\"\ntmpl = [{ dst = \"x\" }]").unwrap();
        assert_eq!(t.to_config().unwrap_err().field, "tmpl[0].dst");
    }
}
