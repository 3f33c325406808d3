//! Safety invariants, each checked as the run goes (Raft paper Figure 3), plus exactly-once.
//! A checker records what it has seen across the whole run, crashes included, so "never two
//! leaders in one term" means over the entire history, not at one instant.

use std::collections::{BTreeMap, HashMap};

use tally_raft::quorum::{self, VoteResult};
use tally_raft::{ConfState, Entry, Index, NodeId, Term};

use crate::kv::ClientId;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub property: &'static str,
    pub time_us: u64,
    pub detail: String,
}

#[derive(Default)]
pub struct Checker {
    /// Election safety: the one leader of each term.
    leaders: HashMap<Term, NodeId>,
    /// Log matching: the hash of the whole log prefix ending at each (index, term) any node
    /// persisted. Two logs with an entry of equal index and term must agree on this hash.
    prefix_hashes: HashMap<(Index, Term), u64>,
    /// State machine safety: what was applied at each index (term and payload hash).
    applied: Vec<(Term, u64)>,
    /// Leader completeness: per observer term, the highest index some node at that term knew
    /// committed, and that entry's term.
    commit_marks: BTreeMap<Term, (Index, Term)>,
    /// Exactly-once: the first log index at which each client request was applied.
    first_apply: HashMap<(ClientId, u64), Index>,
    pub violations: Vec<Violation>,
    pub now_us: u64,
}

/// FNV-1a over the entry, chained onto the previous prefix hash.
pub fn chain_hash(prev: u64, entry: &Entry) -> u64 {
    let mut h = prev ^ 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    entry.term.to_le_bytes().into_iter().for_each(&mut eat);
    entry.index.to_le_bytes().into_iter().for_each(&mut eat);
    eat(entry.kind as u8);
    entry.data.iter().copied().for_each(&mut eat);
    h
}

fn payload_hash(entry: &Entry) -> u64 {
    chain_hash(0, entry)
}

impl Checker {
    fn fail(&mut self, property: &'static str, detail: String) {
        self.violations.push(Violation { property, time_us: self.now_us, detail });
    }

    pub fn observe_leader(&mut self, term: Term, id: NodeId) {
        let leader = *self.leaders.entry(term).or_insert(id);
        if leader != id {
            self.fail("election safety", format!("nodes {leader} and {id} were both leader in term {term}"));
        }
    }

    /// Records that some node persisted `entry` whose log prefix hashes to `hash`.
    pub fn observe_persisted(&mut self, node: NodeId, entry: &Entry, hash: u64) {
        let known = *self.prefix_hashes.entry((entry.index, entry.term)).or_insert(hash);
        if known != hash {
            self.fail(
                "log matching",
                format!(
                    "node {node} holds entry ({}, term {}) after a log prefix that differs from another node's",
                    entry.index, entry.term
                ),
            );
        }
    }

    /// The prefix hash at (index, term), known because some node persisted that entry.
    pub fn prefix_hash(&self, index: Index, term: Term) -> u64 {
        if index == 0 {
            return 0;
        }
        *self.prefix_hashes.get(&(index, term)).expect("a snapshot covers only entries some node persisted")
    }

    pub fn observe_leader_truncation(&mut self, node: NodeId, term: Term, from: Index, last: Index) {
        self.fail(
            "leader append-only",
            format!("leader {node} of term {term} overwrote its log from index {from} (last was {last})"),
        );
    }

    pub fn observe_apply(&mut self, node: NodeId, entry: &Entry) {
        let digest = (entry.term, payload_hash(entry));
        let slot = entry.index as usize;
        if self.applied.len() <= slot {
            self.applied.resize(slot + 1, (0, 0));
        }
        if self.applied[slot] == (0, 0) {
            self.applied[slot] = digest;
        } else if self.applied[slot] != digest {
            let (term, _) = self.applied[slot];
            self.fail(
                "state machine safety",
                format!(
                    "node {node} applied (term {}) at index {} where another node applied term {term}",
                    entry.term, entry.index
                ),
            );
        }
    }

    /// `fresh`: the state machine treated the request as new (not a retry).
    pub fn observe_request_applied(&mut self, node: NodeId, request: (ClientId, u64), index: Index, fresh: bool) {
        let first = *self.first_apply.entry(request).or_insert(index);
        let expect_fresh = first == index;
        if fresh != expect_fresh {
            let what = if fresh { "applied again" } else { "treated as a retry the first time" };
            self.fail(
                "exactly once",
                format!("node {node}: request {request:?} at index {index} was {what} (first at {first})"),
            );
        }
    }

    /// A node at `observer_term` knows `index` (of term `entry_term`) is committed.
    pub fn observe_commit(&mut self, observer_term: Term, index: Index, entry_term: Term) {
        let mark = self.commit_marks.entry(observer_term).or_insert((index, entry_term));
        if index > mark.0 {
            *mark = (index, entry_term);
        }
    }

    /// Commit safety (leader completeness for every possible future leader): when `index` of
    /// `term` is committed, every voter that could win an election now holds it. A voter could
    /// win if the voters whose durable logs are no more up to date than its own form a quorum.
    /// `logs` gives each voter's durable (last index, last term) and whether it holds the entry.
    pub fn check_commit_safe(
        &mut self,
        conf: &ConfState,
        index: Index,
        term: Term,
        logs: &BTreeMap<NodeId, DurableLog>,
    ) {
        for &candidate in conf.all_voters().iter() {
            let Some(mine) = logs.get(&candidate) else { continue };
            if mine.holds(index, term) {
                continue;
            }
            let votes: BTreeMap<NodeId, bool> = logs
                .iter()
                .map(|(&id, log)| (id, (mine.last_term, mine.last_index) >= (log.last_term, log.last_index)))
                .collect();
            if quorum::vote_result(conf, &votes) == VoteResult::Won {
                self.fail(
                    "commit safety",
                    format!(
                        "entry ({index}, term {term}) is committed, but node {candidate} (log ends at ({}, term {})) lacks it and could be elected",
                        mine.last_index, mine.last_term
                    ),
                );
                return;
            }
        }
    }

    /// Leader completeness: a leader of `term` holds every entry committed in earlier or equal
    /// terms. `log_term` answers for the leader's log; `snapshot_index` bounds what it compacted.
    pub fn check_leader_complete(
        &mut self,
        node: NodeId,
        term: Term,
        snapshot_index: Index,
        log_term: impl Fn(Index) -> Option<Term>,
    ) {
        let Some((index, entry_term)) = self.commit_marks.range(..=term).map(|(_, &m)| m).max() else {
            return;
        };
        if index < snapshot_index {
            return;
        }
        let held = log_term(index);
        if held != Some(entry_term) {
            self.fail(
                "leader completeness",
                format!("leader {node} of term {term} holds {held:?} at committed index {index} of term {entry_term}"),
            );
        }
    }
}

/// What a node's disk says about its log, for the commit-safety check.
pub struct DurableLog {
    pub snapshot_index: Index,
    pub last_index: Index,
    pub last_term: Term,
    /// Terms of the entries after the snapshot.
    pub terms: Vec<Term>,
}

impl DurableLog {
    pub fn holds(&self, index: Index, term: Term) -> bool {
        if index <= self.snapshot_index {
            // Snapshots hold only committed entries; state machine safety checks they agree.
            return true;
        }
        self.terms.get((index - self.snapshot_index - 1) as usize) == Some(&term)
    }
}
