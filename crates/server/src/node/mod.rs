//! One member in a server process: the driver thread running the member's `tally_node::Node`,
//! the watch hub it publishes applied events to, the simple tokens it registers, and backups.

pub mod backup;
pub mod driver;
pub mod simple_tokens;
pub mod watch_hub;
