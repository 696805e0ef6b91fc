//! The PER reader's primitives.
use super::*;
