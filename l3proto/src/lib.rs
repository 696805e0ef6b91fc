//! l3proto (work in progress)
