//! One member: the driver thread around the Raft core, the write-ahead log glue, the member
//! table, request ids and leases' clock, and the watch hub it publishes applied events to.

pub mod backup;
pub mod cluster;
pub mod codec;
pub mod driver;
pub mod histogram;
pub mod lease_clock;
pub mod members;
pub mod metrics;
pub mod persist;
pub mod request_ids;
pub mod simple_tokens;
pub mod watch_hub;
