//! Reads an etcd v3 snapshot into plain records.
pub mod bolt;
