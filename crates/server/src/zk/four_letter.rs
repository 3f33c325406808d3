//! ZooKeeper's four-letter words: a connection whose first four bytes spell one (instead of a
//! packet length) gets a plain-text answer and is closed. All of those served here are
//! read-only, as on ZooKeeper 3.5+ where they must be allowed explicitly; Tally allows them.

use super::stats::ZkStats;
use super::watches::ZkWatches;
use crate::client::services::context::Context;

/// The words answered, as the big-endian i32 a packet length would be read as.
const WORDS: [&[u8; 4]; 6] = [b"ruok", b"isro", b"srvr", b"stat", b"mntr", b"conf"];

/// The word `header` spells, if it is one we answer.
pub fn word(header: [u8; 4]) -> Option<&'static [u8; 4]> {
    WORDS.into_iter().find(|w| **w == header)
}

/// The answer to `word`.
pub fn answer(word: &[u8; 4], ctx: &Context, watches: &ZkWatches, stats: &ZkStats, zk_port: u16) -> String {
    let role = ctx.node.shared.leader().map(|leader| leader == ctx.member_id);
    let mode = match role {
        Some(true) => "leader",
        Some(false) => "follower",
        None => "looking",
    };
    let (zxid, nodes, ephemerals, sessions) = {
        let sm = ctx.sm.read().expect("sm lock");
        let zk = &sm.zk;
        let ephemerals: usize = zk.sessions().map(|(id, _)| zk.ephemerals(id).count()).sum();
        (zk.last_zxid(), zk.node_count(), ephemerals, zk.sessions().count())
    };
    let connections = watches.connections();
    let s = stats.read();
    // Java's Double.toString, which ZooKeeper prints: "0.0", "1.5", "0.3333333333333333".
    let (min, avg, max) = (s.latency_min_ms, format!("{:?}", s.latency_avg_ms), s.latency_max_ms);
    let version = format!("3.8.0-tally-{}", env!("CARGO_PKG_VERSION"));
    match word {
        b"ruok" => "imok".into(),
        b"isro" => "rw".into(),
        b"srvr" | b"stat" => {
            let clients = if word == b"stat" { "Clients:\n\n" } else { "" };
            format!(
                "Zookeeper version: {version}\n{clients}Latency min/avg/max: {min}/{avg}/{max}\nReceived: {}\n\
                 Sent: {}\nConnections: {connections}\nOutstanding: {}\nZxid: {zxid:#x}\nMode: {mode}\n\
                 Node count: {nodes}\n",
                s.received, s.sent, s.outstanding
            )
        }
        b"mntr" => format!(
            "zk_version\t{version}\nzk_server_state\t{mode}\nzk_avg_latency\t{avg}\nzk_max_latency\t{max}\n\
             zk_min_latency\t{min}\nzk_packets_received\t{}\nzk_packets_sent\t{}\n\
             zk_num_alive_connections\t{connections}\nzk_outstanding_requests\t{}\nzk_znode_count\t{nodes}\n\
             zk_ephemerals_count\t{ephemerals}\nzk_global_sessions\t{sessions}\nzk_last_zxid\t{zxid:#x}\n",
            s.received, s.sent, s.outstanding
        ),
        _ => format!(
            "clientPort={zk_port}\nserverId={:x}\ntickTime=2000\nminSessionTimeout=4000\nmaxSessionTimeout=40000\n",
            ctx.member_id
        ),
    }
}
