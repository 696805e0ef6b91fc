//! conntrack (work in progress)
