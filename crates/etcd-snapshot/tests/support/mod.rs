//! A real etcd member for the tests, and the history they write into it.

pub mod etcd;
pub mod history;
mod ports;
