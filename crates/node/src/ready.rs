//! Carrying out the core's Readies in the order its contract requires: send the leader's
//! messages, persist (one fsync for the batch), send the rest, install a snapshot, apply,
//! answer the callers, confirm reads.

use std::sync::atomic::Ordering;
use std::time::Instant;

use tally_consensus::{Consensus, Ready};
use tally_mvcc::CommandResponse;
use tally_proto::tally_v1::Command;
use tally_proto::Message as _;
use tally_raft::{Entry, EntryKind, Role};

use crate::engine::PeerMessage;

use crate::node::NodeBug;
use crate::snapshots::decode_snapshot;
use crate::{Host, Node, ProposeOutcome, Reply};

impl<H: Host> Node<H> {
    /// Handles every Ready the core has, until it has none.
    pub fn handle_readies(&mut self) {
        while self.engine.has_ready() {
            let ready = self.engine.ready();
            self.observe_ready(&ready);
            self.handle_ready(ready);
            self.engine.advance();
            self.observe_advance();
            self.reads.serve(self.engine.applied());
            self.maybe_snapshot();
        }
    }

    fn handle_ready(&mut self, mut ready: Ready<PeerMessage>) {
        if let Some(soft) = ready.soft_state {
            self.count_leader(soft.leader, soft.role);
            self.shared.leader.store(soft.leader.unwrap_or(0), Ordering::Relaxed);
            // A read index requested under the old leadership may never arrive: ask again.
            self.reads.fail_unconfirmed();
            if soft.role == Role::Leader {
                self.promote_leases();
                self.promote_zk_sessions();
            } else {
                self.leases.demote();
                self.zk_sessions.demote();
                self.fail_proposals(soft.leader);
            }
        }
        self.note_heartbeats(&ready.messages);
        self.host.send(&mut ready.messages);
        // Committed entries are durable on a quorum already: their callers need not wait for
        // this Ready's fsync of later entries, as etcd applies while it saves its WAL. Under
        // load that fsync is the next batch's, so waiting for it cost every answer one fsync.
        // A snapshot must be installed first, and a membership change applied after the
        // entries that come with it are durable here (as etcd waits for them).
        let apply_first =
            ready.snapshot.is_none() && ready.committed_entries.iter().all(|e| e.kind == EntryKind::Normal);
        if apply_first {
            self.apply_committed(std::mem::take(&mut ready.committed_entries));
        }
        self.persist(&ready);
        self.host.send(&mut ready.persisted_messages);
        self.shared.term.store(self.engine.term(), Ordering::Relaxed);
        if let Some(snapshot) = &ready.snapshot {
            let (members, restored) = match decode_snapshot(&snapshot.data) {
                Ok(decoded) => decoded,
                Err(e) => self.host.fatal("installing the leader's snapshot", &e),
            };
            self.shared.metrics.db_size.store(restored.size_bytes(), Ordering::Relaxed);
            *self.sm.write().expect("sm lock") = restored;
            self.host.state_restored();
            self.answer_from_sessions();
            self.adopt_members(members);
            self.snapshots.installed(snapshot.meta.index, snapshot.data.len() as u64);
        }
        if !apply_first {
            self.apply_committed(ready.committed_entries);
        }
        for rs in ready.read_states {
            self.reads.confirm(&rs.ctx, rs.index);
        }
    }

    fn apply_committed(&mut self, entries: Vec<Entry>) {
        self.shared.metrics.proposals_committed.store(self.engine.committed(), Ordering::Relaxed);
        let mut published = Vec::new();
        for entry in entries {
            self.apply(entry, &mut published);
        }
        self.host.publish(published);
        self.shared.metrics.proposals_pending.store(self.waiters.len() as i64, Ordering::Relaxed);
    }

    fn persist(&mut self, ready: &Ready<PeerMessage>) {
        let persisting = Instant::now();
        let lazy_vote = self.bug == Some(NodeBug::LazyVote) && ready.entries.is_empty() && ready.snapshot.is_none();
        if lazy_vote {
            return;
        }
        match self.disk.persist(ready) {
            Ok(true) => self.shared.metrics.wal_fsync.observe(persisting.elapsed()),
            Ok(false) => {}
            Err(e) => self.host.fatal("writing the log", &e),
        }
    }

    /// After a leader's snapshot replaced the state, the entries it covers are never applied
    /// here one by one: answer the callers whose request it holds from the client sessions it
    /// carries (each session keeps its last request's response). Found by the whole-node
    /// simulator (seed 3938): such callers waited for a 2 s attempt timeout and a retry.
    fn answer_from_sessions(&mut self) {
        let done: Vec<((u64, u64), CommandResponse)> =
            self.waiters.keys().filter_map(|&id| self.session_response(id).map(|r| (id, r))).collect();
        for (id, response) in done {
            if let Some(waiter) = self.waiters.remove(&id) {
                waiter.send(ProposeOutcome::Applied(response));
            }
        }
    }

    /// The response to request `(client, seq)` if it is its client's last one applied.
    pub(crate) fn session_response(&self, (client, seq): (u64, u64)) -> Option<CommandResponse> {
        let sm = self.sm.read().expect("sm lock");
        sm.sessions().get(client).filter(|s| s.seq == seq).map(|s| s.response.clone())
    }

    /// Applies one committed entry and answers the caller waiting for it here.
    fn apply(&mut self, entry: Entry, published: &mut Vec<(i64, Vec<tally_proto::mvccpb::Event>)>) {
        // Before the entry's caller hears back, so a scrape after an answer counts it.
        self.shared.metrics.proposals_applied.store(entry.index, Ordering::Relaxed);
        self.snapshots.applied(entry.data.len());
        if entry.kind != EntryKind::Normal || entry.data.is_empty() {
            self.sm.write().expect("sm lock").apply_noop(entry.index);
            if entry.kind == EntryKind::ConfChange {
                self.apply_membership_entry(&entry);
            }
            return;
        }
        let cmd = match Command::decode(entry.data.as_ref()) {
            Ok(cmd) => cmd,
            Err(e) => self.host.fatal(&format!("decoding the committed entry at index {}", entry.index), &e),
        };
        let mut applied = {
            let mut sm = self.sm.write().expect("sm lock");
            let applied = sm.apply(entry.index, &cmd);
            self.shared.metrics.db_size.store(sm.size_bytes(), Ordering::Relaxed);
            applied
        };
        if !applied.events.is_empty() {
            published.push((applied.revision, std::mem::take(&mut applied.events)));
        }
        if self.engine.role() == Role::Leader {
            self.track_lease(&cmd, &applied.response);
            self.track_zk_session(&cmd, &applied.response);
        }
        if applied.fresh {
            log_alarm_change(&cmd, &applied.response);
            self.host.applied_fresh(&cmd, &applied.response);
        }
        if let Some(waiter) = self.waiters.remove(&(cmd.client_id, cmd.seq)) {
            waiter.send(ProposeOutcome::Applied(applied.response));
        }
    }

    /// A new leader restarts every lease's clock, with an election timeout's grace, so a
    /// failover never expires a lease early.
    fn promote_leases(&mut self) {
        let now = self.host.now();
        let sm = self.sm.clone();
        let sm = sm.read().expect("sm lock");
        if self.bug == Some(NodeBug::NoLeaseGraceOnPromote) {
            // The canary: a leader that trusts a clock which ran on while no one led.
            self.leases.promote_expired(now, sm.store.leases().map(|l| l.id));
        } else {
            self.leases.promote(now, sm.store.leases().map(|l| (l.id, l.ttl)), self.election_timeout);
        }
    }

    fn track_lease(&mut self, cmd: &Command, response: &CommandResponse) {
        use tally_proto::tally_v1::command::Op;
        let now = self.host.now();
        match (&cmd.op, response) {
            (Some(Op::LeaseGrant(_)), CommandResponse::LeaseGrant(granted)) => {
                self.leases.granted(now, granted.id, granted.ttl)
            }
            (Some(Op::LeaseRevoke(r)), _) => self.leases.revoked(r.id),
            _ => {}
        }
    }

    /// etcd's leader gauges, and a leader change counted whenever a new leader is known.
    fn count_leader(&self, leader: Option<tally_raft::NodeId>, role: Role) {
        let metrics = &self.shared.metrics;
        metrics.has_leader.store(i64::from(leader.is_some()), Ordering::Relaxed);
        metrics.is_leader.store(i64::from(role == Role::Leader), Ordering::Relaxed);
        let (previous, term) = (self.shared.leader(), self.engine.term());
        match leader {
            Some(l) if Some(l) != previous => {
                metrics.leader_changes.fetch_add(1, Ordering::Relaxed);
                tracing::info!(leader = %format_args!("{l:x}"), term, ?role, "leader elected")
            }
            None if previous.is_some() => tracing::info!(term, ?role, "leader lost"),
            _ => {}
        }
    }
}

/// One line per alarm raised or cleared, on every member.
fn log_alarm_change(cmd: &Command, response: &CommandResponse) {
    use tally_proto::etcdserverpb::{alarm_request::AlarmAction, AlarmType};
    use tally_proto::tally_v1::command::Op;
    let (Some(Op::Alarm(req)), CommandResponse::Alarm(resp)) = (&cmd.op, response) else { return };
    for a in &resp.alarms {
        let alarm = AlarmType::try_from(a.alarm).map_or("UNKNOWN", |t| t.as_str_name());
        let member = format!("{:x}", a.member_id);
        match AlarmAction::try_from(req.action) {
            Ok(AlarmAction::Activate) => tracing::warn!(alarm, %member, "alarm raised"),
            Ok(AlarmAction::Deactivate) => tracing::warn!(alarm, %member, "alarm disarmed"),
            _ => {}
        }
    }
}
