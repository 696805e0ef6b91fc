//! l4proto (work in progress)
