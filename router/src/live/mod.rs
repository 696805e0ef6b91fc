//! The live driver: runs the engine on real TUN/TAP devices with the OS clock.
//!
//! The engine is sans-IO; this module is everything around it that touches the system:
//!
//! - [`device`]: creates the configured TUN/TAP devices (one queue per worker), moves them into
//!   their network namespaces and configures the kernel side there (peer addresses and routes),
//!   so that each namespace routes through tunfilter. Dropping the devices undoes all of it.
//! - [`l2`]: Ethernet, ARP and IPv6 Neighbour Discovery for TAP links (sans-IO, unit-tested):
//!   the engine never sees a frame, an ARP packet or an NS/NA.
//! - [`run`]: worker threads (one per core) that read batches of packets, hand each to the
//!   engine shard that owns its flow ([`crate::shard`]: one shard and one lock per worker),
//!   write what the shards transmit, and drive their timers from the monotonic clock;
//!   SIGINT/SIGTERM stop cleanly, SIGHUP reloads the rules.
//! - [`control`]: the Unix control socket (`ct list`, `ct events`, `rules list`, `reload`, ...)
//!   and the client side that the CLI subcommands call.
//! - [`privileges`]: once the devices are up, the switch to an unprivileged user with no
//!   capabilities, Landlock and a seccomp filter.
//!
//! ```no_run
//! use router::config::Config;
//! use router::live::{init_logging, run, RunOptions};
//!
//! init_logging(false);
//! let config = Config::load("gateway.toml".as_ref()).expect("valid config");
//! match run(config, RunOptions::default()) {
//!     Ok(code) => std::process::exit(if code == std::process::ExitCode::SUCCESS { 0 } else { 1 }),
//!     Err(e) => {
//!         eprintln!("tunfilter: {e}");
//!         std::process::exit(1)
//!     }
//! }
//! ```
#![deny(unsafe_code)]

pub mod control;
pub mod device;
mod driver;
pub mod l2;
pub mod privileges;

use std::fmt;

pub use control::{client_request, CtFilter, Request, DEFAULT_SOCKET};
pub use driver::{run, RunOptions};

/// Why the live driver could not start, or stopped with an error. Each variant's message is one
/// line meant for the operator.
#[derive(Debug)]
#[non_exhaustive]
pub enum LiveError {
    /// A device could not be created or configured.
    Device(String),
    /// The engine refused the configuration (rules, routes).
    Engine(String),
    /// The control socket could not be created, reached or understood.
    Control(String),
    /// The running tunfilter answered a control request with an error.
    Remote(String),
    /// Any other system failure during setup or operation.
    System(String),
}

impl fmt::Display for LiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LiveError::Device(m)
            | LiveError::Engine(m)
            | LiveError::Control(m)
            | LiveError::Remote(m)
            | LiveError::System(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for LiveError {}

/// Sets up structured logging to standard error: `RUST_LOG` selects what is shown (default
/// `info`), `json` switches to one JSON object per line. Calling it twice is harmless.
pub fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init: an already installed subscriber (tests, a second call) is not an error.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
