//! A ZooKeeper connection's pipelined writes apply in the order sent, with no gap: on every
//! member, the writes of one connection (client id) that apply fresh have sequence numbers
//! rising by one in log order, the first being 1; none applies after a later one or across a
//! missing one (the state machine refuses those, `out_of_order`). A write the client saw
//! answered as applied is among the writes that applied. No write applies twice on a member,
//! also under the new client id its writes in flight take when they start over. And no write
//! from a connection changes the tree after its session was attached on another (ZooKeeper's
//! SessionMoved).

use std::collections::{BTreeMap, BTreeSet};

use tally_raft::NodeId;

use super::Violation;

/// What one member applied, in order, as far as this check cares.
#[derive(Clone, Copy, Debug)]
pub enum Applied {
    /// A pipelined write of connection `client_id` applied fresh.
    Write { client_id: u64, seq: u64 },
    /// Session `session` was attached on connection `owner`.
    Attached { session: i64, owner: u64 },
    /// A write that came on connection `owner` changed `session`'s tree.
    Changed { session: i64, owner: u64 },
    /// A write was refused: its session had moved to another connection.
    RefusedAsMoved,
    /// The state machine was replaced by a leader's snapshot.
    Restored,
}

const PROPERTY: &str = "a connection's pipelined writes apply in order, without a gap";
const MOVED: &str = "no write from a connection applies after its session moved to another";
const TWICE: &str = "a pipelined write applies once";

#[derive(Default)]
struct Member {
    incarnation: u64,
    /// Per connection, the last sequence number applied.
    last: BTreeMap<u64, u64>,
    /// Per session, the connection it was last attached on.
    owners: BTreeMap<i64, u64>,
    /// The writes applied, by their first (client id, seq): the one they applied as. (One
    /// applied twice as the same is out of order, caught above.)
    writes: BTreeMap<(u64, u64), (u64, u64)>,
}

#[derive(Default)]
pub struct ZkPipelines {
    /// Per connection: the sequence numbers any member applied fresh.
    applied: BTreeMap<u64, BTreeSet<u64>>,
    /// Per member, since it started or restored a snapshot (what came before is unknown).
    members: BTreeMap<NodeId, Member>,
    /// A write that started over: its (client id, seq) then, by the one it had first.
    first_identity: BTreeMap<(u64, u64), (u64, u64)>,
    pub writes_applied: u64,
    pub acknowledged: u64,
    /// Writes refused as SessionMoved (counted per member).
    pub refused_as_moved: u64,
}

impl ZkPipelines {
    pub fn observe(
        &mut self,
        member: NodeId,
        incarnation: u64,
        applied: &[Applied],
        now_us: u64,
        violations: &mut Vec<Violation>,
    ) {
        let m = self.members.entry(member).or_default();
        if m.incarnation != incarnation {
            *m = Member { incarnation, ..Member::default() };
        }
        for a in applied {
            match *a {
                Applied::Restored => *m = Member { incarnation, ..Member::default() },
                Applied::RefusedAsMoved => self.refused_as_moved += 1,
                Applied::Attached { session, owner } => {
                    m.owners.insert(session, owner);
                }
                Applied::Changed { session, owner } => {
                    if let Some(&current) = m.owners.get(&session).filter(|&&o| o != owner) {
                        let detail = format!(
                            "member {member} applied a write of session {session:#x} from connection {owner:#x}, \
after the session attached on {current:#x}"
                        );
                        violations.push(Violation { property: MOVED, time_us: now_us, detail });
                    }
                }
                Applied::Write { client_id, seq } => {
                    assert!(seq > 0, "pipelined writes are numbered from 1");
                    self.writes_applied += 1;
                    let anywhere = self.applied.entry(client_id).or_default();
                    let expected = m.last.get(&client_id).map(|&l| l + 1);
                    if expected.is_some_and(|e| e != seq) || (seq > 1 && !anywhere.contains(&(seq - 1))) {
                        let detail = format!(
                            "member {member} applied connection {client_id:#x}'s write #{seq} after #{}; applied anywhere: {:?}",
                            expected.map_or("?".to_string(), |e| (e - 1).to_string()),
                            anywhere.iter().rev().take(8).collect::<Vec<_>>()
                        );
                        violations.push(Violation { property: PROPERTY, time_us: now_us, detail });
                    }
                    m.last.insert(client_id, seq);
                    anywhere.insert(seq);
                    let first = self.first_identity.get(&(client_id, seq)).copied().unwrap_or((client_id, seq));
                    let applied_as = *m.writes.entry(first).or_insert((client_id, seq));
                    if applied_as != (client_id, seq) {
                        let detail = format!(
                            "member {member} applied connection {:#x}'s write #{} as {:#x}'s #{} and as {client_id:#x}'s #{seq}",
                            first.0, first.1, applied_as.0, applied_as.1
                        );
                        violations.push(Violation { property: TWICE, time_us: now_us, detail });
                    }
                }
            }
        }
    }

    /// A write in flight as `from` (client id, seq) is sent again as `to`.
    pub fn started_over(&mut self, from: (u64, u64), to: (u64, u64)) {
        let first = self.first_identity.get(&from).copied().unwrap_or(from);
        self.first_identity.insert(to, first);
    }

    /// The client saw write `seq` of connection `client_id` answered as applied.
    pub fn acknowledged(&mut self, client_id: u64, seq: u64, now_us: u64, violations: &mut Vec<Violation>) {
        self.acknowledged += 1;
        if !self.applied.get(&client_id).is_some_and(|s| s.contains(&seq)) {
            let detail =
                format!("connection {client_id:#x}'s write #{seq} was answered as applied, but no member applied it");
            violations.push(Violation { property: "an acknowledged pipelined write applied", time_us: now_us, detail });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(client_id: u64, seq: u64) -> Applied {
        Applied::Write { client_id, seq }
    }

    #[test]
    fn a_gap_or_a_write_out_of_order_is_caught() {
        let mut p = ZkPipelines::default();
        let mut v = Vec::new();
        p.observe(1, 1, &[w(9, 1), w(9, 2), w(8, 1)], 0, &mut v);
        p.observe(2, 1, &[w(9, 1), w(9, 2), w(9, 3)], 0, &mut v);
        p.acknowledged(9, 3, 0, &mut v);
        assert!(v.is_empty(), "{v:?}");
        // A restarted member replays from its snapshot: where it starts is unknown.
        p.observe(1, 2, &[w(9, 3)], 0, &mut v);
        p.observe(1, 2, &[Applied::Restored, w(9, 2), w(9, 3)], 0, &mut v);
        assert!(v.is_empty(), "{v:?}");
        p.observe(2, 1, &[w(9, 5)], 0, &mut v);
        assert_eq!(v.len(), 1);
        p.observe(3, 1, &[w(7, 2)], 0, &mut v);
        assert_eq!(v.len(), 2);
        p.observe(1, 2, &[w(9, 2)], 0, &mut v);
        assert_eq!(v.len(), 3);
        p.acknowledged(9, 6, 0, &mut v);
        assert_eq!(v.len(), 4);
    }

    #[test]
    fn a_write_applied_again_after_it_started_over_is_caught() {
        let (mut p, mut v) = (ZkPipelines::default(), Vec::new());
        p.observe(1, 1, &[w(9, 1), w(9, 2)], 0, &mut v);
        // 9's #3 and #4 start over as 10's #1 and #2, then as 11's.
        p.started_over((9, 3), (10, 1));
        p.started_over((9, 4), (10, 2));
        p.started_over((10, 1), (11, 1));
        p.observe(1, 1, &[w(11, 1)], 0, &mut v);
        p.observe(2, 1, &[w(9, 1), w(9, 2), w(9, 3)], 0, &mut v);
        assert!(v.is_empty(), "{v:?}");
        p.observe(2, 1, &[w(11, 1)], 0, &mut v);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].property, TWICE);
    }

    #[test]
    fn a_write_from_a_connection_its_session_moved_away_from_is_caught() {
        let (mut p, mut v) = (ZkPipelines::default(), Vec::new());
        let changed = |owner| Applied::Changed { session: 5, owner };
        // Before an attach the creating connection owns the session; then only the new one.
        p.observe(1, 1, &[changed(7), Applied::Attached { session: 5, owner: 8 }, changed(8)], 0, &mut v);
        // A restored snapshot or a restart forgets who owned it.
        p.observe(1, 1, &[Applied::Restored, changed(7)], 0, &mut v);
        assert!(v.is_empty(), "{v:?}");
        p.observe(2, 1, &[Applied::Attached { session: 5, owner: 8 }, changed(7)], 0, &mut v);
        assert_eq!(v.len(), 1);
    }
}
