//! ZooKeeper's four-letter words: a connection whose first four bytes spell one (instead of a
//! packet length) gets a plain-text answer and is closed. All of those served here are
//! read-only, as on ZooKeeper 3.5+ where they must be allowed explicitly; Tally allows them.

use super::watches::ZkWatches;
use crate::client::services::context::Context;

/// The words answered, as the big-endian i32 a packet length would be read as.
const WORDS: [&[u8; 4]; 6] = [b"ruok", b"isro", b"srvr", b"stat", b"mntr", b"conf"];

/// The word `header` spells, if it is one we answer.
pub fn word(header: [u8; 4]) -> Option<&'static [u8; 4]> {
    WORDS.into_iter().find(|w| **w == header)
}

/// The answer to `word`.
pub fn answer(word: &[u8; 4], ctx: &Context, watches: &ZkWatches, zk_port: u16) -> String {
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
    let version = format!("3.8.0-tally-{}", env!("CARGO_PKG_VERSION"));
    match word {
        b"ruok" => "imok".into(),
        b"isro" => "rw".into(),
        b"srvr" | b"stat" => {
            let clients = if word == b"stat" { "Clients:\n\n" } else { "" };
            format!(
                "Zookeeper version: {version}\n{clients}Latency min/avg/max: 0/0.0/0\nReceived: 0\nSent: 0\n\
                 Connections: {connections}\nOutstanding: 0\nZxid: {zxid:#x}\nMode: {mode}\nNode count: {nodes}\n"
            )
        }
        b"mntr" => format!(
            "zk_version\t{version}\nzk_server_state\t{mode}\nzk_num_alive_connections\t{connections}\n\
             zk_outstanding_requests\t0\nzk_znode_count\t{nodes}\nzk_ephemerals_count\t{ephemerals}\n\
             zk_global_sessions\t{sessions}\nzk_last_zxid\t{zxid:#x}\n"
        ),
        _ => format!(
            "clientPort={zk_port}\nserverId={:x}\ntickTime=2000\nminSessionTimeout=4000\nmaxSessionTimeout=40000\n",
            ctx.member_id
        ),
    }
}
