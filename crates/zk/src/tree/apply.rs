//! Applying the log: [`ZkState::apply`] and what it reports.

use super::command::{Write, ZkCommand};
use super::expiry::is_expired;
use super::session::{session_id, Session};
use super::state::ZkState;
use super::tx::Tx;
use super::write::{apply_op, remove, Caller, Done};
use crate::error::{ZkError, OK};
use crate::proto::{Acl, EventType, OpResult, Response, WriteOp};

/// What applying one entry produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub outcome: Outcome,
    /// The watch events the entry triggers, in order: the server's watch manager decides which
    /// watchers each reaches (data watches get NodeCreated, NodeDeleted and NodeDataChanged;
    /// child watches get NodeChildrenChanged and NodeDeleted).
    pub events: Vec<WatchEvent>,
}

/// The answer to the entry's command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// CreateSession: the new session's id.
    SessionCreated { session: i64 },
    /// A reply for the client: a body when `Ok` (reply header err 0), else the error code alone.
    /// A failed multi is `Ok`: ZooKeeper answers it with err 0 and the per-op results.
    Reply(Result<Response, ZkError>),
    /// The entry's index was already applied (a replay below a restored snapshot): nothing done.
    AlreadyApplied,
}

/// A change a watch may be waiting for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    pub path: String,
    pub event_type: EventType,
    /// The ACL of the node at `path` when it changed (the parent's, for NodeChildrenChanged; the
    /// deleted node's, for NodeDeleted). ZooKeeper 3.8.0 delivers an event only to watchers
    /// with READ in it; the others' watches are gone all the same (seen in the differential
    /// test).
    pub acl: Vec<Acl>,
}

impl ZkState {
    /// Applies the log entry at index `zxid` (which becomes czxid, mzxid and pzxid of what it
    /// changes), proposed at `now_ms` on the leader's clock (ctime and mtime). Deterministic:
    /// replicas applying the same entries hold the same state and produce the same outcomes.
    pub fn apply(&mut self, zxid: i64, now_ms: i64, command: &ZkCommand) -> Applied {
        if zxid <= self.last_zxid {
            return Applied { outcome: Outcome::AlreadyApplied, events: Vec::new() };
        }
        self.last_zxid = zxid;
        match command {
            ZkCommand::CreateSession { timeout_ms, password } => {
                let session = session_id(zxid);
                let fresh =
                    self.sessions.insert(session, Session { timeout_ms: *timeout_ms, password: *password, owner: 0 });
                assert!(fresh.is_none(), "session {session:#x} created twice: was index {zxid} applied before?");
                Applied { outcome: Outcome::SessionCreated { session }, events: Vec::new() }
            }
            ZkCommand::CloseSession { session } => self.close_session(*session, zxid),
            ZkCommand::Txn { session, owner, auth, write } => {
                let caller = Caller { session: *session, owner: *owner, auth, zxid, time: now_ms };
                match write {
                    Write::One(op) => self.apply_one(&caller, op),
                    Write::Multi(ops) => self.apply_multi(&caller, ops),
                }
            }
            ZkCommand::DeleteIfExpired { path } => self.delete_if_expired(path, zxid, now_ms),
            ZkCommand::Attach { session, owner } => {
                let reply = match self.sessions.get_mut(session) {
                    Some(s) => {
                        s.owner = *owner;
                        Ok(Response::Empty)
                    }
                    None => Err(ZkError::SessionExpired),
                };
                Applied { outcome: Outcome::Reply(reply), events: Vec::new() }
            }
        }
    }

    fn apply_one(&mut self, caller: &Caller<'_>, op: &WriteOp) -> Applied {
        let mut tx = Tx::new(self);
        match apply_op(&mut tx, caller, op) {
            Ok(done) => Applied { outcome: Outcome::Reply(Ok(reply(op, done))), events: tx.commit() },
            Err(e) => {
                tx.rollback();
                Applied { outcome: Outcome::Reply(Err(e)), events: Vec::new() }
            }
        }
    }

    /// All ops or none. When op `i` fails, the results are err 0 for the ops before it (they
    /// passed their checks), its own code for op `i`, and RuntimeInconsistency for the ops after
    /// it (never tried), as ZooKeeper reports them.
    fn apply_multi(&mut self, caller: &Caller<'_>, ops: &[WriteOp]) -> Applied {
        if ops.iter().any(|op| matches!(op, WriteOp::SetAcl(_))) {
            // No client can send this: a multi with setACL does not decode.
            return Applied { outcome: Outcome::Reply(Err(ZkError::MarshallingError)), events: Vec::new() };
        }
        let mut tx = Tx::new(self);
        let mut results = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            match apply_op(&mut tx, caller, op) {
                Ok(done) => results.push(result(op, done)),
                Err(e) => {
                    tx.rollback();
                    let results = (0..ops.len())
                        .map(|j| {
                            let err = match j.cmp(&i) {
                                std::cmp::Ordering::Less => OK,
                                std::cmp::Ordering::Equal => e.code(),
                                std::cmp::Ordering::Greater => ZkError::RuntimeInconsistency.code(),
                            };
                            OpResult::Error { err }
                        })
                        .collect();
                    return Applied { outcome: Outcome::Reply(Ok(Response::Multi(results))), events: Vec::new() };
                }
            }
        }
        Applied { outcome: Outcome::Reply(Ok(Response::Multi(results))), events: tx.commit() }
    }

    /// Deletes the session's ephemerals in path order, then the session. Closing a session that is
    /// already gone (closed by its client and expired by the leader at once) does nothing.
    fn close_session(&mut self, session: i64, zxid: i64) -> Applied {
        let paths: Vec<String> = self.ephemerals(session).map(str::to_string).collect();
        let mut tx = Tx::new(self);
        for path in &paths {
            remove(&mut tx, path, zxid);
        }
        let events = tx.commit();
        self.sessions.remove(&session);
        Applied { outcome: Outcome::Reply(Ok(Response::Empty)), events }
    }

    /// Deletes an expired container or TTL node. Not expired (any more) is BadVersion, as
    /// ZooKeeper answers a deleteContainer of a node that is no container; NotEmpty and NoNode as
    /// for a delete.
    fn delete_if_expired(&mut self, path: &str, zxid: i64, now_ms: i64) -> Applied {
        let verdict = match self.node(path) {
            None => Err(ZkError::NoNode),
            Some(node) if node.num_children != 0 => Err(ZkError::NotEmpty),
            Some(node) if !is_expired(node, now_ms) => Err(ZkError::BadVersion),
            Some(_) => Ok(()),
        };
        let events = match verdict {
            Ok(()) => {
                let mut tx = Tx::new(self);
                remove(&mut tx, path, zxid);
                tx.commit()
            }
            Err(_) => Vec::new(),
        };
        Applied { outcome: Outcome::Reply(verdict.map(|()| Response::Empty)), events }
    }
}

/// A single op's reply body.
fn reply(op: &WriteOp, done: Done) -> Response {
    match (op, done) {
        (WriteOp::Create(_), Done::Created { path, .. }) => Response::Create { path },
        (_, Done::Created { path, stat }) => Response::Create2 { path, stat },
        (_, Done::Changed(stat)) => Response::Stat(stat),
        (_, Done::Deleted | Done::Checked) => Response::Empty,
    }
}

/// A multi op's result.
fn result(op: &WriteOp, done: Done) -> OpResult {
    match (op, done) {
        (WriteOp::Create(_), Done::Created { path, .. }) => OpResult::Create { path },
        (_, Done::Created { path, stat }) => OpResult::Create2 { path, stat },
        (_, Done::Changed(stat)) => OpResult::SetData { stat },
        (_, Done::Deleted) => OpResult::Delete,
        (_, Done::Checked) => OpResult::Check,
    }
}
