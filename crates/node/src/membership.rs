//! Membership requests on the leader: etcd's refusals first, then a configuration change
//! whose context is the whole new member table. The caller is answered when the change is
//! applied. Committed changes update the member table and the peer connections everywhere.

use tally_consensus::Consensus;
use tally_mvcc::MvccError;
use tally_proto::tally_v1::MemberInfo;
use tally_raft::{ConfChange, ConfChangeOp, Entry, NodeId, ProgressState, Role};

use crate::members::Members;
use crate::{Host, Node, Reply};

#[derive(Clone, Debug)]
pub enum MembershipRequest {
    Add { peer_urls: Vec<String>, is_learner: bool },
    Remove { id: NodeId },
    Promote { id: NodeId },
    Update { id: NodeId, peer_urls: Vec<String> },
}

#[derive(Debug)]
pub enum MembershipOutcome {
    /// Applied: the member concerned and the table after the change.
    Applied {
        member: Option<MemberInfo>,
        members: Members,
    },
    NotLeader(Option<NodeId>),
    Refused(MvccError),
    /// Cannot be decided right now (another change in flight, health not yet known): ask again.
    Retry(MvccError),
}

/// etcd promotes a learner only once its log is within 10% of the leader's.
const LEARNER_READY_FRACTION: f64 = 0.9;
/// etcd allows one learner at a time.
const LEARNERS_MAX: usize = 1;

impl<H: Host> Node<H> {
    /// A membership change asked of this member; `reply` is answered once it applies.
    pub fn membership(&mut self, req: MembershipRequest, reply: H::MembershipReply) {
        if self.engine.role() != Role::Leader {
            reply.send(MembershipOutcome::NotLeader(self.engine.leader()));
            return;
        }
        let (op, members, concerned) = match self.plan_change(req) {
            Ok(plan) => plan,
            Err(Undecided::Refused(r)) => return reply.send(MembershipOutcome::Refused(r)),
            Err(Undecided::Retry(r)) => return reply.send(MembershipOutcome::Retry(r)),
        };
        let change = ConfChange { ops: vec![op], context: members.encode() };
        match self.engine.propose_conf_change(change) {
            Ok(index) => {
                self.conf_waiters.insert(index, (concerned, reply));
            }
            Err(tally_raft::ProposeError::NotLeader { leader }) => reply.send(MembershipOutcome::NotLeader(leader)),
            Err(_) => reply.send(MembershipOutcome::Retry(MvccError::Timeout)),
        }
    }

    /// Voters the leader has heard from lately ("started" members, in etcd's words).
    fn active_voters(&self) -> Vec<NodeId> {
        let me = self.engine.id();
        let conf = self.engine.conf_state();
        self.engine
            .replication()
            .iter()
            .filter(|(&id, pr)| conf.voters.contains(&id) && (id == me || pr.recent_active))
            .map(|(&id, _)| id)
            .collect()
    }

    fn plan_change(&self, req: MembershipRequest) -> Result<(ConfChangeOp, Members, NodeId), Undecided> {
        let mut members = self.members.read().expect("members lock").clone();
        let voters = self.engine.conf_state().voters.len();
        let active = self.active_voters();
        let refuse = Undecided::Refused;
        match req {
            MembershipRequest::Add { peer_urls, is_learner } => {
                if members.peer_url_owner(&peer_urls, None).is_some() {
                    return Err(refuse(MvccError::PeerUrlExist));
                }
                let id = crate::cluster::member_id(&self.cluster_token, &peer_urls);
                if members.removed.contains(&id) {
                    return Err(refuse(MvccError::IdRemoved));
                }
                if is_learner && members.learners() >= LEARNERS_MAX {
                    return Err(refuse(MvccError::TooManyLearners));
                }
                if !is_learner && active.len() < quorum(voters + 1) {
                    return Err(Undecided::Retry(MvccError::Unhealthy));
                }
                let info = MemberInfo { id, name: String::new(), peer_urls, client_urls: Vec::new(), is_learner };
                members.members.insert(id, info);
                let op = if is_learner { ConfChangeOp::AddLearner(id) } else { ConfChangeOp::AddVoter(id) };
                Ok((op, members, id))
            }
            MembershipRequest::Remove { id } => {
                let Some(info) = members.members.remove(&id) else { return Err(refuse(MvccError::MemberNotFound)) };
                if !info.is_learner {
                    let remaining = active.iter().filter(|&&a| a != id).count();
                    if remaining < quorum(voters - 1) {
                        return Err(Undecided::Retry(MvccError::MemberNotEnoughStarted));
                    }
                }
                members.removed.insert(id);
                Ok((ConfChangeOp::Remove(id), members, id))
            }
            MembershipRequest::Promote { id } => {
                let Some(info) = members.members.get_mut(&id) else { return Err(refuse(MvccError::MemberNotFound)) };
                if !info.is_learner {
                    return Err(refuse(MvccError::MemberNotLearner));
                }
                let progress = self.engine.replication();
                let leader_match = progress.get(&self.engine.id()).map_or(0, |p| p.matched) as f64;
                let learner = progress.get(&id);
                let in_sync = learner.is_some_and(|p| {
                    p.state == ProgressState::Replicate && p.matched as f64 >= leader_match * LEARNER_READY_FRACTION
                });
                if !in_sync {
                    return Err(refuse(MvccError::LearnerNotReady));
                }
                info.is_learner = false;
                Ok((ConfChangeOp::AddVoter(id), members, id))
            }
            MembershipRequest::Update { id, peer_urls } => {
                if members.peer_url_owner(&peer_urls, Some(id)).is_some() {
                    return Err(refuse(MvccError::PeerUrlExist));
                }
                let Some(info) = members.members.get_mut(&id) else { return Err(refuse(MvccError::MemberNotFound)) };
                info.peer_urls = peer_urls;
                // Re-stating the member's current role changes nothing but carries the table.
                let op = if info.is_learner { ConfChangeOp::AddLearner(id) } else { ConfChangeOp::AddVoter(id) };
                Ok((op, members, id))
            }
        }
    }

    /// A committed configuration change entry: adopt the member table it carries.
    pub(crate) fn apply_membership_entry(&mut self, entry: &Entry) {
        let Ok(change) = ConfChange::decode(&entry.data) else { return };
        tracing::info!(index = entry.index, ops = ?change.ops, "membership change applied");
        if !change.context.is_empty() {
            if let Some(members) = Members::decode(&change.context) {
                self.adopt_members(members);
            }
        }
        if let Some((concerned, waiter)) = self.conf_waiters.remove(&entry.index) {
            let members = self.members.read().expect("members lock").clone();
            let member = members.members.get(&concerned).cloned();
            waiter.send(MembershipOutcome::Applied { member, members });
        }
    }

    pub(crate) fn adopt_members(&mut self, members: Members) {
        let me = self.engine.id();
        if members.removed.contains(&me) {
            self.host.removed(&format!("member {me:x} was removed from the cluster"));
        }
        self.host.members_changed(&members);
        *self.members.write().expect("members lock") = members;
    }
}

/// Why a change was not planned.
enum Undecided {
    Refused(MvccError),
    Retry(MvccError),
}

fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}
