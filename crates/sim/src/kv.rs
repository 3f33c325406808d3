//! The replicated state machine the simulator runs: registers keyed by small integers, with
//! put and compare-and-swap, and a table of each client's last request so a retried request is
//! applied once (the seeds: "clients send requests with an id, and the cluster ensures
//! idempotency").

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub type ClientId = u64;
pub type Key = u64;
pub type Value = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOp {
    Put { key: Key, value: Value },
    Cas { key: Key, expected: Option<Value>, new: Value },
}

/// A client write as it travels through the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command {
    pub client: ClientId,
    pub seq: u64,
    pub op: WriteOp,
}

/// What applying a write answered: a put always succeeds, a cas reports whether it swapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteResult {
    Put,
    Cas(bool),
}

impl Command {
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(48);
        buf.put_u64(self.client);
        buf.put_u64(self.seq);
        match self.op {
            WriteOp::Put { key, value } => {
                buf.put_u8(0);
                buf.put_u64(key);
                buf.put_u64(value);
            }
            WriteOp::Cas { key, expected, new } => {
                buf.put_u8(1);
                buf.put_u64(key);
                buf.put_u64(expected.map_or(0, |v| v + 1));
                buf.put_u64(new);
            }
        }
        buf.freeze()
    }

    pub fn decode(mut data: &[u8]) -> Option<Self> {
        if data.len() < 17 {
            return None;
        }
        let client = data.get_u64();
        let seq = data.get_u64();
        let op = match data.get_u8() {
            0 if data.len() == 16 => WriteOp::Put { key: data.get_u64(), value: data.get_u64() },
            1 if data.len() == 24 => {
                let key = data.get_u64();
                let expected = data.get_u64().checked_sub(1);
                WriteOp::Cas { key, expected, new: data.get_u64() }
            }
            _ => return None,
        };
        Some(Self { client, seq, op })
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStore {
    values: BTreeMap<Key, Value>,
    /// Per client: the last sequence number applied and its result.
    sessions: BTreeMap<ClientId, (u64, WriteResult)>,
}

/// The outcome of applying one command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    pub result: WriteResult,
    /// False when the command was a retry of a request already applied.
    pub fresh: bool,
}

impl KvStore {
    pub fn get(&self, key: Key) -> Option<Value> {
        self.values.get(&key).copied()
    }

    pub fn apply(&mut self, cmd: &Command) -> Applied {
        if let Some(&(last_seq, result)) = self.sessions.get(&cmd.client) {
            if cmd.seq <= last_seq {
                // A retry. Clients have one request outstanding, so an older seq than the last
                // can only be a stale duplicate whose answer nobody waits for any more.
                return Applied { result, fresh: false };
            }
        }
        let result = match cmd.op {
            WriteOp::Put { key, value } => {
                self.values.insert(key, value);
                WriteResult::Put
            }
            WriteOp::Cas { key, expected, new } => {
                let swapped = self.values.get(&key).copied() == expected;
                if swapped {
                    self.values.insert(key, new);
                }
                WriteResult::Cas(swapped)
            }
        };
        self.sessions.insert(cmd.client, (cmd.seq, result));
        Applied { result, fresh: true }
    }

    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_u32(self.values.len() as u32);
        for (&k, &v) in &self.values {
            buf.put_u64(k);
            buf.put_u64(v);
        }
        buf.put_u32(self.sessions.len() as u32);
        for (&client, &(seq, result)) in &self.sessions {
            buf.put_u64(client);
            buf.put_u64(seq);
            buf.put_u8(match result {
                WriteResult::Put => 0,
                WriteResult::Cas(false) => 1,
                WriteResult::Cas(true) => 2,
            });
        }
        buf.freeze()
    }

    /// Restores a snapshot; an empty one is the initial state.
    pub fn decode(mut data: &[u8]) -> Self {
        let mut store = Self::default();
        if data.is_empty() {
            return store;
        }
        for _ in 0..data.get_u32() {
            let (k, v) = (data.get_u64(), data.get_u64());
            store.values.insert(k, v);
        }
        for _ in 0..data.get_u32() {
            let (client, seq) = (data.get_u64(), data.get_u64());
            let result = match data.get_u8() {
                0 => WriteResult::Put,
                1 => WriteResult::Cas(false),
                _ => WriteResult::Cas(true),
            };
            store.sessions.insert(client, (seq, result));
        }
        store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retried_request_applies_once_and_returns_first_result() {
        let mut kv = KvStore::default();
        let cas = Command { client: 1, seq: 1, op: WriteOp::Cas { key: 0, expected: None, new: 5 } };
        assert_eq!(kv.apply(&cas), Applied { result: WriteResult::Cas(true), fresh: true });
        // The retry would fail if applied again (the value is now 5); it returns the first result.
        assert_eq!(kv.apply(&cas), Applied { result: WriteResult::Cas(true), fresh: false });
        assert_eq!(kv.get(0), Some(5));
    }

    #[test]
    fn codecs_round_trip() {
        let mut kv = KvStore::default();
        for (seq, op) in [WriteOp::Put { key: 1, value: 9 }, WriteOp::Cas { key: 1, expected: Some(9), new: 0 }]
            .into_iter()
            .enumerate()
        {
            let cmd = Command { client: 7, seq: seq as u64 + 1, op };
            assert_eq!(Command::decode(&cmd.encode()), Some(cmd));
            kv.apply(&cmd);
        }
        assert_eq!(KvStore::decode(&kv.encode()), kv);
        assert_eq!(Command::decode(b"short"), None);
    }
}
