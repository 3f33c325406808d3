//! Membership changes by joint consensus (Raft paper section 6). A change that touches the
//! voter set first enters the joint configuration C_old,new, and the leader leaves it (to C_new)
//! as soon as the joint entry is applied. Changes that only add or remove learners need no
//! joint phase. Changes take effect when applied, and only one may be pending at a time.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::ConfChangeError;
use crate::types::{ConfState, NodeId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfChangeOp {
    AddVoter(NodeId),
    AddLearner(NodeId),
    Remove(NodeId),
}

/// A membership change. An empty change means "leave the joint configuration".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfChange {
    pub ops: Vec<ConfChangeOp>,
    /// Opaque to the core; replicated with the change (the driver puts the new members'
    /// addresses here, as etcd does).
    pub context: Bytes,
}

impl ConfChange {
    pub fn new(ops: Vec<ConfChangeOp>) -> Self {
        Self { ops, context: Bytes::new() }
    }

    pub fn leave_joint() -> Self {
        Self::default()
    }

    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(8 + 9 * self.ops.len() + self.context.len());
        buf.put_u32(self.ops.len() as u32);
        for op in &self.ops {
            let (tag, id) = match *op {
                ConfChangeOp::AddVoter(id) => (0u8, id),
                ConfChangeOp::AddLearner(id) => (1, id),
                ConfChangeOp::Remove(id) => (2, id),
            };
            buf.put_u8(tag);
            buf.put_u64(id);
        }
        buf.put_u32(self.context.len() as u32);
        buf.put_slice(&self.context);
        buf.freeze()
    }

    pub fn decode(mut data: &[u8]) -> Result<Self, ConfChangeError> {
        if data.len() < 4 {
            return Err(ConfChangeError::Malformed);
        }
        let count = data.get_u32() as usize;
        if data.len() < count.saturating_mul(9).saturating_add(4) {
            return Err(ConfChangeError::Malformed);
        }
        let ops = (0..count)
            .map(|_| {
                let tag = data.get_u8();
                let id = data.get_u64();
                match tag {
                    0 => Ok(ConfChangeOp::AddVoter(id)),
                    1 => Ok(ConfChangeOp::AddLearner(id)),
                    2 => Ok(ConfChangeOp::Remove(id)),
                    _ => Err(ConfChangeError::Malformed),
                }
            })
            .collect::<Result<_, _>>()?;
        let context_len = data.get_u32() as usize;
        if data.len() != context_len {
            return Err(ConfChangeError::Malformed);
        }
        Ok(Self { ops, context: Bytes::copy_from_slice(data) })
    }

    /// Whether applying this change alters who votes, which calls for a joint phase.
    fn touches_voters(&self, conf: &ConfState) -> bool {
        self.ops.iter().any(|op| match *op {
            ConfChangeOp::AddVoter(id) => !conf.voters.contains(&id),
            ConfChangeOp::AddLearner(id) | ConfChangeOp::Remove(id) => conf.voters.contains(&id),
        })
    }

    /// The configuration after this change, or why it cannot apply to `conf`.
    pub fn apply(&self, conf: &ConfState) -> Result<ConfState, ConfChangeError> {
        if self.ops.is_empty() {
            if !conf.is_joint() {
                return Err(ConfChangeError::NotJoint);
            }
            let mut next = conf.clone();
            next.voters_outgoing.clear();
            let demoted = std::mem::take(&mut next.learners_next);
            next.learners.extend(demoted);
            return Ok(next);
        }
        if conf.is_joint() {
            return Err(ConfChangeError::AlreadyJoint);
        }
        if self.ops.iter().any(|op| op_id(op) == 0) {
            return Err(ConfChangeError::ZeroId);
        }
        let joint = self.touches_voters(conf);
        let mut next = conf.clone();
        if joint {
            next.voters_outgoing = conf.voters.clone();
        }
        for op in &self.ops {
            match *op {
                ConfChangeOp::AddVoter(id) => {
                    next.voters.insert(id);
                    next.learners.remove(&id);
                    next.learners_next.remove(&id);
                }
                ConfChangeOp::AddLearner(id) => {
                    next.voters.remove(&id);
                    if next.voters_outgoing.contains(&id) {
                        // Still votes in the outgoing half until the joint config is left.
                        next.learners_next.insert(id);
                    } else {
                        next.learners.insert(id);
                    }
                }
                ConfChangeOp::Remove(id) => {
                    next.voters.remove(&id);
                    next.learners.remove(&id);
                    next.learners_next.remove(&id);
                }
            }
        }
        if next.voters.is_empty() {
            return Err(ConfChangeError::NoVoters);
        }
        Ok(next)
    }
}

fn op_id(op: &ConfChangeOp) -> NodeId {
    match *op {
        ConfChangeOp::AddVoter(id) | ConfChangeOp::AddLearner(id) | ConfChangeOp::Remove(id) => id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip_and_rejects_garbage() {
        let mut cc =
            ConfChange::new(vec![ConfChangeOp::AddVoter(4), ConfChangeOp::AddLearner(5), ConfChangeOp::Remove(1)]);
        cc.context = Bytes::from_static(b"members");
        assert_eq!(ConfChange::decode(&cc.encode()).unwrap(), cc);
        assert_eq!(ConfChange::decode(&[0, 0]), Err(ConfChangeError::Malformed));
        assert_eq!(ConfChange::decode(&[0, 0, 0, 1, 9, 0, 0, 0, 0, 0, 0, 0, 1]), Err(ConfChangeError::Malformed));
    }

    #[test]
    fn replacing_a_voter_goes_through_joint_consensus() {
        let conf = ConfState::with_voters([1, 2, 3]);
        let cc = ConfChange::new(vec![ConfChangeOp::AddVoter(4), ConfChangeOp::Remove(1)]);
        let joint = cc.apply(&conf).unwrap();
        assert_eq!(joint.voters, [2, 3, 4].into());
        assert_eq!(joint.voters_outgoing, [1, 2, 3].into());
        assert_eq!(cc.apply(&joint), Err(ConfChangeError::AlreadyJoint));
        let left = ConfChange::leave_joint().apply(&joint).unwrap();
        assert_eq!(left, ConfState::with_voters([2, 3, 4]));
    }

    #[test]
    fn learners_change_without_joint_phase_and_demotion_waits_for_leave() {
        let conf = ConfState::with_voters([1, 2, 3]);
        let added = ConfChange::new(vec![ConfChangeOp::AddLearner(4)]).apply(&conf).unwrap();
        assert!(!added.is_joint());
        assert_eq!(added.learners, [4].into());
        let demote = ConfChange::new(vec![ConfChangeOp::AddLearner(3)]).apply(&conf).unwrap();
        assert!(demote.is_joint());
        assert_eq!(demote.learners_next, [3].into());
        let left = ConfChange::leave_joint().apply(&demote).unwrap();
        assert_eq!(left.voters, [1, 2].into());
        assert_eq!(left.learners, [3].into());
    }

    #[test]
    fn refuses_to_remove_every_voter() {
        let conf = ConfState::with_voters([1]);
        let cc = ConfChange::new(vec![ConfChangeOp::Remove(1)]);
        assert_eq!(cc.apply(&conf), Err(ConfChangeError::NoVoters));
    }
}
