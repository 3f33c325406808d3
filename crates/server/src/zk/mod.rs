//! ZooKeeper's client protocol (`--listen-zk-urls`), over the same log and state machine as
//! the etcd API: each connection is a task reading length-prefixed jute frames. Writes become
//! `ZkCommand`s in the Raft log (their zxid is the entry's index); reads are answered from this
//! member's copy of the tree, as a ZooKeeper server answers from its own; `sync` waits for a
//! ReadIndex. A connection's writes are pipelined (`pipeline.rs`): proposed as they are read,
//! in the order sent; its other requests wait for the writes before them; replies go out in
//! request order: ZooKeeper's FIFO guarantee for a session.
//!
//! Connections are served by threads of their own, as ZooKeeper's are (`io_threads.rs`).
//!
//! Watches, one-shot and persistent (`watches/`), are fired as this member applies the
//! changes. Sessions live while their clients are heard from on any member: each connection
//! tells the node, which tells the leader, whose session clock closes a silent session through
//! the log (`tally_node`'s `zk_sessions.rs`). The four-letter words ruok, isro, srvr, stat,
//! mntr and conf are answered (`four_letter.rs`), with the counters of `stats.rs`.

mod connection;
mod four_letter;
mod frames;
mod handshake;
mod io_threads;
mod pipeline;
mod requests;
mod stats;
pub mod watches;

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::client::services::context::Context;
use io_threads::IoThreads;
use stats::ZkStats;
use watches::ZkWatches;

/// The clock of ZooKeeper's ctime and mtime: the proposing member's, as in ZooKeeper.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Serves ZooKeeper clients on `listener` until the process ends: connections are accepted
/// here and served by threads of their own (`io_threads.rs`).
pub fn serve(
    listener: TcpListener,
    ctx: Arc<Context>,
    watches: Arc<ZkWatches>,
) -> std::io::Result<impl std::future::Future<Output = ()>> {
    let stats = Arc::new(ZkStats::default());
    let mut threads = IoThreads::start(io_threads::default_count(), ctx, watches, stats)?;
    Ok(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => threads.serve(stream),
                // Out of file descriptors, say: try again shortly.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
    })
}
