//! Each walker on messages built by hand.
use super::*;
