//! router (work in progress)
