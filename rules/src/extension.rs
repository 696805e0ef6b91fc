//! The interface between the rule syntax (`parse.rs`) and the extensions, one file each under
//! `matches/` and `targets/`, after the split of xtables' per-extension structures: an
//! extension declares its options in a table, reads each option it is given, checks the
//! whole once the rule's last option is read, prints its iptables-save form and evaluates
//! packets. The generic parser owns everything extensions share: negation, the value tokens,
//! duplicate and conflicting options, and error locations.
//!
//! Nothing here is on the per-packet path: matches and targets are evaluated through the
//! `Match` and `Target` enums, whose arms call the extension's methods directly.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use super::lex::Tok;
use super::{Family, Hook, Marks, PacketCtx, RuleError, Table};

/// Where the rule being parsed is: the location errors name, and what checks may depend on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cx<'a> {
    pub(crate) file: &'a str,
    pub(crate) line: usize,
    pub(crate) family: Family,
    pub(crate) table: Table,
    /// The hook of the built-in chain holding the rule; `None` in a user chain.
    pub(crate) hook: Option<Hook>,
}

impl Cx<'_> {
    /// An error at `column` of the rule's line.
    pub(crate) fn err(&self, column: usize, message: impl Into<String>) -> RuleError {
        RuleError {
            file: self.file.to_string(),
            line: self.line,
            column,
            message: message.into(),
        }
    }
}

/// One option of a match extension.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Opt {
    /// Its spellings; the first is the canonical one, which the extension is given and
    /// errors name.
    pub(crate) names: &'static [&'static str],
    /// Options sharing a group exclude each other (a second one is "given twice" or "cannot
    /// be combined with" the first); an option alone in its group uses its name.
    pub(crate) group: &'static str,
    /// Whether `! --option` is allowed.
    pub(crate) negatable: bool,
    /// How many values follow it (0 for a flag).
    pub(crate) args: u8,
}

impl Opt {
    /// An option with one value, alone in its group.
    pub(crate) const fn value(names: &'static [&'static str], negatable: bool) -> Opt {
        Opt {
            names,
            group: names[0],
            negatable,
            args: 1,
        }
    }

    /// An option with one value, in `group`.
    pub(crate) const fn grouped(
        names: &'static [&'static str],
        group: &'static str,
        negatable: bool,
    ) -> Opt {
        Opt {
            names,
            group,
            negatable,
            args: 1,
        }
    }

    /// A flag (no value), in `group`.
    pub(crate) const fn flag(
        names: &'static [&'static str],
        group: &'static str,
        negatable: bool,
    ) -> Opt {
        Opt {
            names,
            group,
            negatable,
            args: 0,
        }
    }

    /// The canonical spelling.
    pub(crate) fn name(&self) -> &'static str {
        self.names[0]
    }
}

/// One option as the rule gives it, handed to an extension's `option`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arg<'a> {
    /// The option's name: the canonical spelling for a match's option, as written for a
    /// target's.
    pub(crate) name: &'a str,
    /// Preceded by `!`.
    pub(crate) invert: bool,
    /// The option token itself.
    pub(crate) opt: &'a Tok,
    /// Its values, as many as the option takes.
    pub(crate) vals: &'a [&'a Tok],
    pub(crate) cx: Cx<'a>,
}

impl<'a> Arg<'a> {
    /// The (first) value; for a flag, the option token.
    pub(crate) fn tok(&self) -> &'a Tok {
        self.vals.first().copied().unwrap_or(self.opt)
    }

    /// The (first) value's text.
    pub(crate) fn text(&self) -> &'a str {
        &self.tok().text
    }

    pub(crate) fn family(&self) -> Family {
        self.cx.family
    }

    /// An error at the value.
    pub(crate) fn err(&self, message: impl Into<String>) -> RuleError {
        self.cx.err(self.tok().col, message)
    }

    /// An error `offset` characters into the value (the offset a list parser reports).
    pub(crate) fn err_at(&self, (offset, message): (usize, String)) -> RuleError {
        self.cx.err(self.tok().col + offset, message)
    }

    /// An error at the option's name.
    pub(crate) fn err_opt(&self, message: impl Into<String>) -> RuleError {
        self.cx.err(self.opt.col, message)
    }
}

/// A match after the rule's last option, for its `finish` and `check`.
#[derive(Debug)]
pub(crate) struct Done<'a> {
    pub(crate) cx: Cx<'a>,
    /// Column of the module name (`-m NAME`), or of the first option of a module `-p`
    /// loaded implicitly: where errors about the match as a whole point.
    pub(crate) col: usize,
    /// The option groups given, as (group, canonical name).
    pub(crate) seen: &'a [(&'static str, &'static str)],
    /// `-p` as given: (protocol, negated); `None` without `-p` or with `-p all`.
    pub(crate) proto: Option<(u8, bool)>,
    pub(crate) named: &'a Named,
}

impl Done<'_> {
    /// Whether an option of `group` was given.
    pub(crate) fn has(&self, group: &str) -> bool {
        self.seen.iter().any(|(g, _)| *g == group)
    }

    /// An error about the match as a whole.
    pub(crate) fn err(&self, message: impl Into<String>) -> RuleError {
        self.cx.err(self.col, message)
    }

    /// `message` as an error when no option at all was given.
    pub(crate) fn require_any(&self, message: &str) -> Result<(), RuleError> {
        if self.seen.is_empty() {
            Err(self.err(message))
        } else {
            Ok(())
        }
    }

    /// Whether the rule has a non-negated `-p` of a protocol with ports.
    pub(crate) fn port_proto(&self) -> bool {
        matches!(self.proto, Some((p, false)) if super::value::PORT_PROTOCOLS.iter().any(|(_, n)| *n == p))
    }
}

/// A match extension (`-m NAME`). The generic parser has already checked each option against
/// the extension's [`Opt`] table (negation, duplicates, conflicts) and read its values.
pub(crate) trait MatchExt {
    /// Applies one option.
    fn option(&mut self, arg: &Arg) -> Result<(), RuleError>;

    /// After the rule's last option: builds what the options imply (a compiled pattern,
    /// state shared by name). Runs for every match of the rule before any `check`.
    fn finish(&mut self, _done: &Done) -> Result<(), RuleError> {
        Ok(())
    }

    /// Mandatory options and requirements on the rest of the rule.
    fn check(&self, _done: &Done) -> Result<(), RuleError> {
        Ok(())
    }

    /// Whether the packet matches; `marks` are the marks as the traversal has left them.
    fn matches(&self, ctx: &PacketCtx, marks: &Marks) -> bool;

    /// Appends the iptables-save form (with a leading space): ` -m NAME --option value ...`.
    fn save(&self, out: &mut String);
}

/// A target being built from its options (`-j NAME ...`).
pub(crate) trait TargetExt {
    /// What the target is once built.
    type Output;

    /// How many values `opt` takes when it is one of the target's options; `None` when it is
    /// not (it may then belong to a match). An error for an option of the real target that
    /// tunfilter refuses by name.
    fn takes(&self, opt: &Tok, cx: &Cx) -> Result<Option<u8>, RuleError>;

    /// Applies one option (`!` has been refused already: target options are not negatable).
    fn option(&mut self, arg: &Arg) -> Result<(), RuleError>;

    /// After the rule's last option: the target, checked against the rule. `col` is the
    /// column of the target's name, `proto` the rule's `-p` as (protocol, negated).
    fn finish(
        self,
        cx: &Cx,
        col: usize,
        proto: Option<(u8, bool)>,
    ) -> Result<Self::Output, RuleError>;
}

/// Objects shared by name between the rules of one ruleset while it loads — `-m recent` lists,
/// `-m hashlimit` tables — as the kernel shares them within a network namespace: every rule
/// naming one gets the same `Arc`.
#[derive(Debug, Default)]
pub(crate) struct Named {
    by_name: RefCell<HashMap<(TypeId, String), Arc<dyn Any + Send + Sync>>>,
}

impl Named {
    /// The object of type `T` called `name`, made by `make` for the first rule naming it.
    pub(crate) fn get<T: Any + Send + Sync>(&self, name: &str, make: impl FnOnce() -> T) -> Arc<T> {
        let key = (TypeId::of::<T>(), name.to_string());
        let mut map = self.by_name.borrow_mut();
        // The key holds `T`'s type, so the stored object is always a `T`; a failed downcast
        // would only replace it.
        if let Some(Ok(found)) = map.get(&key).map(|a| Arc::clone(a).downcast::<T>()) {
            return found;
        }
        let made = Arc::new(make());
        map.insert(key, made.clone());
        made
    }
}

/// `PREROUTING, OUTPUT`: hooks as error messages list them.
pub(crate) fn hook_list(hooks: &[Hook]) -> String {
    let names: Vec<&str> = hooks.iter().map(|h| h.chain_name()).collect();
    names.join(", ")
}
