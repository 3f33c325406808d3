//! The live view tells the truth: what a node reports to its watchers (`tally_node::observe`)
//! agrees with what it did. Every message it sent is reported, and every refused vote says
//! why; terms and commit marks never go back within a process; applied never passes commit;
//! the log entries it reports are the ones its log holds; and no two members report leading
//! in the same term.

use std::collections::BTreeMap;

use tally_consensus::Consensus;
use tally_node::observe::{Observation, Sent};
use tally_node::{Engine, PeerMessage};
use tally_raft::{NodeId, Role, Term};

use super::Violation;

#[derive(Default)]
pub struct Observations {
    /// Per member: its incarnation, the last term and commit index it reported.
    last: BTreeMap<NodeId, (u64, Term, u64)>,
    /// Who reported leading each term.
    leaders: BTreeMap<Term, NodeId>,
}

impl Observations {
    /// Checks what member `id` (its engine, `raft`, as it is now) reported during one call, in which
    /// it sent `sent`; a call that ended the process partway (a disk failure) may have
    /// reported messages it never got to send.
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &mut self,
        id: NodeId,
        incarnation: u64,
        observations: &[Observation],
        (sent, completed): (&[PeerMessage], bool),
        raft: &Engine,
        now_us: u64,
        violations: &mut Vec<Violation>,
    ) {
        let mut fail = |detail: String| {
            violations.push(Violation { property: "the view tells the truth", time_us: now_us, detail })
        };
        let last = self.last.entry(id).or_insert((incarnation, 0, 0));
        if last.0 != incarnation {
            *last = (incarnation, 0, 0);
        }
        let mut reported_sent = 0;
        for o in observations {
            match o {
                Observation::Role { role: Role::Leader, term, .. } => {
                    if let Some(other) = self.leaders.insert(*term, id).filter(|&other| other != id) {
                        fail(format!("members {other} and {id} both reported leading term {term}"));
                    }
                }
                Observation::Term { term, .. } => {
                    if *term < last.1 {
                        fail(format!("member {id} reported term {term} after term {}", last.1));
                    }
                    last.1 = *term;
                }
                Observation::Commit { commit, applied } => {
                    if *commit < last.2 || applied > commit {
                        fail(format!(
                            "member {id} reported commit {commit}, applied {applied} after commit {}",
                            last.2
                        ));
                    }
                    last.2 = *commit;
                }
                Observation::Log { runs, .. } => {
                    for &(first, last_index, term) in runs {
                        for index in first..=last_index {
                            // Compacted since is fine; a different term is not.
                            if raft.log_term(index).is_some_and(|t| t != term) && index >= raft.first_index() {
                                fail(format!(
                                    "member {id} reported entry {index} at term {term}, its log holds another"
                                ));
                            }
                        }
                    }
                }
                Observation::Sent { what, .. } => {
                    reported_sent += 1;
                    let (granted, reason) = match what {
                        Sent::PreVoteResp { granted, reason } | Sent::VoteResp { granted, reason } => {
                            (*granted, *reason)
                        }
                        _ => continue,
                    };
                    if granted == reason.is_some() {
                        fail(format!("member {id} reported a vote answer granted={granted} with reason {reason:?}"));
                    }
                }
                _ => {}
            }
        }
        if reported_sent < sent.len() || (completed && reported_sent > sent.len()) {
            fail(format!("member {id} sent {} messages and reported {reported_sent}", sent.len()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_node::ConsensusKind;
    use tally_raft::{Config, Message, MessageBody, Persisted, RefusalReason};

    fn raft() -> Engine {
        Engine::new(ConsensusKind::Raft, Config::new(1), Persisted::bootstrap([1, 2, 3])).unwrap()
    }

    fn check(obs: &mut Observations, id: NodeId, reported: &[Observation], sent: &[Message]) -> Vec<Violation> {
        let sent: Vec<PeerMessage> = sent.iter().cloned().map(PeerMessage::Raft).collect();
        let sent = &sent[..];
        let mut violations = Vec::new();
        obs.observe(id, 1, reported, (sent, true), &raft(), 0, &mut violations);
        violations
    }

    #[test]
    fn false_reports_are_caught() {
        let mut obs = Observations::default();
        let leads = Observation::Role { role: Role::Leader, term: 4, leader: Some(1) };
        assert!(check(&mut obs, 1, std::slice::from_ref(&leads), &[]).is_empty());
        assert_eq!(check(&mut obs, 2, &[leads], &[]).len(), 1, "two leaders reported in term 4");

        let refusal = Observation::Sent { to: 2, term: 4, what: Sent::VoteResp { granted: false, reason: None } };
        let m = Message { from: 1, to: 2, term: 4, body: MessageBody::VoteResp { reject: true } };
        assert_eq!(check(&mut obs, 1, &[refusal], std::slice::from_ref(&m)).len(), 1, "a refusal without reason");
        let unreported = check(&mut obs, 1, &[], std::slice::from_ref(&m));
        assert_eq!(unreported.len(), 1, "a message sent and not reported");
        let reason = Some(RefusalReason::StaleLog);
        let honest = Observation::Sent { to: 2, term: 4, what: Sent::VoteResp { granted: false, reason } };
        assert!(check(&mut obs, 1, &[honest], &[m]).is_empty());

        let commit = |commit, applied| Observation::Commit { commit, applied };
        assert!(check(&mut obs, 3, &[commit(5, 5)], &[]).is_empty());
        assert_eq!(check(&mut obs, 3, &[commit(4, 4)], &[]).len(), 1, "commit went back");
        assert_eq!(check(&mut obs, 3, &[commit(6, 7)], &[]).len(), 1, "applied past commit");
    }
}
