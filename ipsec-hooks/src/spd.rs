//! The security policy database: which flows must be protected, by which SAs, or blocked.
//!
//! A policy ([`PolicyConfig`]) is `ip xfrm policy add`'s: a selector, a direction (`in`,
//! `out`, `fwd`), an action (`allow`, `block`), a priority (lower wins; equal priorities keep
//! insertion order, as Linux) and templates. Templates are listed innermost first: on output
//! the first is applied first, on input the last must match the first SA the packet was
//! decapsulated with.

use crate::flow::{Flow, Selector};
use crate::sa::{ConfigError, Mode};
use core::fmt;
use std::net::IpAddr;
use wire::Instant;

/// Where a policy applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Packets delivered to this host.
    In,
    /// Packets this host sends or forwards (the output lookup).
    Out,
    /// Packets forwarded by this host (checked like `in`).
    Fwd,
}

impl Direction {
    /// `in`, `out` or `fwd`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::Fwd => "fwd",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Direction::In => 0,
            Direction::Out => 1,
            Direction::Fwd => 2,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a policy does with the flows it selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Action {
    /// Let them through, protected by the templates (if any).
    #[default]
    Allow,
    /// Drop them.
    Block,
}

/// Whether a template must be applied (`level required`) or only if an SA exists (`use`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Level {
    /// The template must be applied.
    #[default]
    Required,
    /// The template is optional.
    Use,
}

/// One transformation a policy asks for (`tmpl ...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Template {
    /// Tunnel source; `None` (written `0.0.0.0` or `::`) for a transport template.
    pub src: Option<IpAddr>,
    /// Tunnel destination.
    pub dst: Option<IpAddr>,
    /// SPI the SA must have; `None` is any.
    pub spi: Option<u32>,
    /// The SA's reqid: on output equal (0 only matches 0, as Linux), on input 0 is any.
    pub reqid: u32,
    /// Mode.
    pub mode: Mode,
    /// Required or optional.
    pub level: Level,
}

impl Template {
    /// A tunnel template between `src` and `dst`.
    pub fn tunnel(src: IpAddr, dst: IpAddr, reqid: u32) -> Template {
        Template {
            src: Some(src),
            dst: Some(dst),
            spi: None,
            reqid,
            mode: Mode::Tunnel,
            level: Level::Required,
        }
    }

    /// A transport template (the endpoints are the flow's).
    pub fn transport(reqid: u32) -> Template {
        Template {
            src: None,
            dst: None,
            spi: None,
            reqid,
            mode: Mode::Transport,
            level: Level::Required,
        }
    }
}

/// One policy as configured.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PolicyConfig {
    /// The flows it selects.
    pub selector: Selector,
    /// Where it applies.
    pub dir: Direction,
    /// Lower wins.
    pub priority: u32,
    /// Allow or block.
    pub action: Action,
    /// Transformations, innermost first (at most 6).
    pub templates: Vec<Template>,
}

/// The most transformations one packet gets (Linux's `XFRM_MAX_DEPTH`).
pub const MAX_DEPTH: usize = 6;

impl PolicyConfig {
    /// An `allow` policy of priority 0 without templates.
    pub fn new(selector: Selector, dir: Direction) -> PolicyConfig {
        PolicyConfig {
            selector,
            dir,
            priority: 0,
            action: Action::Allow,
            templates: Vec::new(),
        }
    }

    /// Checks the templates.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.selector.src.family() != self.selector.dst.family() {
            return Err(ConfigError(
                "the selector's src and dst must be of the same family".into(),
            ));
        }
        if self.templates.len() > MAX_DEPTH {
            return Err(ConfigError(format!(
                "{} templates: at most {MAX_DEPTH}",
                self.templates.len()
            )));
        }
        for t in &self.templates {
            match (t.mode, t.src, t.dst) {
                (Mode::Tunnel, Some(s), Some(d)) if s.is_ipv4() != d.is_ipv4() => {
                    return Err(ConfigError(
                        "tmpl src and dst must be of the same family".into(),
                    ))
                }
                (Mode::Tunnel, Some(_), Some(_)) => {}
                (Mode::Tunnel, _, _) => {
                    return Err(ConfigError(
                        "a tunnel-mode tmpl needs its src and dst".into(),
                    ))
                }
                (Mode::Transport, _, _) => {}
            }
        }
        Ok(())
    }
}

/// One policy in the database.
#[derive(Clone, Debug)]
pub struct Policy {
    pub(crate) cfg: PolicyConfig,
    /// When the last `Acquire` event for it went out (rate limit).
    pub(crate) last_acquire: Option<Instant>,
}

impl Policy {
    /// The configuration.
    pub fn config(&self) -> &PolicyConfig {
        &self.cfg
    }
}

/// The policies of each direction, in lookup order.
#[derive(Clone, Debug, Default)]
pub struct Spd {
    dirs: [Vec<Policy>; 3],
}

impl Spd {
    /// Adds a policy; an existing one with the same direction and selector is an error
    /// (`File exists`), as `ip xfrm policy add`.
    pub fn add(&mut self, cfg: PolicyConfig) -> Result<(), ConfigError> {
        cfg.validate()?;
        let list = &mut self.dirs[cfg.dir.index()];
        if list.iter().any(|p| p.cfg.selector == cfg.selector) {
            return Err(ConfigError(format!(
                "a policy for {} dir {} exists already",
                cfg.selector, cfg.dir
            )));
        }
        // After every policy of lower or equal priority: the lookup takes the first match.
        let at = list.partition_point(|p| p.cfg.priority <= cfg.priority);
        list.insert(
            at,
            Policy {
                cfg,
                last_acquire: None,
            },
        );
        Ok(())
    }

    /// Removes the policy of `dir` with exactly `selector`.
    pub fn delete(&mut self, dir: Direction, selector: &Selector) -> Option<PolicyConfig> {
        let list = &mut self.dirs[dir.index()];
        let i = list.iter().position(|p| &p.cfg.selector == selector)?;
        Some(list.remove(i).cfg)
    }

    /// Removes every policy.
    pub fn flush(&mut self) {
        for d in &mut self.dirs {
            d.clear();
        }
    }

    /// The policy of `dir` selecting `flow`: the lowest priority, then the oldest.
    pub fn lookup(&self, dir: Direction, flow: &Flow) -> Option<&Policy> {
        self.dirs[dir.index()]
            .iter()
            .find(|p| p.cfg.selector.matches(flow))
    }

    pub(crate) fn lookup_mut(&mut self, dir: Direction, flow: &Flow) -> Option<&mut Policy> {
        self.dirs[dir.index()]
            .iter_mut()
            .find(|p| p.cfg.selector.matches(flow))
    }

    /// Every policy: `in`, `out`, then `fwd`, each in lookup order.
    pub fn iter(&self) -> impl Iterator<Item = &Policy> {
        self.dirs.iter().flatten()
    }

    /// How many policies there are.
    pub fn len(&self) -> usize {
        self.dirs.iter().map(Vec::len).sum()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Prefix;

    fn sel(src: &str, dst: &str) -> Selector {
        let p = |s: &str| {
            let (a, l) = s.split_once('/').unwrap();
            Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
        };
        Selector::between(p(src), p(dst))
    }

    fn flow(src: &str, dst: &str) -> Flow {
        Flow {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto: 6,
            sport: 1000,
            dport: 80,
        }
    }

    #[test]
    fn lower_priority_wins_then_insertion_order() {
        let mut spd = Spd::default();
        let mut wide = PolicyConfig::new(sel("0.0.0.0/0", "0.0.0.0/0"), Direction::Out);
        wide.priority = 10;
        wide.action = Action::Block;
        spd.add(wide.clone()).unwrap();
        let mut narrow = PolicyConfig::new(sel("192.0.2.0/24", "198.51.100.0/24"), Direction::Out);
        narrow.priority = 20;
        spd.add(narrow.clone()).unwrap();
        let f = flow("192.0.2.1", "198.51.100.1");
        // The wider policy has the lower priority value: it wins.
        assert_eq!(
            spd.lookup(Direction::Out, &f).unwrap().cfg.action,
            Action::Block
        );
        assert!(spd.lookup(Direction::In, &f).is_none());
        // Same priority: the first added wins.
        let mut same = PolicyConfig::new(sel("192.0.2.0/25", "198.51.100.0/24"), Direction::Out);
        same.priority = 10;
        spd.add(same).unwrap();
        assert_eq!(spd.lookup(Direction::Out, &f).unwrap().cfg, wide);
        assert!(spd.add(wide.clone()).is_err(), "duplicate selector and dir");
        assert_eq!(spd.delete(Direction::Out, &wide.selector), Some(wide));
        assert_eq!(
            spd.lookup(Direction::Out, &f)
                .unwrap()
                .cfg
                .selector
                .src
                .len(),
            25
        );
        assert_eq!(spd.len(), 2);
        spd.flush();
        assert!(spd.is_empty());
    }

    #[test]
    fn template_checks() {
        let mut p = PolicyConfig::new(sel("0.0.0.0/0", "0.0.0.0/0"), Direction::Out);
        p.templates.push(Template {
            src: None,
            ..Template::tunnel(
                "192.0.2.1".parse().unwrap(),
                "192.0.2.2".parse().unwrap(),
                1,
            )
        });
        assert!(p.validate().is_err());
        p.templates[0] = Template::tunnel(
            "192.0.2.1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            1,
        );
        assert!(p.validate().is_err());
        p.templates = vec![Template::transport(1); 7];
        assert!(p.validate().is_err());
        p.templates.truncate(6);
        assert!(p.validate().is_ok());
    }
}
