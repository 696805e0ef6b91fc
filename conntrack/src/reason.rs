//! Typed reasons: why a packet is INVALID for conntrack, why the router dropped one, why an
//! expectation or a payload rewrite was refused. Each is a closed enum whose variants carry a
//! fixed text (what `ct stats`, the simulator's `stats.txt` and the events print), declared with
//! [`reasons!`](crate::reasons) so that the variant, its documentation and its text sit on
//! one line and nothing else has to be kept in step with them.
//!
//! The [`Reason`] trait gives every reason a dense index, so counters are an array with one
//! slot per reason (counting is one add) instead of a map keyed by text.

use core::fmt;

/// A closed set of reasons with fixed texts, each with its own counter slot.
///
/// Implemented by [`reasons!`](crate::reasons); no two reasons of one type share a text,
/// so counting by slot and counting by text are the same.
pub trait Reason: Copy + Eq + fmt::Debug + fmt::Display + 'static {
    /// How many reasons the type has, wrapped ones included: the number of counter slots.
    const COUNT: usize;

    /// The reason's text.
    fn as_str(self) -> &'static str;

    /// The reason's counter slot, in `0..COUNT`.
    fn index(self) -> usize;

    /// The reason whose slot is `i`, if `i < COUNT`.
    fn from_index(i: usize) -> Option<Self>;

    /// Every reason, in slot order.
    fn all() -> impl Iterator<Item = Self> {
        (0..Self::COUNT).filter_map(Self::from_index)
    }
}

/// The first slot of the `k`-th wrapped type of a [`reasons!`](crate::reasons) enum:
/// after its own reasons and the slots of the wrapped types before it.
#[doc(hidden)]
pub const fn __wrapped_base(own: usize, wrapped: &[usize], k: usize) -> usize {
    let mut base = own;
    let mut i = 0;
    while i < k {
        base += wrapped[i];
        i += 1;
    }
    base
}

/// Declares a reason enum: fieldless variants, each with its text, and optionally, after
/// `wrapping`, variants that wrap another crate's reason enum (its texts are its own).
/// Generates `as_str` (const), `Display`, `std::error::Error`, [`Reason`] and, for each
/// wrapped type, `From`.
///
/// ```
/// conntrack::reasons! {
///     /// Why a toy parser refused its input.
///     pub enum ParseError {
///         /// Nothing to read.
///         Empty => "parse: empty",
///         /// A byte it does not know.
///         BadByte => "parse: bad byte",
///     }
/// }
/// conntrack::reasons! {
///     /// Why a toy pipeline dropped a packet.
///     pub enum Drop {
///         /// The queue was full.
///         QueueFull => "queue: full",
///     }
///     wrapping {
///         /// The parser refused it.
///         Parse(ParseError),
///     }
/// }
/// use conntrack::reason::Reason;
/// assert_eq!(Drop::from(ParseError::BadByte).as_str(), "parse: bad byte");
/// assert_eq!(Drop::COUNT, 3);
/// assert_eq!(Drop::from_index(Drop::Parse(ParseError::Empty).index()), Some(Drop::Parse(ParseError::Empty)));
/// assert_eq!(Drop::QueueFull.to_string(), "queue: full");
/// ```
#[macro_export]
macro_rules! reasons {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $var:ident => $text:literal, )*
        }
        $( wrapping {
            $( $(#[$wmeta:meta])* $wvar:ident ( $wty:ty ), )*
        } )?
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $var, )*
            $($( $(#[$wmeta])* $wvar($wty), )*)?
        }

        impl $name {
            /// The reason's text, as counters and events print it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$var => $text, )*
                    $($( $name::$wvar(r) => r.as_str(), )*)?
                }
            }

            /// The fieldless variants, in declaration order (their slots come first).
            const __OWN: &'static [$name] = &[$( $name::$var, )*];
            /// The slot counts of the wrapped types, in declaration order.
            const __WRAPPED: &'static [usize] =
                &[$($( <$wty as $crate::reason::Reason>::COUNT, )*)?];
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::error::Error for $name {}

        impl $crate::reason::Reason for $name {
            const COUNT: usize = {
                let mut n = $name::__OWN.len();
                let mut i = 0;
                while i < $name::__WRAPPED.len() {
                    n += $name::__WRAPPED[i];
                    i += 1;
                }
                n
            };

            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }

            #[inline]
            fn index(self) -> usize {
                #[allow(dead_code, non_camel_case_types, clippy::upper_case_acronyms)]
                enum __Own { $( $var, )* }
                #[allow(dead_code, non_camel_case_types, clippy::upper_case_acronyms)]
                enum __Wrapped { $($( $wvar, )*)? }
                match self {
                    $( $name::$var => __Own::$var as usize, )*
                    $($( $name::$wvar(r) => {
                        const BASE: usize = $crate::reason::__wrapped_base(
                            $name::__OWN.len(),
                            $name::__WRAPPED,
                            __Wrapped::$wvar as usize,
                        );
                        BASE + <$wty as $crate::reason::Reason>::index(r)
                    } )*)?
                }
            }

            fn from_index(i: usize) -> Option<Self> {
                if let Some(r) = $name::__OWN.get(i) {
                    return Some(*r);
                }
                #[allow(unused_mut)]
                let mut i = i - $name::__OWN.len();
                $($(
                    let n = <$wty as $crate::reason::Reason>::COUNT;
                    if i < n {
                        return <$wty as $crate::reason::Reason>::from_index(i).map($name::$wvar);
                    }
                    i -= n;
                )*)?
                let _ = i;
                None
            }
        }

        $($(
            impl ::core::convert::From<$wty> for $name {
                fn from(r: $wty) -> Self {
                    $name::$wvar(r)
                }
            }
        )*)?
    };
}

/// Checks what [`reasons!`](crate::reasons) promises of a reason type: every slot holds one
/// reason, and no two reasons share a text. For the tests of each crate that declares one.
pub fn check_reasons<R: Reason>() -> Result<(), String> {
    let mut seen = std::collections::HashMap::new();
    for i in 0..R::COUNT {
        let r = R::from_index(i).ok_or_else(|| format!("slot {i} holds no reason"))?;
        if r.index() != i {
            return Err(format!("{r:?} is in slot {i} but says {}", r.index()));
        }
        if let Some(other) = seen.insert(r.as_str(), r) {
            return Err(format!(
                "{other:?} and {r:?} share the text {:?}",
                r.as_str()
            ));
        }
    }
    if R::from_index(R::COUNT).is_some() {
        return Err(format!("a reason past the last slot ({})", R::COUNT));
    }
    Ok(())
}
