//! The exactly-once apply layer: commands from the raft log, client sessions for deduplication, and the
//! applied index.

use std::collections::VecDeque;

use tally_proto::etcdserverpb::{
    AlarmResponse, AlarmType, CompactionResponse, DeleteRangeResponse, LeaseGrantResponse, LeaseRevokeResponse,
    PutResponse, TxnResponse,
};
use tally_proto::mvccpb::Event;
use tally_proto::tally_v1::{command::Op, AuthResult, Command};

use crate::alarms::{txn_cost, Alarms};
use crate::auth::{AuthInfo, AuthStore};
use crate::error::MvccError;
use crate::sharded::ShardedMap;
use crate::store::{Store, StoreConfig};

/// The result of one command, as etcd's applier returns it.
#[derive(Clone, Debug, PartialEq)]
pub enum CommandResponse {
    /// A Put's response.
    Put(PutResponse),
    /// A DeleteRange's response.
    DeleteRange(DeleteRangeResponse),
    /// A Txn's response.
    Txn(TxnResponse),
    /// A Compaction's response.
    Compaction(CompactionResponse),
    /// A LeaseGrant's response.
    LeaseGrant(LeaseGrantResponse),
    /// A LeaseRevoke's response.
    LeaseRevoke(LeaseRevokeResponse),
    /// An Alarm request's response.
    Alarm(AlarmResponse),
    /// An Auth service request's response.
    Auth(AuthResult),
    /// A ZooKeeper command's outcome and the watch events it triggers.
    Zk(tally_zk::Applied),
    /// The request failed; nothing was changed.
    Error(MvccError),
    /// A command without an operation, or a log index already applied: nothing happened.
    Noop,
}

/// What applying a log entry produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// The response to hand back to the client.
    pub response: CommandResponse,
    /// False when the command was not executed now (a retried or stale request, or an index already applied).
    pub fresh: bool,
    /// Events of the writes performed now (empty unless `fresh`), with `prev_kv` filled, in revision order.
    pub events: Vec<Event>,
    /// The store's revision after this entry.
    pub revision: i64,
}

/// What a client's session keeps of a response: all of it, but a ZooKeeper write's watch events,
/// which fired when it was applied (a retry's answer fires nothing).
fn cached(response: &CommandResponse) -> CommandResponse {
    match response {
        CommandResponse::Zk(applied) => {
            CommandResponse::Zk(tally_zk::Applied { outcome: applied.outcome.clone(), events: Vec::new() })
        }
        other => other.clone(),
    }
}

/// A client's last applied request.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    /// Sequence number of the last applied request.
    pub seq: u64,
    /// Its response.
    pub response: CommandResponse,
    /// Log index at which the session was last used (for least-recently-used eviction).
    pub last_index: u64,
}

/// Client sessions, bounded: beyond `max` the least recently used is evicted. An evicted client's retry of
/// its last request is indistinguishable from a new request and would be applied a second time.
///
/// Every applied request looks its client up and records its response, so this is a hash map with a
/// queue for recency (a B-tree pair cost ~5% of a server's CPU under put load). The map is sharded
/// so that a snapshot's copy of 100k sessions does not stall the driver (see `sharded`).
#[derive(Clone, Debug, Default)]
pub struct Sessions {
    pub(crate) max: usize,
    by_client: ShardedMap<u64, Session>,
    /// (log index, client), oldest first. Using a session again appends a new pair; the client's older
    /// pair is then stale and skipped (or trimmed) when met.
    recency: VecDeque<(u64, u64)>,
}

impl PartialEq for Sessions {
    fn eq(&self, other: &Self) -> bool {
        // Recency follows from each session's `last_index`.
        self.max == other.max && self.by_client == other.by_client
    }
}

impl Sessions {
    pub(crate) fn new(max: usize) -> Sessions {
        Sessions { max: max.max(1), by_client: ShardedMap::default(), recency: VecDeque::new() }
    }

    /// A client's session.
    pub fn get(&self, client_id: u64) -> Option<&Session> {
        self.by_client.get(&client_id)
    }

    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.by_client.len()
    }

    /// Whether there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.by_client.len() == 0
    }

    fn touch(&mut self, client_id: u64, index: u64) {
        if let Some(s) = self.by_client.get_mut(&client_id) {
            s.last_index = index;
            self.recency.push_back((index, client_id));
            self.trim_stale();
        }
    }

    pub(crate) fn record(&mut self, client_id: u64, seq: u64, response: CommandResponse, index: u64) {
        self.by_client.insert(client_id, Session { seq, response, last_index: index });
        self.recency.push_back((index, client_id));
        while self.by_client.len() > self.max {
            let Some(oldest) = self.recency.pop_front() else { break };
            if is_current(&self.by_client, oldest) {
                self.by_client.remove(&oldest.1);
            }
        }
        self.trim_stale();
    }

    /// Keeps stale pairs to at most about as many as live ones.
    fn trim_stale(&mut self) {
        if self.recency.len() > 2 * self.by_client.len() + 64 {
            let by_client = &self.by_client;
            self.recency.retain(|&pair| is_current(by_client, pair));
        }
    }

    /// Sessions, least recently used first.
    pub(crate) fn by_recency(&self) -> impl Iterator<Item = (u64, &Session)> {
        self.recency
            .iter()
            .filter(|&&pair| is_current(&self.by_client, pair))
            .map(|&(_, client)| (client, self.by_client.get(&client).expect("current pairs have sessions")))
    }

    /// Adds a session read from a snapshot (in any order; call `finish_restore` after the last).
    /// False if the client already has one.
    pub(crate) fn restore(&mut self, client_id: u64, session: Session) -> bool {
        self.recency.push_back((session.last_index, client_id));
        self.by_client.insert(client_id, session).is_none()
    }

    /// Orders restored sessions by recency; false if two share a log index.
    pub(crate) fn finish_restore(&mut self) -> bool {
        self.recency.make_contiguous().sort_unstable();
        self.recency.iter().zip(self.recency.iter().skip(1)).all(|(a, b)| a.0 != b.0)
    }
}

/// A ZooKeeper connection's pipelined writes carry its client id and sequence numbers rising by
/// one: one that skips a number follows a write of the connection that was lost (with a leader,
/// or a forwarded frame), and applying it would leave a gap in the session's order, which
/// ZooKeeper never does. Refused unexecuted, it fails the connection and the client reconnects.
///
/// A connection the table does not know (`last_seq` 0) is new, or was evicted by other clients
/// since its last write. Only the first attempt of its first write is surely new: a later write
/// may follow a lost one, and a retry may repeat one that applied before the eviction.
fn out_of_order(cmd: &Command, last_seq: u64) -> bool {
    let Some(Op::Zk(z)) = &cmd.op else { return false };
    z.pipelined && (cmd.seq > last_seq + 1 || (last_seq == 0 && z.retried))
}

/// Whether a (log index, client) recency pair is the client's latest use. A free function, so
/// that `trim_stale` can ask it while it mutates the queue.
fn is_current(by_client: &ShardedMap<u64, Session>, (index, client_id): (u64, u64)) -> bool {
    by_client.get(&client_id).is_some_and(|s| s.last_index == index)
}

/// The replicated state machine: the MVCC store plus exactly-once bookkeeping.
#[derive(Clone, Debug, PartialEq)]
pub struct StateMachine {
    /// The key-value store (serve reads with [`Store::range`]).
    pub store: Store,
    pub(crate) sessions: Sessions,
    pub(crate) applied_index: u64,
    /// The raised alarms (replicated: raised and cleared through the log).
    pub alarms: Alarms,
    /// Users, roles and whether auth is on (replicated: changed through the log).
    pub auth: AuthStore,
    /// ZooKeeper's znodes and sessions: a namespace of their own (see `tally_zk`).
    pub zk: tally_zk::ZkState,
}

impl Default for StateMachine {
    fn default() -> Self {
        StateMachine::new(StoreConfig::default())
    }
}

impl StateMachine {
    /// An empty state machine.
    pub fn new(config: StoreConfig) -> StateMachine {
        StateMachine {
            store: Store::new(config),
            sessions: Sessions::new(config.sessions_max),
            applied_index: 0,
            alarms: Alarms::default(),
            auth: AuthStore::default(),
            zk: tally_zk::ZkState::default(),
        }
    }

    /// The index of the last applied log entry.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// The client sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Estimated data size in bytes (etcd Status `dbSize`).
    pub fn size_bytes(&self) -> u64 {
        self.store.size_bytes()
    }

    /// Records a log entry that carries no command (an empty or configuration entry).
    pub fn apply_noop(&mut self, index: u64) {
        self.applied_index = self.applied_index.max(index);
    }

    /// Applies the command at log `index`. Entries at or below the applied index are ignored (`Noop`,
    /// not fresh). For `client_id != 0`, a `seq` equal to the client's last applied one returns the cached
    /// response without re-executing; an older `seq` answers [`MvccError::StaleSequence`]; both not fresh.
    /// So does a pipelined ZooKeeper write out of its connection's order (`out_of_order`).
    pub fn apply(&mut self, index: u64, cmd: &Command) -> Applied {
        if index <= self.applied_index {
            return self.not_fresh(CommandResponse::Noop);
        }
        self.applied_index = index;
        if cmd.client_id != 0 {
            // A client the table does not know (new, or evicted) counts from 0.
            let last_seq = match self.sessions.get(cmd.client_id) {
                Some(s) if cmd.seq == s.seq => {
                    let cached = s.response.clone();
                    self.sessions.touch(cmd.client_id, index);
                    return self.not_fresh(cached);
                }
                Some(s) if cmd.seq < s.seq => return self.not_fresh(CommandResponse::Error(MvccError::StaleSequence)),
                Some(s) => s.seq,
                None => 0,
            };
            if out_of_order(cmd, last_seq) {
                return self.not_fresh(CommandResponse::Error(MvccError::StaleSequence));
            }
        }
        let who = AuthInfo { user: cmd.auth_user.clone(), revision: cmd.auth_revision };
        let (response, events) = self.execute(cmd.op.as_ref(), &who, index);
        if cmd.client_id != 0 {
            self.sessions.record(cmd.client_id, cmd.seq, cached(&response), index);
        }
        Applied { response, fresh: true, events, revision: self.store.revision() }
    }

    /// etcd's capped applier (NOSPACE: no puts, no txns that put, no lease grants) and corrupt
    /// applier (CORRUPT: nothing but alarms).
    fn refused_by_alarm(&self, op: &Op) -> Option<MvccError> {
        if self.alarms.raised.is_empty() {
            return None;
        }
        if self.alarms.is_raised(AlarmType::Corrupt) && !matches!(op, Op::Alarm(_)) {
            return Some(MvccError::Corrupt);
        }
        let needs_space = match op {
            Op::Put(_) | Op::LeaseGrant(_) => true,
            Op::Txn(t) => txn_cost(t) > 0,
            _ => false,
        };
        (needs_space && self.alarms.is_raised(AlarmType::Nospace)).then_some(MvccError::NoSpace)
    }

    fn not_fresh(&self, response: CommandResponse) -> Applied {
        Applied { response, fresh: false, events: Vec::new(), revision: self.store.revision() }
    }

    /// etcd's auth applier: may `who` run `op`? Checked on every member at apply, against the
    /// auth state of that moment.
    fn refused_by_auth(&self, op: &Op, who: &AuthInfo) -> Option<MvccError> {
        let (auth, store) = (&self.auth, &self.store);
        match op {
            Op::Put(p) => auth.check_put(who, p, store),
            Op::DeleteRange(d) => auth.check_delete(who, d),
            Op::Txn(t) => auth.check_txn(who, t, store),
            Op::LeaseRevoke(l) => auth.check_lease_writes(who, l.id, store),
            // Auth requests check their own; the rest are checked before they are proposed.
            // ZooKeeper's requests have ACLs of their own, checked in the tree.
            Op::Auth(_) | Op::Compaction(_) | Op::LeaseGrant(_) | Op::Alarm(_) | Op::Zk(_) | Op::ZkTouch(_) => Ok(()),
        }
        .err()
    }

    /// A ZooKeeper command, at the entry's index (its zxid). One that does not decode was never
    /// proposed by a member of this build: answered as ZooKeeper answers what it cannot read.
    fn apply_zk(&mut self, z: &tally_proto::tally_v1::ZkCommand, index: u64) -> tally_zk::Applied {
        match tally_zk::ZkCommand::decode(&z.command) {
            Ok(command) => self.zk.apply(index as i64, z.now_ms, &command),
            Err(_) => tally_zk::Applied {
                outcome: tally_zk::Outcome::Reply(Err(tally_zk::ZkError::MarshallingError)),
                events: Vec::new(),
            },
        }
    }

    fn execute(&mut self, op: Option<&Op>, who: &AuthInfo, index: u64) -> (CommandResponse, Vec<Event>) {
        if let Some(refused) = op.and_then(|op| self.refused_by_auth(op, who).or_else(|| self.refused_by_alarm(op))) {
            return (CommandResponse::Error(refused), Vec::new());
        }
        let s = &mut self.store;
        let r = match op {
            None => return (CommandResponse::Noop, Vec::new()),
            Some(Op::Alarm(a)) => Ok((CommandResponse::Alarm(self.alarms.apply(a)), Vec::new())),
            Some(Op::Auth(a)) => self
                .auth
                .apply(a, who, index)
                .map(|result| (CommandResponse::Auth(AuthResult { result: Some(result) }), Vec::new())),
            Some(Op::Put(p)) => s.put(p).map(|(r, e)| (CommandResponse::Put(r), e)),
            Some(Op::DeleteRange(d)) => s.delete_range(d).map(|(r, e)| (CommandResponse::DeleteRange(r), e)),
            Some(Op::Txn(t)) => s.txn(t).map(|(r, e)| (CommandResponse::Txn(r), e)),
            Some(Op::Compaction(c)) => s.compact(c.revision).map(|r| (CommandResponse::Compaction(r), Vec::new())),
            Some(Op::LeaseGrant(g)) => s.lease_grant(g.id, g.ttl).map(|r| (CommandResponse::LeaseGrant(r), Vec::new())),
            Some(Op::LeaseRevoke(l)) => s.lease_revoke(l.id).map(|(r, e)| (CommandResponse::LeaseRevoke(r), e)),
            Some(Op::Zk(z)) => Ok((CommandResponse::Zk(self.apply_zk(z, index)), Vec::new())),
            // Touches renew the leader's session clock and are never proposed.
            Some(Op::ZkTouch(_)) => Ok((CommandResponse::Noop, Vec::new())),
        };
        r.unwrap_or_else(|e| (CommandResponse::Error(e), Vec::new()))
    }
}
