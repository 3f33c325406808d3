//! A revision is never reused: every member that publishes the events of a revision publishes
//! the same events (so no two writes ever share a revision), and each process publishes
//! revisions in increasing order.

use std::collections::BTreeMap;

use tally_proto::mvccpb::Event;
use tally_raft::NodeId;

use super::Violation;

#[derive(Default)]
pub struct Revisions {
    /// The events of each revision and the member that first published them.
    events: BTreeMap<i64, (Vec<Event>, NodeId)>,
    /// Per member: its incarnation and the last revision it published in it.
    last: BTreeMap<NodeId, (u64, i64)>,
}

impl Revisions {
    pub fn observe(
        &mut self,
        member: NodeId,
        incarnation: u64,
        batches: &[(i64, Vec<Event>)],
        now_us: u64,
        violations: &mut Vec<Violation>,
    ) {
        for (revision, events) in batches {
            let last = self.last.entry(member).or_insert((incarnation, 0));
            if last.0 != incarnation {
                *last = (incarnation, 0);
            }
            if *revision <= last.1 {
                let detail = format!("member {member} published revision {revision} after revision {}", last.1);
                violations.push(Violation { property: "revisions increase", time_us: now_us, detail });
            }
            last.1 = *revision;
            let (first, by) = self.events.entry(*revision).or_insert_with(|| (events.clone(), member));
            if first != events {
                let detail = format!("revision {revision}: member {member}'s events differ from member {by}'s");
                violations.push(Violation { property: "a revision is never reused", time_us: now_us, detail });
            }
        }
    }

    /// Every revision's events, in order (the reference for watchers).
    pub fn events(&self) -> &BTreeMap<i64, (Vec<Event>, NodeId)> {
        &self.events
    }
}
