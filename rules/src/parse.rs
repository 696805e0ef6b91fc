//! The iptables-save / iptables-restore format parser.
//!
//! Line kinds: `*table`, `:CHAIN POLICY [pkts:bytes]`, `-N CHAIN`, `[pkts:bytes] -A CHAIN rule`,
//! `-I CHAIN [n] rule`, `COMMIT`, blank lines and `#` comments. Jump targets may name user chains
//! declared anywhere in the table section; they are resolved, and loops rejected, at `COMMIT`.
//!
//! A rule's base options (`-s -d -i -o -p -f`), negation, `-c`, `-4`/`-6` are read here; so is
//! the generic part of extensions: `-m NAME` loads the entry of `matches::MODULES`, `-j NAME`
//! that of `targets::TARGETS`, and any other option goes to the target first, then to the
//! loaded modules from the last one back, then to the module `-p` implies (`-p tcp --dport
//! 22`), as iptables does. Each extension's own options and checks are in its file.
//!
//! Choices where iptables is lenient or ambiguous:
//! - negation is only the modern prefix form `! -s x`; the old `-s ! x` is rejected with a hint;
//! - a table may appear once per file; `-D`, `-R`, `-F`, `-X`, `-P`, `-Z`, `-E` are rejected;
//! - option abbreviations (getopt prefixes such as `--dest`) and service names for ports are not
//!   accepted: iptables-save never prints them;
//! - `-s 0.0.0.0/0`, `-p all` and `-i +` without `!` match everything and are dropped, as
//!   iptables-save drops them;
//! - a rule with `-4` in an IPv6 file or `-6` in an IPv4 file is skipped unchecked from that
//!   option on, as iptables-restore does, so one file can serve both tools.

use std::collections::HashMap;
use std::sync::Arc;

use super::classify::{ChainIndex, TableIndex};
use super::extension::{hook_list, Arg, Cx, Done, Named};
use super::lex::{tokenize, Tok};
use super::matches::{module, module_of_proto, Iface, MatchDef};
use super::targets::{target, Builder, TARGET_NAMES};
use super::value::{parse_net, parse_proto, parse_uint, proto_name};
use super::{
    Chain, Counters, Family, Hook, LoadOptions, Match, Policy, Rule, RuleError, Ruleset, StateHead,
    Table, TableRules, Target,
};

/// Longest chain name iptables accepts (XT_EXTENSION_MAXNAMELEN minus the NUL).
const MAX_CHAIN_NAME: usize = 28;

pub(crate) fn parse(
    text: &str,
    file: &str,
    family: Family,
    options: LoadOptions,
) -> Result<Ruleset, RuleError> {
    let mut p = Parser {
        file,
        family,
        options,
        done: [None, None, None, None],
        cur: None,
        line: 0,
        named: Named::default(),
    };
    for (i, line) in text.lines().enumerate() {
        p.line = i + 1;
        p.parse_line(line)?;
    }
    if let Some(cur) = &p.cur {
        p.line = cur.header_line;
        return Err(p.err(
            1,
            format!("table {} opened here has no COMMIT", cur.table.name()),
        ));
    }
    Ok(Ruleset {
        family,
        tables: p.done,
    })
}

struct Parser<'a> {
    file: &'a str,
    family: Family,
    options: LoadOptions,
    done: [Option<TableRules>; 4],
    cur: Option<TableBuilder>,
    /// The line being parsed, for errors.
    line: usize,
    /// `-m recent` lists and `-m hashlimit` tables by name: rules naming the same one share it.
    named: Named,
}

struct TableBuilder {
    table: Table,
    header_line: usize,
    chains: Vec<ChainBuilder>,
    by_name: HashMap<String, usize>,
}

struct ChainBuilder {
    name: String,
    /// `Some` for built-in chains.
    hook: Option<Hook>,
    policy: Option<Policy>,
    declared: bool,
    counters: (u64, u64),
    rules: Vec<PendingRule>,
}

struct PendingRule {
    line: usize,
    /// Column of the target name (0 without `-j`), for errors found at COMMIT.
    target_col: usize,
    matches: Vec<Match>,
    target: PendingTarget,
    counters: (u64, u64),
}

enum PendingTarget {
    Ready(Target),
    /// `-j`/`-g` to a chain, resolved at COMMIT; `col` points at the chain name.
    Chain {
        name: String,
        goto: bool,
        col: usize,
    },
}

impl Parser<'_> {
    fn err(&self, column: usize, message: impl Into<String>) -> RuleError {
        RuleError {
            file: self.file.to_string(),
            line: self.line,
            column,
            message: message.into(),
        }
    }

    fn parse_line(&mut self, line: &str) -> Result<(), RuleError> {
        let toks = tokenize(line).map_err(|(col, msg)| self.err(col, msg))?;
        let Some(first) = toks.first() else {
            return Ok(());
        };
        if !first.quoted && first.text.starts_with('#') {
            return Ok(());
        }
        if !first.quoted && first.text.starts_with('*') {
            return self.table_header(&toks);
        }
        let Some(cur) = &self.cur else {
            return Err(self.err(
                first.col,
                format!("{} outside a table: start one with *filter", first.text),
            ));
        };
        let table = cur.table;
        if !first.quoted && first.text == "COMMIT" {
            if let Some(extra) = toks.get(1) {
                return Err(self.err(extra.col, "unexpected text after COMMIT"));
            }
            return self.commit();
        }
        if !first.quoted && first.text.starts_with(':') {
            return self.chain_decl(&toks);
        }
        let mut rest = &toks[..];
        let mut counters = None;
        if !first.quoted && first.text.starts_with('[') {
            counters = Some(self.counters(first)?);
            rest = &toks[1..];
        }
        let Some(cmd) = rest.first() else {
            return Err(self.err(first.col, "counters must be followed by -A or -I"));
        };
        match cmd.text.as_str() {
            "-A" | "--append" | "-I" | "--insert" => {
                let insert = cmd.text == "-I" || cmd.text == "--insert";
                let Some(chain_tok) = rest.get(1) else {
                    return Err(self.err(cmd.col, format!("{} needs a chain name", cmd.text)));
                };
                let Some(ci) = self.cur_chain(&chain_tok.text) else {
                    return Err(self.err(
                        chain_tok.col,
                        format!("no chain {} in table {}", chain_tok.text, table.name()),
                    ));
                };
                let mut idx = 2;
                let len = self.chain(ci).rules.len();
                let mut at = len;
                if insert {
                    at = 0;
                    if let Some(n) = rest.get(2).filter(|t| !t.quoted && is_number(&t.text)) {
                        let pos = parse_uint(&n.text, u64::MAX)
                            .ok()
                            .filter(|&p| p >= 1 && p <= len as u64 + 1)
                            .ok_or_else(|| {
                                self.err(
                                    n.col,
                                    format!(
                                        "insert position {} out of range (chain {} has {len} rules)",
                                        n.text, chain_tok.text
                                    ),
                                )
                            })?;
                        at = pos as usize - 1;
                        idx = 3;
                    }
                }
                let hook = self.chain(ci).hook;
                let Some(mut rule) = RuleParser::new(self, table, hook, &rest[idx..]).parse()?
                else {
                    return Ok(());
                };
                if let Some(c) = counters {
                    rule.counters = c;
                }
                if !self.options.counters {
                    rule.counters = (0, 0);
                }
                self.chain_mut(ci).rules.insert(at, rule);
                Ok(())
            }
            "-N" | "--new-chain" | "--new" => {
                if counters.is_some() {
                    return Err(self.err(cmd.col, "counters must be followed by -A or -I"));
                }
                let Some(name) = rest.get(1) else {
                    return Err(self.err(cmd.col, "-N needs a chain name"));
                };
                if let Some(extra) = rest.get(2) {
                    return Err(self.err(extra.col, "unexpected text after the chain name"));
                }
                self.new_user_chain(name)
            }
            "-D" | "--delete" | "-R" | "--replace" | "-F" | "--flush" | "-X" | "--delete-chain"
            | "-P" | "--policy" | "-Z" | "--zero" | "-E" | "--rename-chain" | "-L" | "--list"
            | "-S" | "--list-rules" => Err(self.err(
                cmd.col,
                format!(
                    "command {} is not supported in a ruleset file (only -N, -A, -I)",
                    cmd.text
                ),
            )),
            "-t" | "--table" => Err(self.err(
                cmd.col,
                "-t is not allowed in a ruleset file: use *table sections",
            )),
            other => Err(self.err(
                cmd.col,
                format!("unexpected {other}: expected -A, -I or -N"),
            )),
        }
    }

    fn cur_chain(&self, name: &str) -> Option<usize> {
        self.cur.as_ref()?.by_name.get(name).copied()
    }

    fn chain(&self, i: usize) -> &ChainBuilder {
        // `i` comes from `cur_chain`, so `cur` exists and holds it.
        &self.cur.as_ref().expect("a table is open").chains[i]
    }

    fn chain_mut(&mut self, i: usize) -> &mut ChainBuilder {
        &mut self.cur.as_mut().expect("a table is open").chains[i]
    }

    fn counters(&self, tok: &Tok) -> Result<(u64, u64), RuleError> {
        let bad = || {
            self.err(
                tok.col,
                format!("bad counters {} (expected [packets:bytes])", tok.text),
            )
        };
        let inner = tok
            .text
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .ok_or_else(bad)?;
        let (p, b) = inner.split_once(':').ok_or_else(bad)?;
        let p = parse_uint(p, u64::MAX).map_err(|_| bad())?;
        let b = parse_uint(b, u64::MAX).map_err(|_| bad())?;
        Ok((p, b))
    }

    fn table_header(&mut self, toks: &[Tok]) -> Result<(), RuleError> {
        let tok = &toks[0];
        if let Some(cur) = &self.cur {
            return Err(self.err(
                tok.col,
                format!(
                    "{} starts before COMMIT of table {} (line {})",
                    tok.text,
                    cur.table.name(),
                    cur.header_line
                ),
            ));
        }
        if let Some(extra) = toks.get(1) {
            return Err(self.err(extra.col, "unexpected text after the table name"));
        }
        let name = &tok.text[1..];
        let table = Table::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| {
                self.err(
                    tok.col,
                    format!("unsupported table {name} (raw, mangle, nat or filter)"),
                )
            })?;
        if self.done[table.index()].is_some() {
            return Err(self.err(tok.col, format!("table {name} appears twice")));
        }
        let mut b = TableBuilder {
            table,
            header_line: self.line,
            chains: Vec::new(),
            by_name: HashMap::new(),
        };
        for &hook in table.hooks() {
            b.by_name
                .insert(hook.chain_name().to_string(), b.chains.len());
            b.chains.push(ChainBuilder {
                name: hook.chain_name().to_string(),
                hook: Some(hook),
                policy: Some(Policy::Accept),
                declared: false,
                counters: (0, 0),
                rules: Vec::new(),
            });
        }
        self.cur = Some(b);
        Ok(())
    }

    fn chain_decl(&mut self, toks: &[Tok]) -> Result<(), RuleError> {
        let tok = &toks[0];
        let name = &tok.text[1..];
        let Some(policy_tok) = toks.get(1) else {
            return Err(self.err(
                tok.col,
                format!("chain {name} needs a policy (ACCEPT, DROP, or - for user chains)"),
            ));
        };
        let counters = match toks.get(2) {
            Some(t) => self.counters(t)?,
            None => (0, 0),
        };
        if let Some(extra) = toks.get(3) {
            return Err(self.err(extra.col, "unexpected text after the chain counters"));
        }
        let counters = if self.options.counters {
            counters
        } else {
            (0, 0)
        };
        let policy = match policy_tok.text.as_str() {
            "ACCEPT" => Some(Policy::Accept),
            "DROP" => Some(Policy::Drop),
            "-" => None,
            other => {
                return Err(self.err(
                    policy_tok.col,
                    format!("bad policy {other} (ACCEPT, DROP, or - for user chains)"),
                ))
            }
        };
        match self.cur_chain(name) {
            Some(ci) if self.chain(ci).hook.is_some() => {
                if self.chain(ci).declared {
                    return Err(self.err(tok.col, format!("chain {name} declared twice")));
                }
                let Some(policy) = policy else {
                    return Err(self.err(
                        policy_tok.col,
                        format!("built-in chain {name} needs policy ACCEPT or DROP"),
                    ));
                };
                let c = self.chain_mut(ci);
                c.declared = true;
                c.policy = Some(policy);
                c.counters = counters;
                Ok(())
            }
            _ => {
                if policy.is_some() {
                    let table = self.cur.as_ref().map_or("", |c| c.table.name());
                    return Err(self.err(
                        policy_tok.col,
                        format!(
                            "{name} is not a built-in chain of table {table}: a user chain's policy is -"
                        ),
                    ));
                }
                let name_tok = Tok {
                    text: name.to_string(),
                    col: tok.col + 1,
                    quoted: tok.quoted,
                };
                self.new_user_chain(&name_tok)?;
                if let Some(ci) = self.cur_chain(name) {
                    self.chain_mut(ci).counters = counters;
                }
                Ok(())
            }
        }
    }

    fn new_user_chain(&mut self, tok: &Tok) -> Result<(), RuleError> {
        let name = tok.text.as_str();
        if name.is_empty() || name.chars().count() > MAX_CHAIN_NAME {
            return Err(self.err(
                tok.col,
                format!("bad chain name {name:?} (1 to {MAX_CHAIN_NAME} characters)"),
            ));
        }
        if name.starts_with('-') || name.starts_with('!') || name.chars().any(char::is_whitespace) {
            return Err(self.err(tok.col, format!("bad chain name {name:?}")));
        }
        if TARGET_NAMES.contains(&name) {
            return Err(self.err(
                tok.col,
                format!("chain name {name} is the name of a target"),
            ));
        }
        if self.cur_chain(name).is_some() {
            return Err(self.err(tok.col, format!("chain {name} already exists")));
        }
        let Some(cur) = self.cur.as_mut() else {
            return Err(self.err(tok.col, "chain outside a table"));
        };
        cur.by_name.insert(name.to_string(), cur.chains.len());
        cur.chains.push(ChainBuilder {
            name: name.to_string(),
            hook: None,
            policy: None,
            declared: true,
            counters: (0, 0),
            rules: Vec::new(),
        });
        Ok(())
    }

    /// Resolves chain targets, rejects loops, and files the finished table.
    fn commit(&mut self) -> Result<(), RuleError> {
        let Some(cur) = self.cur.take() else {
            return Err(self.err(1, "COMMIT without a table"));
        };
        // Edges between chains with the location of the jump, for loop detection.
        let mut edges: Vec<Vec<(usize, usize, usize)>> = vec![Vec::new(); cur.chains.len()];
        let mut chains = Vec::with_capacity(cur.chains.len());
        for (ci, c) in cur.chains.iter().enumerate() {
            let mut rules = Vec::with_capacity(c.rules.len());
            for r in &c.rules {
                let target = match &r.target {
                    PendingTarget::Ready(t) => t.clone(),
                    PendingTarget::Chain { name, goto, col } => {
                        let err = |msg: String| RuleError {
                            file: self.file.to_string(),
                            line: r.line,
                            column: *col,
                            message: msg,
                        };
                        let to = cur.by_name.get(name.as_str()).copied().ok_or_else(|| {
                            err(format!(
                                "unknown target or chain {name} in table {}",
                                cur.table.name()
                            ))
                        })?;
                        if cur.chains[to].hook.is_some() {
                            return Err(err(format!("cannot jump to built-in chain {name}")));
                        }
                        edges[ci].push((to, r.line, *col));
                        if *goto {
                            Target::Goto(to)
                        } else {
                            Target::Jump(to)
                        }
                    }
                };
                rules.push(Rule {
                    matches: r.matches.clone(),
                    target,
                    counters: Counters::new(r.counters.0, r.counters.1),
                });
            }
            chains.push(Chain {
                name: Arc::from(c.name.as_str()),
                policy: c.policy,
                policy_counters: Counters::new(c.counters.0, c.counters.1),
                rules,
            });
        }
        if let Some((line, col, path)) = find_loop(&edges) {
            let names: Vec<&str> = path.iter().map(|&i| cur.chains[i].name.as_str()).collect();
            return Err(RuleError {
                file: self.file.to_string(),
                line,
                column: col,
                message: format!("chain loop: {}", names.join(" -> ")),
            });
        }
        if let Some(e) = self.check_target_hooks(&cur, &edges) {
            return Err(e);
        }
        let mut builtin = [None; 5];
        for (ci, c) in cur.chains.iter().enumerate() {
            if let Some(h) = c.hook {
                builtin[h.index()] = Some(ci);
            }
        }
        // Compiled here so a reload swaps rules and index together.
        let index = TableIndex {
            chains: chains.iter().map(ChainIndex::build).collect(),
        };
        let head = builtin.map(|ci| ci.and_then(|ci| chains.get(ci)).and_then(StateHead::of));
        self.done[cur.table.index()] = Some(TableRules {
            table: cur.table,
            chains,
            builtin,
            index,
            head,
        });
        Ok(())
    }
}

impl Parser<'_> {
    /// NAT targets and TCPMSS --clamp-mss-to-pmtu in user chains: every built-in chain reaching the rule (through `-j` and
    /// `-g`, the table being loop-free) must be a hook the target works in, as the kernel checks
    /// when the table is loaded. Built-in chains were checked while parsing.
    fn check_target_hooks(
        &self,
        cur: &TableBuilder,
        edges: &[Vec<(usize, usize, usize)>],
    ) -> Option<RuleError> {
        let limited = |c: &ChainBuilder| {
            c.rules
                .iter()
                .any(|r| matches!(&r.target, PendingTarget::Ready(t) if t.hook_limits().is_some()))
        };
        if !cur.chains.iter().any(|c| c.hook.is_none() && limited(c)) {
            return None;
        }
        // For each chain, the first path found from each hook (chain indices, hook's chain
        // first).
        let mut reached: Vec<Vec<(Hook, Vec<usize>)>> = vec![Vec::new(); cur.chains.len()];
        for (root, c) in cur.chains.iter().enumerate() {
            let Some(hook) = c.hook else { continue };
            let mut stack = vec![vec![root]];
            while let Some(path) = stack.pop() {
                let node = *path.last()?;
                if reached[node].iter().any(|(h, _)| *h == hook) {
                    continue;
                }
                for &(to, _, _) in edges[node].iter().rev() {
                    let mut next = path.clone();
                    next.push(to);
                    stack.push(next);
                }
                reached[node].push((hook, path));
            }
        }
        for (ci, c) in cur.chains.iter().enumerate() {
            if c.hook.is_some() {
                continue;
            }
            for r in &c.rules {
                let PendingTarget::Ready(t) = &r.target else {
                    continue;
                };
                let Some((kind, ok)) = t.hook_limits() else {
                    continue;
                };
                if let Some((hook, path)) = reached[ci].iter().find(|(h, _)| !ok.contains(h)) {
                    let names: Vec<&str> =
                        path.iter().map(|&i| cur.chains[i].name.as_str()).collect();
                    return Some(RuleError {
                        file: self.file.to_string(),
                        line: r.line,
                        column: r.target_col,
                        message: format!(
                            "target {kind} in chain {} is reached from {} ({}), but is only \
                             valid in {}",
                            c.name,
                            hook.chain_name(),
                            names.join(" -> "),
                            hook_list(ok)
                        ),
                    });
                }
            }
        }
        None
    }
}

/// Depth-first search for a cycle; returns the location of the jump closing it and the chain
/// path of the cycle (first chain repeated at the end).
fn find_loop(edges: &[Vec<(usize, usize, usize)>]) -> Option<(usize, usize, Vec<usize>)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark = vec![Mark::New; edges.len()];
    for root in 0..edges.len() {
        if mark[root] != Mark::New {
            continue;
        }
        // Iterative DFS: (chain, next edge index); `path` mirrors the stack.
        let mut stack = vec![(root, 0usize)];
        mark[root] = Mark::Active;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&(to, line, col)) = edges[node].get(*next) {
                *next += 1;
                match mark[to] {
                    Mark::Active => {
                        let start = stack.iter().position(|&(n, _)| n == to).unwrap_or(0);
                        let mut path: Vec<usize> = stack[start..].iter().map(|&(n, _)| n).collect();
                        path.push(to);
                        return Some((line, col, path));
                    }
                    Mark::New => {
                        mark[to] = Mark::Active;
                        stack.push((to, 0));
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    None
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A `-m` module being filled by its options.
struct ModInst {
    def: &'static MatchDef,
    /// Column of the module name (or of the first option for implicit `-p tcp --dport`).
    col: usize,
    m: Match,
    /// Options given so far as (exclusive group, canonical name), for duplicate, conflict and
    /// mandatory checks.
    seen: Vec<(&'static str, &'static str)>,
}

/// The rule's target while its options are read.
enum TargetSpec {
    /// A target of `targets/`.
    Ext(Builder),
    /// `-j`/`-g` to a user chain, resolved at COMMIT.
    Chain { name: String, goto: bool },
}

/// Parses the options of one rule.
struct RuleParser<'p, 't> {
    p: &'p Parser<'p>,
    cx: Cx<'p>,
    toks: &'t [Tok],
    i: usize,
    /// Base matches by rank (see `Match::base_rank`): -s -d -i -o -p -f.
    base: [Option<Match>; 6],
    /// Which base options were given (a dropped catch-all like `-s 0.0.0.0/0` still counts).
    base_seen: [bool; 6],
    /// `-p` as given: (protocol, negated).
    proto: Option<(u8, bool)>,
    mods: Vec<ModInst>,
    /// The target with the column of its name.
    target: Option<(TargetSpec, usize)>,
    counters: (u64, u64),
}

impl<'p, 't> RuleParser<'p, 't> {
    fn new(p: &'p Parser<'p>, table: Table, hook: Option<Hook>, toks: &'t [Tok]) -> Self {
        RuleParser {
            p,
            cx: Cx {
                file: p.file,
                line: p.line,
                family: p.family,
                table,
                hook,
            },
            toks,
            i: 0,
            base: Default::default(),
            base_seen: [false; 6],
            proto: None,
            mods: Vec::new(),
            target: None,
            counters: (0, 0),
        }
    }

    fn err(&self, col: usize, msg: impl Into<String>) -> RuleError {
        self.cx.err(col, msg)
    }

    /// The rule, or `None` when `-4`/`-6` names the other family (iptables-restore skips it).
    fn parse(mut self) -> Result<Option<PendingRule>, RuleError> {
        let mut not: Option<usize> = None;
        while let Some(tok) = self.toks.get(self.i) {
            self.i += 1;
            if !tok.quoted && tok.text == "!" {
                if let Some(prev) = not {
                    return Err(self.err(prev, "! given twice"));
                }
                not = Some(tok.col);
                continue;
            }
            if tok.quoted || !tok.text.starts_with('-') || tok.text.len() < 2 {
                return Err(self.err(tok.col, format!("unexpected argument {}", tok.text)));
            }
            if !tok.quoted && matches!(tok.text.as_str(), "-4" | "--ipv4" | "-6" | "--ipv6") {
                self.no_not(not.take(), &tok.text)?;
                let wants = if tok.text.contains('4') {
                    Family::V4
                } else {
                    Family::V6
                };
                if wants != self.cx.family {
                    // Like iptables-restore: the rest of the rule is meant for the other
                    // family's tool, so it is neither checked nor loaded.
                    return Ok(None);
                }
                continue;
            }
            self.option(tok, not.take())?;
        }
        if let Some(col) = not {
            return Err(self.err(col, "! at the end of the rule negates nothing"));
        }
        self.finish().map(Some)
    }

    /// The value of `opt` (the next token).
    fn value(&mut self, opt: &Tok) -> Result<&'t Tok, RuleError> {
        let Some(v) = self.toks.get(self.i) else {
            return Err(self.err(opt.col, format!("option {} needs a value", opt.text)));
        };
        if !v.quoted && v.text == "!" {
            return Err(self.err(
                v.col,
                format!(
                    "the old `{} ! value` form is not supported: write `! {} value`",
                    opt.text, opt.text
                ),
            ));
        }
        self.i += 1;
        Ok(v)
    }

    /// The `n` values of `opt`.
    fn values(&mut self, opt: &Tok, n: u8) -> Result<Vec<&'t Tok>, RuleError> {
        (0..n).map(|_| self.value(opt)).collect()
    }

    fn no_not(&self, not: Option<usize>, what: &str) -> Result<(), RuleError> {
        match not {
            Some(col) => Err(self.err(col, format!("{what} cannot be negated"))),
            None => Ok(()),
        }
    }

    fn set_base(&mut self, rank: usize, opt: &Tok, m: Option<Match>) -> Result<(), RuleError> {
        if self.base_seen[rank] {
            return Err(self.err(opt.col, format!("{} given twice", opt.text)));
        }
        self.base_seen[rank] = true;
        self.base[rank] = m;
        Ok(())
    }

    fn option(&mut self, opt: &'t Tok, not: Option<usize>) -> Result<(), RuleError> {
        let inv = not.is_some();
        let family = self.cx.family;
        match opt.text.as_str() {
            "-s" | "--source" | "--src" | "-d" | "--destination" | "--dst" => {
                let v = self.value(opt)?;
                let net = parse_net(&v.text, family).map_err(|e| self.err(v.col, e))?;
                let src = matches!(opt.text.as_str(), "-s" | "--source" | "--src");
                let m = (inv || !net.is_any()).then_some(if src {
                    Match::Src { net, invert: inv }
                } else {
                    Match::Dst { net, invert: inv }
                });
                self.set_base(if src { 0 } else { 1 }, opt, m)
            }
            "-i" | "--in-interface" | "-o" | "--out-interface" => {
                let v = self.value(opt)?;
                let iface = Iface::parse(&v.text).map_err(|e| self.err(v.col, e))?;
                let input = matches!(opt.text.as_str(), "-i" | "--in-interface");
                if let Some(h) = self.cx.hook {
                    let bad = if input {
                        matches!(h, Hook::Output | Hook::Postrouting)
                    } else {
                        matches!(h, Hook::Prerouting | Hook::Input)
                    };
                    if bad {
                        return Err(self.err(
                            opt.col,
                            format!(
                                "{} cannot be used in {} (no such interface there)",
                                opt.text, h
                            ),
                        ));
                    }
                }
                let any = iface.wildcard && iface.name.is_empty();
                let m = (inv || !any).then_some(if input {
                    Match::InIface { iface, invert: inv }
                } else {
                    Match::OutIface { iface, invert: inv }
                });
                self.set_base(if input { 2 } else { 3 }, opt, m)
            }
            "-p" | "--protocol" => {
                let v = self.value(opt)?;
                let proto = parse_proto(&v.text).map_err(|e| self.err(v.col, e))?;
                if proto == 0 && inv {
                    return Err(self.err(v.col, "! -p all would never match"));
                }
                self.proto = (proto != 0).then_some((proto, inv));
                let m = (proto != 0).then_some(Match::Proto { proto, invert: inv });
                self.set_base(4, opt, m)
            }
            "-f" | "--fragment" => {
                if family == Family::V6 {
                    return Err(self.err(opt.col, "-f is IPv4 only (ip6tables uses -m frag)"));
                }
                self.set_base(5, opt, Some(Match::Fragment { invert: inv }))
            }
            "-m" | "--match" => {
                self.no_not(not, "-m")?;
                let v = self.value(opt)?;
                self.load_module(v)
            }
            "-j" | "--jump" | "-g" | "--goto" => {
                let goto = matches!(opt.text.as_str(), "-g" | "--goto");
                self.no_not(not, &opt.text)?;
                let v = self.value(opt)?;
                if self.target.is_some() {
                    return Err(self.err(opt.col, "more than one target (-j or -g)"));
                }
                let t = if goto {
                    if TARGET_NAMES.contains(&v.text.as_str()) {
                        return Err(self.err(
                            v.col,
                            format!("-g needs a user chain, not the target {}", v.text),
                        ));
                    }
                    TargetSpec::Chain {
                        name: v.text.clone(),
                        goto: true,
                    }
                } else {
                    self.target_by_name(v)?
                };
                self.target = Some((t, v.col));
                Ok(())
            }
            "-c" | "--set-counters" => {
                self.no_not(not, &opt.text)?;
                let p = self.value(opt)?;
                let b = self.value(opt)?;
                let num = |t: &Tok| {
                    parse_uint(&t.text, u64::MAX)
                        .map_err(|_| self.err(t.col, format!("bad counter {}", t.text)))
                };
                self.counters = (num(p)?, num(b)?);
                Ok(())
            }
            _ => self.extension_option(opt, not),
        }
    }

    /// Options of the target and of loaded modules, loading the protocol's module implicitly
    /// (`-p tcp --dport 22`) as iptables does.
    fn extension_option(&mut self, opt: &'t Tok, not: Option<usize>) -> Result<(), RuleError> {
        if self.target_option(opt, not)? {
            return Ok(());
        }
        for k in (0..self.mods.len()).rev() {
            if self.module_option(k, opt, not)? {
                return Ok(());
            }
        }
        if let Some((proto, false)) = self.proto {
            if let Some(def) = module_of_proto(proto, self.cx.family) {
                if !self.mods.iter().any(|m| m.def.name == def.name) {
                    self.push_module(def, opt.col);
                    let k = self.mods.len() - 1;
                    if self.module_option(k, opt, not)? {
                        return Ok(());
                    }
                    self.mods.pop();
                }
            }
        }
        let hint = match opt.text.as_str() {
            "--sport" | "--dport" | "--source-port" | "--destination-port" => {
                format!(
                    "{} needs -p tcp, udp, udplite, sctp or dccp before it",
                    opt.text
                )
            }
            "--icmp-type" => "--icmp-type needs -p icmp before it".to_string(),
            "--icmpv6-type" => "--icmpv6-type needs -p ipv6-icmp before it".to_string(),
            "--state" => "--state needs -m state before it".to_string(),
            "--ctstate" => "--ctstate needs -m conntrack before it".to_string(),
            "--comment" => "--comment needs -m comment before it".to_string(),
            other => format!("unknown or unsupported option {other}"),
        };
        Err(self.err(opt.col, hint))
    }

    /// `-m NAME`.
    fn load_module(&mut self, v: &Tok) -> Result<(), RuleError> {
        let Some(def) = module(&v.text) else {
            return Err(self.err(v.col, format!("unsupported match module {}", v.text)));
        };
        if let Some((family, msg)) = def.only {
            if family != self.cx.family {
                return Err(self.err(v.col, msg));
            }
        }
        self.push_module(def, v.col);
        Ok(())
    }

    fn push_module(&mut self, def: &'static MatchDef, col: usize) {
        self.mods.push(ModInst {
            def,
            col,
            m: (def.new)(self.cx.family),
            seen: Vec::new(),
        });
    }

    /// Handles `opt` if module `k` knows it; `Ok(false)` when it does not.
    fn module_option(
        &mut self,
        k: usize,
        opt: &'t Tok,
        not: Option<usize>,
    ) -> Result<bool, RuleError> {
        let def = self.mods[k].def;
        let Some(o) = def.option(&opt.text) else {
            if (def.refuses)(&opt.text) {
                return Err(self.err(opt.col, format!("option {} is not supported", opt.text)));
            }
            return Ok(false);
        };
        let name = o.name();
        if let Some(col) = not.filter(|_| !o.negatable) {
            return Err(self.err(col, format!("{} cannot be negated", opt.text)));
        }
        if let Some(&(_, earlier)) = self.mods[k].seen.iter().find(|(g, _)| *g == o.group) {
            return Err(self.err(
                opt.col,
                if earlier == name {
                    format!("{} given twice", opt.text)
                } else {
                    format!("{} cannot be combined with {earlier}", opt.text)
                },
            ));
        }
        self.mods[k].seen.push((o.group, name));
        let vals = self.values(opt, o.args)?;
        let arg = Arg {
            name,
            invert: not.is_some(),
            opt,
            vals: &vals,
            cx: self.cx,
        };
        self.mods[k].m.option(&arg)?;
        Ok(true)
    }

    /// `-j NAME`: a target of `targets/` (checked against the table here), else a chain.
    fn target_by_name(&self, v: &Tok) -> Result<TargetSpec, RuleError> {
        let name = v.text.as_str();
        if let Some(def) = target(name) {
            if let Some(table) = def.table.filter(|t| *t != self.cx.table) {
                return Err(self.err(
                    v.col,
                    format!(
                        "target {name} is only valid in the {} table, not {}",
                        table.name(),
                        self.cx.table.name()
                    ),
                ));
            }
            return (def.start)(&self.cx, v.col).map(TargetSpec::Ext);
        }
        if TARGET_NAMES.contains(&name) {
            return Err(self.err(v.col, format!("target {name} is not supported")));
        }
        Ok(TargetSpec::Chain {
            name: name.to_string(),
            goto: false,
        })
    }

    /// Handles `opt` if the target knows it; `Ok(false)` when it does not.
    fn target_option(&mut self, opt: &'t Tok, not: Option<usize>) -> Result<bool, RuleError> {
        let Some((TargetSpec::Ext(b), _)) = &self.target else {
            return Ok(false);
        };
        let Some(args) = b.takes(opt, &self.cx)? else {
            return Ok(false);
        };
        self.no_not(not, &opt.text)?;
        let vals = self.values(opt, args)?;
        let arg = Arg {
            name: &opt.text,
            invert: false,
            opt,
            vals: &vals,
            cx: self.cx,
        };
        if let Some((TargetSpec::Ext(b), _)) = &mut self.target {
            b.option(&arg)?;
        }
        Ok(true)
    }

    /// Cross-option checks, then the rule in canonical order.
    fn finish(mut self) -> Result<PendingRule, RuleError> {
        let (cx, proto, named) = (self.cx, self.proto, &self.p.named);
        let done = |col: usize| Done {
            cx,
            col,
            seen: &[],
            proto,
            named,
        };
        // Every match builds what its options imply before any is checked.
        for m in &mut self.mods {
            let d = Done {
                seen: &m.seen,
                ..done(m.col)
            };
            m.m.finish(&d)?;
        }
        for m in &self.mods {
            m.m.check(&Done {
                seen: &m.seen,
                ..done(m.col)
            })?;
            if let Some(need) = m.def.proto.filter(|&p| proto != Some((p, false))) {
                return Err(self.err(
                    m.col,
                    format!(
                        "match {} needs -p {} (not negated)",
                        m.def.name,
                        proto_name(need)
                    ),
                ));
            }
        }
        let target_col = self.target.as_ref().map_or(0, |t| t.1);
        let target = match self.target {
            None => PendingTarget::Ready(Target::Continue),
            Some((TargetSpec::Chain { name, goto }, col)) => {
                PendingTarget::Chain { name, goto, col }
            }
            Some((TargetSpec::Ext(b), col)) => PendingTarget::Ready(b.finish(&cx, col, proto)?),
        };
        let mut matches: Vec<Match> = self.base.into_iter().flatten().collect();
        matches.extend(self.mods.into_iter().map(|m| m.m));
        Ok(PendingRule {
            line: cx.line,
            target_col,
            matches,
            target,
            counters: self.counters,
        })
    }
}
