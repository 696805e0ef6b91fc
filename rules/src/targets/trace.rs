//! `-j TRACE`: from this rule on, the packet is traced through every later rule it hits, in
//! every table and hook ([`crate::EvalOutput::trace_steps`]); the traversal continues.
//! iptables-legacy allows TRACE only in the raw table; iptables-nft (Debian's default, whose
//! saves users bring) allows it in every table, and tracing from a later table on is well
//! defined, so it loads anywhere. It takes no options.

/// ` -j TRACE`.
pub(crate) fn save(out: &mut String) {
    out.push_str(" -j TRACE");
}
