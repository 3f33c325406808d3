//! Partitions, as the set of cut one-way links between simulated nodes: what both simulators
//! draw when they partition a cluster.

use std::collections::BTreeSet;

use tally_raft::NodeId;

use crate::rng::Rng;

/// Cut links, (from, to).
pub type Cuts = BTreeSet<(NodeId, NodeId)>;

/// Cuts `node` off from every other node of `ids`, both ways.
pub fn isolate(cuts: &mut Cuts, node: NodeId, ids: &[NodeId]) {
    for &other in ids {
        if other != node {
            cuts.insert((node, other));
            cuts.insert((other, node));
        }
    }
}

/// Draws a random side of `ids` (each node on it with probability 1/2).
pub fn draw_side(rng: &mut Rng, ids: &[NodeId]) -> BTreeSet<NodeId> {
    ids.iter().copied().filter(|_| rng.chance(0.5)).collect()
}

/// Cuts every link between `side` and the rest of `ids`, both ways.
pub fn split(cuts: &mut Cuts, side: &BTreeSet<NodeId>, ids: &[NodeId]) {
    for &a in ids {
        for &b in ids {
            if side.contains(&a) != side.contains(&b) {
                cuts.insert((a, b));
            }
        }
    }
}
