//! Operating a member: etcd's HTTP endpoints for health, version and metrics, and the metrics'
//! exposition under etcd's names.

pub mod corruption;
pub mod exposition;
pub mod http;
mod process;
