//! A replica fed commands at consecutive indexes, one second apart, with shorthands for ops.
#![allow(dead_code)]

use tally_zk::proto::*;
use tally_zk::tree::{Applied, Outcome, Write, ZkCommand, ZkState};
use tally_zk::ZkError;

pub const OPEN: i32 = 0;
pub const EPHEMERAL: i32 = 1;
pub const SEQUENTIAL: i32 = 2;
pub const EPHEMERAL_SEQUENTIAL: i32 = 3;
pub const CONTAINER: i32 = 4;
pub const TTL: i32 = 5;

pub struct Replica {
    pub state: ZkState,
    /// The index of the next command.
    pub zxid: i64,
    /// The leader's clock for the next command.
    pub now: i64,
    /// A session opened at start.
    pub session: i64,
}

impl Replica {
    pub fn new() -> Replica {
        let mut r = Replica { state: ZkState::new(), zxid: 1, now: 1_000_000, session: 0 };
        r.session = r.open_session();
        r
    }

    /// Applies at the next index, checks the invariants, and round-trips the command's encoding.
    pub fn apply(&mut self, command: ZkCommand) -> Applied {
        assert_eq!(ZkCommand::decode(&command.encode()), Ok(command.clone()));
        let applied = self.state.apply(self.zxid, self.now, &command);
        self.zxid += 1;
        self.now += 1000;
        assert_eq!(self.state.check_invariants(), Ok(()));
        applied
    }

    pub fn open_session(&mut self) -> i64 {
        match self.apply(ZkCommand::CreateSession { timeout_ms: 10_000, password: [9; 16] }).outcome {
            Outcome::SessionCreated { session } => session,
            other => panic!("CreateSession answered {other:?}"),
        }
    }

    pub fn close_session(&mut self, session: i64) -> Applied {
        self.apply(ZkCommand::CloseSession { session })
    }

    pub fn txn(&mut self, session: i64, auth: Vec<Id>, write: Write) -> Applied {
        self.txn_on(session, 0, auth, write)
    }

    /// A write that came on connection `owner`.
    pub fn txn_on(&mut self, session: i64, owner: u64, auth: Vec<Id>, write: Write) -> Applied {
        self.apply(ZkCommand::Txn { session, owner, auth, write })
    }

    /// One op by the default session, without identities; its reply.
    pub fn write(&mut self, op: WriteOp) -> Result<Response, ZkError> {
        reply(self.txn(self.session, vec![], Write::One(op)))
    }

    pub fn multi(&mut self, ops: Vec<WriteOp>) -> Applied {
        self.txn(self.session, vec![], Write::Multi(ops))
    }

    pub fn create(&mut self, path: &str, flags: i32) -> Result<Response, ZkError> {
        self.write(create(path, flags))
    }

    /// Creates and answers the created path, panicking on failure.
    pub fn mk(&mut self, path: &str, flags: i32) -> String {
        match self.create(path, flags) {
            Ok(Response::Create { path }) => path,
            other => panic!("create {path} answered {other:?}"),
        }
    }

    pub fn stat(&self, path: &str) -> Stat {
        self.state.exists(path, &[]).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    pub fn children(&self, path: &str) -> Vec<String> {
        self.state.get_children(path, &[]).unwrap()
    }
}

pub fn reply(applied: Applied) -> Result<Response, ZkError> {
    match applied.outcome {
        Outcome::Reply(reply) => reply,
        other => panic!("expected a reply, got {other:?}"),
    }
}

pub fn create(path: &str, flags: i32) -> WriteOp {
    WriteOp::Create(CreateRequest { path: path.into(), data: Some(b"d".to_vec()), acl: Acl::open_unsafe(), flags })
}

pub fn create_with(path: &str, flags: i32, acl: Vec<Acl>) -> WriteOp {
    WriteOp::Create(CreateRequest { path: path.into(), data: None, acl, flags })
}

pub fn delete(path: &str, version: i32) -> WriteOp {
    WriteOp::Delete(DeleteRequest { path: path.into(), version })
}

pub fn set_data(path: &str, data: &[u8], version: i32) -> WriteOp {
    WriteOp::SetData(SetDataRequest { path: path.into(), data: Some(data.to_vec()), version })
}

pub fn set_acl(path: &str, acl: Vec<Acl>, version: i32) -> WriteOp {
    WriteOp::SetAcl(SetAclRequest { path: path.into(), acl, version })
}

pub fn check(path: &str, version: i32) -> WriteOp {
    WriteOp::Check(CheckVersionRequest { path: path.into(), version })
}

/// The (path, event) pairs of an entry.
pub fn events(applied: &Applied) -> Vec<(String, EventType)> {
    applied.events.iter().map(|e| (e.path.clone(), e.event_type)).collect()
}

pub fn ev(path: &str, event_type: EventType) -> (String, EventType) {
    (path.to_string(), event_type)
}
