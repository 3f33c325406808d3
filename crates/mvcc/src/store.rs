//! The multi-version key-value store: a key index with per-key history, the current and compacted
//! revisions, and the leases. Write transactions bump the main revision once, whatever they change.

use std::ops::Bound;
use std::sync::Arc;

use tally_proto::etcdserverpb::{CompactionResponse, LeaseGrantResponse, LeaseRevokeResponse, ResponseHeader};
use tally_proto::mvccpb::{event::EventType, Event, KeyValue};

use crate::error::MvccError;
use crate::index::Index;
use crate::key_index::{Entry, KeyHistory};
use crate::lease::{Lease, Lessor};
use crate::revision::{Revision, INITIAL_REVISION, NEVER_COMPACTED};

/// Deterministic parameters of the state machine; every replica must use the same values (they travel in
/// snapshots).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Maximum operations per txn (etcd's `--max-txn-ops`, default 128).
    pub max_txn_ops: usize,
    /// Minimum lease TTL in seconds; shorter grants are raised to it (etcd: ceil(1.5 × election timeout),
    /// 2 s with default settings).
    pub min_lease_ttl: i64,
    /// Maximum number of client sessions remembered for exactly-once application.
    pub sessions_max: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { max_txn_ops: 128, min_lease_ttl: 2, sessions_max: 100_000 }
    }
}

/// Which keys a request addresses, after etcd's `mkGteRange`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyRange<'a> {
    /// Empty range_end: exactly `key`.
    Single(&'a [u8]),
    /// range_end "\0": every key >= `key`.
    FromKey(&'a [u8]),
    /// `[key, end)`; empty if `end <= key`.
    Between(&'a [u8], &'a [u8]),
}

impl<'a> KeyRange<'a> {
    pub(crate) fn new(key: &'a [u8], range_end: &'a [u8]) -> KeyRange<'a> {
        match range_end {
            [] => KeyRange::Single(key),
            [0] => KeyRange::FromKey(key),
            end => KeyRange::Between(key, end),
        }
    }
}

/// A store read's result, as etcd's `mvcc.RangeResult`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RangeResult {
    pub(crate) kvs: Vec<KeyValue>,
    pub(crate) count: i64,
    pub(crate) rev: i64,
}

/// An open write transaction: it writes at `begin_rev + 1` and records the events it produced.
#[derive(Debug)]
pub(crate) struct WriteTxn {
    pub(crate) begin_rev: i64,
    pub(crate) events: Vec<Event>,
}

impl WriteTxn {
    /// The revision reads inside the transaction see (etcd's `storeTxnWrite.Range`).
    pub(crate) fn read_rev(&self) -> i64 {
        self.begin_rev + i64::from(!self.events.is_empty())
    }

    /// The revision the transaction writes at.
    pub(crate) fn write_rev(&self) -> i64 {
        self.begin_rev + 1
    }
}

/// A header carrying only the revision; the server fills cluster id, member id and raft term.
pub(crate) fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader { revision, ..Default::default() })
}

pub(crate) fn entry_to_kv(key: &[u8], e: &Entry) -> KeyValue {
    KeyValue { value: e.value.as_deref().map(<[u8]>::to_vec).unwrap_or_default(), ..entry_to_key(key, e) }
}

/// `entry_to_kv` without the value, for keys-only reads.
fn entry_to_key(key: &[u8], e: &Entry) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        create_revision: e.create,
        mod_revision: e.rev.main,
        version: e.version,
        value: Vec::new(),
        lease: e.lease,
    }
}

/// The MVCC store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Store {
    pub(crate) index: Index,
    pub(crate) current_rev: i64,
    pub(crate) compact_rev: i64,
    pub(crate) lessor: Lessor,
    pub(crate) config: StoreConfig,
    pub(crate) approx_bytes: u64,
    /// Keys that exist now (not deleted), for etcd's `etcd_debugging_mvcc_keys_total`.
    pub(crate) live_keys: u64,
}

impl Default for Store {
    fn default() -> Self {
        Store::new(StoreConfig::default())
    }
}

impl Store {
    /// An empty store at revision 1.
    pub fn new(config: StoreConfig) -> Store {
        Store {
            index: Index::default(),
            current_rev: INITIAL_REVISION,
            compact_rev: NEVER_COMPACTED,
            lessor: Lessor::default(),
            config,
            approx_bytes: 0,
            live_keys: 0,
        }
    }

    /// The current main revision.
    pub fn revision(&self) -> i64 {
        self.current_rev
    }

    /// The revision of the last compaction (-1 if never compacted, as etcd).
    pub fn compact_revision(&self) -> i64 {
        self.compact_rev
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Number of keys with any retained history (live or not).
    pub fn index_len(&self) -> usize {
        self.index.len()
    }

    /// Number of keys that exist now (not deleted).
    pub fn live_keys(&self) -> u64 {
        self.live_keys
    }

    /// Estimated bytes of stored data (keys, values and per-revision overhead), for etcd's Status `dbSize`.
    pub fn size_bytes(&self) -> u64 {
        self.approx_bytes
    }

    /// A lease by id.
    pub fn lease(&self, id: i64) -> Option<&Lease> {
        self.lessor.lookup(id)
    }

    /// All leases, by id.
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.lessor.leases.values()
    }

    /// Visits the key histories addressed by `kr`, in key order, until `f` returns false.
    pub(crate) fn visit<'s>(&'s self, kr: KeyRange<'_>, mut f: impl FnMut(&'s Arc<[u8]>, &'s KeyHistory) -> bool) {
        match kr {
            KeyRange::Single(k) => {
                if let Some((key, h)) = self.index.get_key_value(k) {
                    f(key, h);
                }
            }
            KeyRange::FromKey(k) => {
                for (key, h) in self.index.range(Bound::Included(k), Bound::Unbounded) {
                    if !f(key, h) {
                        break;
                    }
                }
            }
            KeyRange::Between(k, end) => {
                if k >= end {
                    return;
                }
                for (key, h) in self.index.range(Bound::Included(k), Bound::Excluded(end)) {
                    if !f(key, h) {
                        break;
                    }
                }
            }
        }
    }

    /// The live key-values in `kr` at the current revision.
    pub(crate) fn live_in(&self, kr: KeyRange<'_>) -> Vec<KeyValue> {
        let mut out = Vec::new();
        self.visit(kr, |k, h| {
            if let Some(e) = h.current() {
                out.push(entry_to_kv(k, e));
            }
            true
        });
        out
    }

    /// etcd's `storeTxnRead.rangeKeys`: reads `kr` at `rev` (0 or negative: `cur_rev`), returning at most
    /// `limit` kvs (0: all) and the total count of keys in range. Without `values` the kvs carry
    /// none, so a keys-only scan of a large prefix copies only keys.
    pub(crate) fn range_keys(
        &self,
        kr: KeyRange<'_>,
        rev: i64,
        limit: i64,
        count_only: bool,
        values: bool,
        cur_rev: i64,
    ) -> Result<RangeResult, MvccError> {
        if rev > cur_rev {
            return Err(MvccError::FutureRev);
        }
        let rev = if rev <= 0 { cur_rev } else { rev };
        if rev < self.compact_rev {
            return Err(MvccError::Compacted);
        }
        let mut kvs = Vec::new();
        let mut count = 0i64;
        self.visit(kr, |k, h| {
            if let Some(e) = h.get(rev) {
                if !count_only && (limit <= 0 || (kvs.len() as i64) < limit) {
                    kvs.push(if values { entry_to_kv(k, e) } else { entry_to_key(k, e) });
                }
                count += 1;
            }
            true
        });
        Ok(RangeResult { kvs, count, rev: cur_rev })
    }

    /// Opens a write transaction.
    pub(crate) fn begin_write(&self) -> WriteTxn {
        WriteTxn { begin_rev: self.current_rev, events: Vec::new() }
    }

    /// Closes a write transaction: bumps the revision if it changed anything. Returns its events.
    pub(crate) fn end_write(&mut self, txn: WriteTxn) -> Vec<Event> {
        if !txn.events.is_empty() {
            self.current_rev = txn.begin_rev + 1;
        }
        txn.events
    }

    fn push_entry(&mut self, key: &Arc<[u8]>, entry: Entry) {
        self.approx_bytes += entry.cost(key.len());
        self.index.get_or_insert(key).entries.push(entry);
    }

    /// Puts `key` in the write transaction (etcd's `storeTxnWrite.put`). Updating a key that
    /// exists costs one search of the index (each step of which reads another key's memory).
    pub(crate) fn put_key(&mut self, txn: &mut WriteTxn, key: &[u8], value: &[u8], lease: i64) {
        let rev = Revision::new(txn.write_rev(), txn.events.len() as i64);
        let next = |prev: Option<&Entry>| {
            let (create, version) = prev.map_or((rev.main, 1), |p| (p.create, p.version + 1));
            Entry { rev, create, version, lease, value: Some(value.into()) }
        };
        let (kv, prev_kv, old_lease) = match self.index.get_mut(key) {
            Some(history) => {
                let prev = history.current();
                if prev.is_none() {
                    self.live_keys += 1;
                }
                let entry = next(prev);
                let watch_prev = history.watch_prev(rev.main, entry.create == rev.main);
                let written =
                    (entry_to_kv(key, &entry), watch_prev.map(|p| entry_to_kv(key, p)), prev.map_or(0, |p| p.lease));
                self.approx_bytes += entry.cost(key.len());
                history.entries.push(entry);
                written
            }
            None => {
                self.live_keys += 1;
                let entry = next(None);
                let kv = entry_to_kv(key, &entry);
                self.approx_bytes += entry.cost(key.len());
                self.index.insert(Arc::from(key), KeyHistory { entries: vec![entry] });
                (kv, None, 0)
            }
        };
        if old_lease != 0 || lease != 0 {
            // Leases hold the index's own copy of the key.
            let key = self.index.get_key_value(key).expect("just written").0.clone();
            if old_lease != 0 {
                self.lessor.detach(old_lease, &key);
            }
            if lease != 0 {
                self.lessor.attach(lease, &key);
            }
        }
        txn.events.push(Event { r#type: EventType::Put as i32, kv: Some(kv), prev_kv });
    }

    /// Deletes the live keys in `kr` (etcd's `storeTxnWrite.deleteRange`); returns how many.
    pub(crate) fn delete_range_keys(&mut self, txn: &mut WriteTxn, kr: KeyRange<'_>) -> i64 {
        let rev = txn.write_rev();
        // (key, its lease, the key before this txn for the watch event's prev_kv)
        let victims: Vec<(Arc<[u8]>, i64, Option<KeyValue>)> = {
            let mut v = Vec::new();
            self.visit(kr, |k, h| {
                if let Some(e) = h.current() {
                    v.push((k.clone(), e.lease, h.watch_prev(rev, false).map(|p| entry_to_kv(k, p))));
                }
                true
            });
            v
        };
        let deleted = victims.len() as i64;
        self.live_keys -= victims.len() as u64;
        for (key, lease, prev_kv) in victims {
            let entry = Entry {
                rev: Revision::new(rev, txn.events.len() as i64),
                create: 0,
                version: 0,
                lease: 0,
                value: None,
            };
            self.push_entry(&key, entry);
            if lease != 0 {
                self.lessor.detach(lease, &key);
            }
            txn.events.push(Event {
                r#type: EventType::Delete as i32,
                kv: Some(KeyValue { key: key.to_vec(), mod_revision: rev, ..Default::default() }),
                prev_kv,
            });
        }
        deleted
    }

    /// Compacts history before `rev` (etcd's `store.Compact`; not a write, the revision is unchanged).
    pub fn compact(&mut self, rev: i64) -> Result<CompactionResponse, MvccError> {
        if rev <= self.compact_rev {
            return Err(MvccError::Compacted);
        }
        if rev > self.current_rev {
            return Err(MvccError::FutureRev);
        }
        self.compact_rev = rev;
        let mut removed = 0u64;
        self.index.retain(|h| h.compaction_point(rev) > 0, |k, h| removed += h.compact(rev, k.len()));
        self.approx_bytes -= removed;
        Ok(CompactionResponse { header: header(self.current_rev) })
    }

    /// Grants a lease (etcd's `lessor.Grant`); id 0 picks one.
    pub fn lease_grant(&mut self, id: i64, ttl: i64) -> Result<LeaseGrantResponse, MvccError> {
        let min = self.config.min_lease_ttl;
        let l = self.lessor.grant(id, ttl, min)?;
        Ok(LeaseGrantResponse { header: header(self.current_rev), id: l.id, ttl: l.ttl, error: String::new() })
    }

    /// Revokes a lease, deleting its keys (in key order) in one write transaction.
    pub fn lease_revoke(&mut self, id: i64) -> Result<(LeaseRevokeResponse, Vec<Event>), MvccError> {
        let keys: Vec<Arc<[u8]>> = match self.lessor.lookup(id) {
            Some(l) => l.keys.iter().cloned().collect(),
            None => return Err(MvccError::LeaseNotFound),
        };
        let mut txn = self.begin_write();
        for k in &keys {
            self.delete_range_keys(&mut txn, KeyRange::Single(k));
        }
        let events = self.end_write(txn);
        self.lessor.leases.remove(&id);
        Ok((LeaseRevokeResponse { header: header(self.current_rev) }, events))
    }
}
