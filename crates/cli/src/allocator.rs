//! The process's memory allocator: jemalloc rather than glibc's malloc.
//!
//! A member frees the log entries a snapshot covers in bulk, and walking glibc's fragmented
//! free lists then took ~10% of the machine's CPU (the Raft drivers' `_int_malloc`) under
//! ZooKeeper writes on a large tree. mimalloc 2.3 (the mimalloc crate) fixed that but tripled
//! the etcd API's put p99 under load; jemalloc does neither (bench/HISTORY.md, 5 Dec).

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
