//! One module per subcommand.

pub mod compact;
pub mod demo;
pub mod gc;
pub mod inspect;
pub mod verify;
