//! Cluster identity from etcd-style flags: member ids derived from peer URLs and the cluster
//! token, so every member computes the same ids without talking to the others.

use std::collections::BTreeMap;
use std::fmt;

use tally_raft::NodeId;

/// A member as the initial-cluster flag describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: NodeId,
    pub name: String,
    pub peer_urls: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSpec {
    pub cluster_id: u64,
    /// By id.
    pub members: BTreeMap<NodeId, Member>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SpecError {
    Malformed(String),
    DuplicateName(String),
    UnknownName(String),
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::Malformed(part) => {
                write!(f, "--initial-cluster: expected name=url[,name=url...], got {part:?}")
            }
            SpecError::DuplicateName(name) => write!(f, "--initial-cluster names member {name:?} twice"),
            SpecError::UnknownName(name) => write!(f, "--name {name:?} is not in --initial-cluster"),
        }
    }
}

impl std::error::Error for SpecError {}

/// FNV-1a: stable across builds and platforms, unlike std's hasher.
fn fnv64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h.max(1)
}

/// etcd derives a member id from its peer URLs and the cluster token; so do we (with our own
/// hash), so the same flags always give the same ids.
pub fn member_id(token: &str, peer_urls: &[String]) -> NodeId {
    let mut urls: Vec<&[u8]> = peer_urls.iter().map(|u| u.as_bytes()).collect();
    urls.sort();
    let mut parts = vec![token.as_bytes()];
    parts.extend(urls);
    fnv64(&parts)
}

impl ClusterSpec {
    /// Parses `n1=http://a:2380,n2=http://b:2380` (a name may repeat for several URLs).
    pub fn parse(initial_cluster: &str, token: &str) -> Result<Self, SpecError> {
        let mut urls_by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut order = Vec::new();
        for part in initial_cluster.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, url) = part.split_once('=').ok_or_else(|| SpecError::Malformed(part.to_string()))?;
            if name.is_empty() || url.is_empty() {
                return Err(SpecError::Malformed(part.to_string()));
            }
            if !urls_by_name.contains_key(name) {
                order.push(name.to_string());
            }
            urls_by_name.entry(name.to_string()).or_default().push(url.to_string());
        }
        if urls_by_name.is_empty() {
            return Err(SpecError::Malformed(initial_cluster.to_string()));
        }
        let mut members = BTreeMap::new();
        for name in order {
            let peer_urls = urls_by_name.remove(&name).expect("collected");
            let id = member_id(token, &peer_urls);
            if members.insert(id, Member { id, name: name.clone(), peer_urls }).is_some() {
                return Err(SpecError::DuplicateName(name));
            }
        }
        // From the token alone: a member that joins later (with a longer --initial-cluster)
        // must compute the same cluster id as the founders.
        Ok(Self { cluster_id: fnv64(&[token.as_bytes(), b"cluster"]), members })
    }

    pub fn id_of(&self, name: &str) -> Result<NodeId, SpecError> {
        self.members.values().find(|m| m.name == name).map(|m| m.id).ok_or_else(|| SpecError::UnknownName(name.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_member_derives_the_same_ids() {
        let flag = "n1=http://127.0.0.1:2380,n2=http://127.0.0.1:22380,n3=http://127.0.0.1:32380";
        let a = ClusterSpec::parse(flag, "tally").unwrap();
        let b = ClusterSpec::parse(flag, "tally").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.members.len(), 3);
        let n2 = a.id_of("n2").unwrap();
        assert_eq!(a.members[&n2].peer_urls, vec!["http://127.0.0.1:22380"]);
        let other = ClusterSpec::parse(flag, "another-token").unwrap();
        assert_ne!(other.cluster_id, a.cluster_id, "the token separates clusters");
    }

    #[test]
    fn bad_flags_are_explained() {
        assert_eq!(ClusterSpec::parse("n1", "t"), Err(SpecError::Malformed("n1".into())));
        let spec = ClusterSpec::parse("n1=http://a:1", "t").unwrap();
        assert_eq!(spec.id_of("n9"), Err(SpecError::UnknownName("n9".into())));
        let dup = ClusterSpec::parse("n1=http://a:1,n2=http://a:1", "t");
        assert_eq!(dup, Err(SpecError::DuplicateName("n2".into())));
    }
}
