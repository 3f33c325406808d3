//! ZooKeeper sessions' expiry, decided by the leader alone and carried out through the log, as
//! lease expiry is (`leases.rs`, whose clock it shares): a session whose client is not heard
//! from for its whole timeout is closed by a CloseSession entry, which removes its ephemerals
//! on every replica. Clients are heard from on whichever member they are connected to; a
//! follower hands the sessions it heard from to the leader (a `ZkTouch`, forwarded like a
//! command but never proposed). A new leader gives every session its timeout again plus an
//! election timeout, so a failover never expires a live client's session.

use std::time::Duration;

use bytes::Bytes;
use tally_consensus::Consensus;
use tally_mvcc::CommandResponse;
use tally_proto::tally_v1::command::Op;
use tally_proto::tally_v1::{Command, ZkCommand as LogZk, ZkTouch};
use tally_proto::Message as _;
use tally_raft::Role;
use tally_zk::{Outcome, ZkCommand};

use crate::{Host, Node};

fn timeout(ms: i32) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

impl<H: Host> Node<H> {
    /// Clients of these sessions were heard from here.
    pub fn zk_touch(&mut self, sessions: Vec<i64>) {
        match (self.engine.role(), self.engine.leader()) {
            (Role::Leader, _) => self.renew_zk_sessions(&sessions),
            (_, Some(leader)) if leader != self.engine.id() => {
                let touch = Command { op: Some(Op::ZkTouch(ZkTouch { sessions })), ..Default::default() };
                self.forwards.entry(leader).or_default().push(touch);
            }
            // No leader: the next one starts every session's clock afresh anyway.
            _ => {}
        }
    }

    pub(crate) fn renew_zk_sessions(&mut self, sessions: &[i64]) {
        let now = self.host.now();
        let sm = self.sm.read().expect("sm lock");
        for &id in sessions {
            if let Some(session) = sm.zk.session(id) {
                self.zk_sessions.granted_for(now, id, timeout(session.timeout_ms));
            }
        }
    }

    /// A new leader: every session lives its timeout again, plus an election timeout.
    pub(crate) fn promote_zk_sessions(&mut self) {
        let now = self.host.now();
        let sm = self.sm.clone();
        let sm = sm.read().expect("sm lock");
        if self.bug == Some(crate::NodeBug::NoZkSessionGraceOnPromote) {
            // The canary: a leader that trusts a clock which ran on while no one led.
            return self.zk_sessions.promote_expired(now, sm.zk.sessions().map(|(id, _)| id));
        }
        let lives = sm.zk.sessions().map(|(id, s)| (id, timeout(s.timeout_ms)));
        self.zk_sessions.promote_for(now, lives, self.election_timeout);
    }

    /// Leader: starts the clock of a session created, stops that of one closed.
    pub(crate) fn track_zk_session(&mut self, cmd: &Command, response: &CommandResponse) {
        let (Some(Op::Zk(z)), CommandResponse::Zk(applied)) = (&cmd.op, response) else { return };
        let now = self.host.now();
        match (ZkCommand::decode(&z.command), &applied.outcome) {
            (Ok(ZkCommand::CreateSession { timeout_ms, .. }), Outcome::SessionCreated { session }) => {
                self.zk_sessions.granted_for(now, *session, timeout(timeout_ms))
            }
            (Ok(ZkCommand::CloseSession { session }), _) => self.zk_sessions.revoked(session),
            _ => {}
        }
    }

    /// Leader: closes, through the log, every session whose time ran out.
    pub(crate) fn expire_zk_sessions(&mut self) {
        let now = self.host.now();
        for session in self.zk_sessions.expired(now) {
            if !self.propose_own_zk(&ZkCommand::CloseSession { session }, 0) {
                return;
            }
            tracing::info!(session = %format_args!("{session:#x}"), "ZooKeeper session expired; closing it");
            self.observe(crate::observe::Observation::ZkSessionExpired { session });
        }
    }

    /// Proposes the node's own ZooKeeper command, stamped `now_ms`; false if not leader.
    pub(crate) fn propose_own_zk(&mut self, command: &ZkCommand, now_ms: i64) -> bool {
        let op = Op::Zk(LogZk { command: command.encode().into(), now_ms, ..Default::default() });
        let cmd = Command { client_id: self.own_request_ids.next(), seq: 1, op: Some(op), ..Default::default() };
        self.engine.propose(Bytes::from(cmd.encode_to_vec())).is_ok()
    }
}
