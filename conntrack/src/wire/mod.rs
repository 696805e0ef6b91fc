//! Checked zero-copy packet views (owned by the wire-views work in progress).
