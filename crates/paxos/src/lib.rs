//! Tally's Paxos, sans-IO like `tally-raft`: no threads, clocks, sockets, files or global
//! randomness. The driver feeds it messages and ticks and carries out what it hands back.

pub mod multi;
pub mod synod;
