//! Cluster membership as etcd keeps it in its backend (JSON, since etcd 3.5).

use serde::Deserialize;

use crate::buckets::Pairs;
use crate::error::SnapshotError;

/// A member, from the `members` bucket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub id: u64,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
    #[serde(default)]
    pub is_learner: bool,
}

/// Raft's configuration state, from the `meta` bucket's `confState` (Go's raftpb.ConfState
/// as JSON, whose empty lists are omitted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ConfState {
    #[serde(default)]
    pub voters: Vec<u64>,
    #[serde(default)]
    pub learners: Vec<u64>,
    #[serde(default)]
    pub voters_outgoing: Vec<u64>,
    #[serde(default)]
    pub learners_next: Vec<u64>,
    #[serde(default)]
    pub auto_leave: bool,
}

fn bad(bucket: &'static str, key: &[u8], reason: impl ToString) -> SnapshotError {
    SnapshotError::BadValue { bucket, key: String::from_utf8_lossy(key).into_owned(), reason: reason.to_string() }
}

pub(crate) fn read_members(pairs: &Pairs) -> Result<Vec<Member>, SnapshotError> {
    pairs.iter().map(|(key, json)| serde_json::from_slice(json).map_err(|e| bad("members", key, e))).collect()
}

/// The ids of removed members: the keys of `members_removed` (hex ids; the values just say
/// "removed").
pub(crate) fn read_removed(pairs: &Pairs) -> Result<Vec<u64>, SnapshotError> {
    let id = |key: &[u8]| std::str::from_utf8(key).ok().and_then(|s| u64::from_str_radix(s, 16).ok());
    pairs.iter().map(|(key, _)| id(key).ok_or_else(|| bad("members_removed", key, "not a hex member id"))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_members_as_etcd_3_5_writes_them() {
        let json = br#"{"id":13668033151171901709,"peerURLs":["http://127.0.0.1:23801"],"name":"e0","clientURLs":["http://127.0.0.1:23791"]}"#;
        let learner = br#"{"id":1,"peerURLs":["http://10.0.0.2:2380"],"isLearner":true}"#;
        let pairs: Pairs = vec![(b"1", learner), (b"bdae9bbc11dd390d", json)];
        let members = read_members(&pairs).unwrap();
        assert_eq!(
            members[0],
            Member {
                id: 1,
                name: String::new(),
                peer_urls: vec!["http://10.0.0.2:2380".into()],
                client_urls: vec![],
                is_learner: true
            }
        );
        assert_eq!(members[1].id, 0xbdae9bbc11dd390d);
        assert_eq!(members[1].name, "e0");
        assert_eq!(members[1].client_urls, vec!["http://127.0.0.1:23791".to_string()]);
        assert!(matches!(read_members(&vec![(b"1", b"{")]), Err(SnapshotError::BadValue { .. })));
    }

    #[test]
    fn reads_removed_member_ids() {
        let pairs: Pairs = vec![(b"a", b"removed"), (b"bdae9bbc11dd390d", b"removed")];
        assert_eq!(read_removed(&pairs).unwrap(), vec![10, 0xbdae9bbc11dd390d]);
        assert!(read_removed(&vec![(b"zz", b"removed")]).is_err());
    }
}
