//! Snapshots of the whole state machine: a versioned binary format closed by a crc32c checksum.
//!
//! Layout (integers little-endian): magic `TALLYMVC`, format version (u32), body, crc32c (u32) of all the
//! preceding bytes. Body: applied index; config; current and compacted revisions; lease id seed; keys in
//! order with their histories; leases (id, ttl; attachments are rebuilt from the live keys); sessions;
//! alarms (format 2 on; format 1 had none); auth: enabled, revision, users and roles as authpb
//! messages (format 3 on); the ZooKeeper tree and sessions as `tally_zk` encodes them (format 4
//! on).

use std::collections::BTreeMap;
use std::sync::Arc;

use prost::Message;

use crate::alarms::Alarms;
use crate::apply::{CommandResponse, Session, Sessions, StateMachine};
use crate::auth::AuthStore;
use crate::error::MvccError;
use crate::index::{HistoriesCopy, Index};
use crate::key_index::{Entry, KeyHistory};
use crate::lease::{Lease, Lessor};
use crate::revision::Revision;
use crate::store::{Store, StoreConfig};

const MAGIC: &[u8; 8] = b"TALLYMVC";
/// 2: alarms after the sessions; 3: auth after the alarms; 4: the ZooKeeper tree after auth.
/// Versions 1 to 3 are still read.
const FORMAT_VERSION: u32 = 4;

/// Why a snapshot could not be restored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Not a Tally MVCC snapshot.
    #[error("snapshot: bad magic")]
    BadMagic,
    /// A format this build cannot read.
    #[error("snapshot: unsupported format version {0}")]
    UnsupportedVersion(u32),
    /// The checksum does not match the contents.
    #[error("snapshot: checksum mismatch")]
    Checksum,
    /// The contents are malformed or inconsistent.
    #[error("snapshot: corrupt: {0}")]
    Corrupt(&'static str),
}

struct Writer<'a> {
    buf: &'a mut Vec<u8>,
}

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.buf.extend_from_slice(v);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

type R<T> = Result<T, SnapshotError>;
const SHORT: SnapshotError = SnapshotError::Corrupt("truncated");

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if n > self.buf.len() {
            return Err(SHORT);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> R<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| SHORT)?))
    }
    fn u64(&mut self) -> R<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| SHORT)?))
    }
    fn i64(&mut self) -> R<i64> {
        Ok(self.u64()? as i64)
    }
    fn len(&mut self) -> R<usize> {
        let n = self.u64()?;
        // every counted item takes at least one byte: a larger count is corrupt (and must not drive allocation)
        if n > self.buf.len() as u64 {
            return Err(SHORT);
        }
        Ok(n as usize)
    }
    fn bytes(&mut self) -> R<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }
}

fn write_response(w: &mut Writer<'_>, r: &CommandResponse) {
    match r {
        CommandResponse::Put(m) => {
            w.u8(1);
            w.bytes(&m.encode_to_vec());
        }
        CommandResponse::DeleteRange(m) => {
            w.u8(2);
            w.bytes(&m.encode_to_vec());
        }
        CommandResponse::Txn(m) => {
            w.u8(3);
            w.bytes(&m.encode_to_vec());
        }
        CommandResponse::Compaction(m) => {
            w.u8(4);
            w.bytes(&m.encode_to_vec());
        }
        CommandResponse::LeaseGrant(m) => {
            w.u8(5);
            w.bytes(&m.encode_to_vec());
        }
        CommandResponse::LeaseRevoke(m) => {
            w.u8(6);
            w.bytes(&m.encode_to_vec());
        }
        CommandResponse::Alarm(m) => {
            w.u8(9);
            w.bytes(&m.encode_to_vec());
        }
        CommandResponse::Auth(m) => {
            w.u8(10);
            w.bytes(&m.encode_to_vec());
        }
        CommandResponse::Error(e) => {
            w.u8(7);
            w.u8(e.tag());
        }
        CommandResponse::Noop => w.u8(8),
        // Cached without its watch events (see `StateMachine::apply`).
        CommandResponse::Zk(applied) => {
            w.u8(11);
            w.bytes(&applied.outcome.to_bytes());
        }
    }
}

fn read_response(r: &mut Reader<'_>) -> R<CommandResponse> {
    const BAD: SnapshotError = SnapshotError::Corrupt("bad cached response");
    Ok(match r.u8()? {
        1 => CommandResponse::Put(Message::decode(r.bytes()?).map_err(|_| BAD)?),
        2 => CommandResponse::DeleteRange(Message::decode(r.bytes()?).map_err(|_| BAD)?),
        3 => CommandResponse::Txn(Message::decode(r.bytes()?).map_err(|_| BAD)?),
        4 => CommandResponse::Compaction(Message::decode(r.bytes()?).map_err(|_| BAD)?),
        5 => CommandResponse::LeaseGrant(Message::decode(r.bytes()?).map_err(|_| BAD)?),
        6 => CommandResponse::LeaseRevoke(Message::decode(r.bytes()?).map_err(|_| BAD)?),
        7 => CommandResponse::Error(MvccError::from_tag(r.u8()?).ok_or(BAD)?),
        8 => CommandResponse::Noop,
        9 => CommandResponse::Alarm(Message::decode(r.bytes()?).map_err(|_| BAD)?),
        10 => CommandResponse::Auth(Message::decode(r.bytes()?).map_err(|_| BAD)?),
        11 => {
            let outcome = tally_zk::Outcome::from_bytes(r.bytes()?).ok_or(BAD)?;
            CommandResponse::Zk(tally_zk::Applied { outcome, events: Vec::new() })
        }
        _ => return Err(BAD),
    })
}

/// What a snapshot needs of a state machine, copied on the driver thread and encoded on another.
/// The key histories are shared with the state machine shard by shard, but not its key order:
/// the encoding sorts the keys itself, so the writes that follow the copy never copy the order
/// (5-9 ms at 100k keys for the first new key).
#[derive(Debug)]
pub struct SnapshotCopy {
    pub(crate) histories: HistoriesCopy,
    /// The state machine with an empty store index, for everything but the keys.
    pub(crate) rest: StateMachine,
}

impl SnapshotCopy {
    /// Serializes the state as [`StateMachine::snapshot_into`] does, byte for byte.
    pub fn snapshot_into(&self, buf: &mut Vec<u8>) {
        let keys = self.histories.sorted();
        write_snapshot(&self.rest, keys.len(), keys.into_iter(), buf);
    }
}

impl StateMachine {
    /// Serializes the whole state.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        self.snapshot_into(&mut buf);
        buf
    }

    /// Appends the serialized state to `buf`, after whatever it holds (which the checksum does
    /// not cover): a caller can frame the snapshot without copying it.
    pub fn snapshot_into(&self, buf: &mut Vec<u8>) {
        write_snapshot(self, self.store.index.len(), self.store.index.iter(), buf);
    }

    /// A copy to encode a snapshot from, cheap to take and to write after (see [`SnapshotCopy`]).
    pub fn copy_for_snapshot(&self) -> SnapshotCopy {
        let histories = self.store.index.histories_copy();
        let s = &self.store;
        let store = Store {
            index: Index::default(),
            current_rev: s.current_rev,
            compact_rev: s.compact_rev,
            lessor: s.lessor.clone(),
            config: s.config,
            approx_bytes: s.approx_bytes,
            live_keys: s.live_keys,
        };
        let rest = StateMachine {
            store,
            sessions: self.sessions.clone(),
            applied_index: self.applied_index,
            alarms: self.alarms.clone(),
            auth: self.auth.clone(),
            zk: self.zk.clone(),
        };
        SnapshotCopy { histories, rest }
    }
}

/// The snapshot of `sm` with `keys` (in order, `key_count` of them) as its store's keys.
pub(crate) fn write_snapshot<'a>(
    sm: &StateMachine,
    key_count: usize,
    keys: impl Iterator<Item = (&'a Arc<[u8]>, &'a KeyHistory)>,
    buf: &mut Vec<u8>,
) {
    let s = &sm.store;
    let start = buf.len();
    buf.reserve(s.approx_bytes as usize + 64);
    let mut w = Writer { buf };
    w.buf.extend_from_slice(MAGIC);
    w.u32(FORMAT_VERSION);
    w.u64(sm.applied_index);
    w.u64(s.config.max_txn_ops as u64);
    w.i64(s.config.min_lease_ttl);
    w.u64(s.config.sessions_max as u64);
    w.i64(s.current_rev);
    w.i64(s.compact_rev);
    w.u64(s.lessor.id_seed);
    w.u64(key_count as u64);
    for (key, h) in keys {
        w.bytes(key);
        w.u64(h.entries.len() as u64);
        for e in &h.entries {
            w.i64(e.rev.main);
            w.i64(e.rev.sub);
            w.i64(e.create);
            w.i64(e.version);
            w.i64(e.lease);
            match &e.value {
                None => w.u8(0),
                Some(v) => {
                    w.u8(1);
                    w.bytes(v);
                }
            }
        }
    }
    w.u64(s.lessor.leases.len() as u64);
    for l in s.lessor.leases.values() {
        w.i64(l.id);
        w.i64(l.ttl);
    }
    w.u64(sm.sessions.len() as u64);
    for (client, sess) in sm.sessions.by_recency() {
        w.u64(client);
        w.u64(sess.seq);
        w.u64(sess.last_index);
        write_response(&mut w, &sess.response);
    }
    w.u64(sm.alarms.raised.len() as u64);
    for &(alarm, member) in &sm.alarms.raised {
        w.i64(alarm.into());
        w.u64(member);
    }
    write_auth(&mut w, &sm.auth);
    // What `w.bytes(&sm.zk.encode_snapshot())` would write, without a tree-sized copy.
    let len_at = w.buf.len();
    w.u64(0);
    *w.buf = sm.zk.encode_snapshot_appending(std::mem::take(w.buf));
    let zk_len = (w.buf.len() - len_at - 8) as u64;
    w.buf[len_at..len_at + 8].copy_from_slice(&zk_len.to_le_bytes());
    let crc = crc32c::crc32c(&w.buf[start..]);
    w.u32(crc);
}

impl StateMachine {
    /// Rebuilds a state machine from [`StateMachine::snapshot`] output. Corrupt input is an error.
    pub fn restore(data: &[u8]) -> Result<StateMachine, SnapshotError> {
        let (mut r, version) = open(data)?;
        let applied_index = r.u64()?;
        let mut store = read_store_header(&mut r)?;
        let attachments = read_keys(&mut r, &mut store)?;
        store.lessor = read_leases(&mut r, store.lessor.id_seed, &attachments)?;
        let sessions = read_sessions(&mut r, store.config.sessions_max)?;
        // Sections added by later formats: older snapshots restore with them empty.
        let alarms = if version >= 2 { read_alarms(&mut r)? } else { Alarms::default() };
        let auth = if version >= 3 { read_auth(&mut r)? } else { AuthStore::default() };
        let zk = match version {
            4.. => tally_zk::ZkState::decode_snapshot(r.bytes()?)
                .map_err(|_| SnapshotError::Corrupt("the ZooKeeper tree does not decode"))?,
            _ => tally_zk::ZkState::default(),
        };
        if !r.buf.is_empty() {
            return Err(SnapshotError::Corrupt("trailing bytes"));
        }
        Ok(StateMachine { store, sessions, applied_index, alarms, auth, zk })
    }
}

/// Checks the framing (magic, a version this build reads, checksum); returns a reader over the
/// body after the version, and the version.
fn open(data: &[u8]) -> R<(Reader<'_>, u32)> {
    if data.len() < MAGIC.len() + 8 || &data[..MAGIC.len()] != MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let (body, crc) = data.split_at(data.len() - 4);
    let mut r = Reader { buf: &body[MAGIC.len()..] };
    let version = r.u32()?;
    if !(1..=FORMAT_VERSION).contains(&version) {
        return Err(SnapshotError::UnsupportedVersion(version));
    }
    if crc32c::crc32c(body).to_le_bytes() != crc {
        return Err(SnapshotError::Checksum);
    }
    Ok((r, version))
}

/// An empty store with the snapshot's config, revisions and lease id seed.
fn read_store_header(r: &mut Reader<'_>) -> R<Store> {
    let config = StoreConfig {
        max_txn_ops: r.u64()? as usize,
        min_lease_ttl: r.i64()?,
        sessions_max: (r.u64()? as usize).max(1),
    };
    let mut store = Store::new(config);
    store.current_rev = r.i64()?;
    store.compact_rev = r.i64()?;
    store.lessor.id_seed = r.u64()?;
    if store.current_rev < 1 || store.compact_rev > store.current_rev {
        return Err(SnapshotError::Corrupt("revisions"));
    }
    Ok(store)
}

/// Reads the keys (strictly ascending) and their histories into `store`, with its live-key count
/// and size. Returns the (lease, key) pairs of live keys with a lease: the snapshot stores no
/// attachments, they are rebuilt from these once the leases are read.
fn read_keys(r: &mut Reader<'_>, store: &mut Store) -> R<Vec<(i64, Arc<[u8]>)>> {
    let nkeys = r.len()?;
    let mut prev_key: Option<Arc<[u8]>> = None;
    let mut attachments = Vec::new();
    for _ in 0..nkeys {
        let key: Arc<[u8]> = Arc::from(r.bytes()?);
        if key.is_empty() || prev_key.as_ref().is_some_and(|p| *p >= key) {
            return Err(SnapshotError::Corrupt("key order"));
        }
        let h = read_history(r, store.current_rev)?;
        store.approx_bytes += h.entries.iter().map(|e| e.cost(key.len())).sum::<u64>();
        if let Some(e) = h.current() {
            store.live_keys += 1;
            if e.lease != 0 {
                attachments.push((e.lease, key.clone()));
            }
        }
        store.index.insert(key.clone(), h);
        prev_key = Some(key);
    }
    Ok(attachments)
}

/// One key's history: at least one entry, revisions strictly ascending and within
/// `1..=current_rev`.
fn read_history(r: &mut Reader<'_>, current_rev: i64) -> R<KeyHistory> {
    let n = r.len()?;
    if n == 0 {
        return Err(SnapshotError::Corrupt("empty key history"));
    }
    let mut entries: Vec<Entry> = Vec::with_capacity(n);
    for _ in 0..n {
        let e = read_entry(r)?;
        if e.rev.main < 1 || e.rev.main > current_rev || entries.last().is_some_and(|p| p.rev >= e.rev) {
            return Err(SnapshotError::Corrupt("revision order"));
        }
        entries.push(e);
    }
    Ok(KeyHistory { entries })
}

fn read_entry(r: &mut Reader<'_>) -> R<Entry> {
    let rev = Revision::new(r.i64()?, r.i64()?);
    let (create, version, lease) = (r.i64()?, r.i64()?, r.i64()?);
    let value = match r.u8()? {
        0 => None,
        1 => Some(Box::<[u8]>::from(r.bytes()?)),
        _ => return Err(SnapshotError::Corrupt("entry kind")),
    };
    Ok(Entry { rev, create, version, lease, value })
}

/// The leases (unique, non-zero ids), with the live keys in `attachments` attached: each must
/// name a lease that exists.
fn read_leases(r: &mut Reader<'_>, id_seed: u64, attachments: &[(i64, Arc<[u8]>)]) -> R<Lessor> {
    let nleases = r.len()?;
    let mut leases = BTreeMap::new();
    for _ in 0..nleases {
        let (id, ttl) = (r.i64()?, r.i64()?);
        if id == 0 || leases.insert(id, Lease { id, ttl, keys: Default::default() }).is_some() {
            return Err(SnapshotError::Corrupt("lease ids"));
        }
    }
    let mut lessor = Lessor { leases, id_seed };
    for (id, key) in attachments {
        if lessor.lookup(*id).is_none() {
            return Err(SnapshotError::Corrupt("key attached to a missing lease"));
        }
        lessor.attach(*id, key);
    }
    Ok(lessor)
}

/// The client sessions (the retry cache), back in recency order once all are read.
fn read_sessions(r: &mut Reader<'_>, sessions_max: usize) -> R<Sessions> {
    let nsessions = r.len()?;
    let mut sessions = Sessions::new(sessions_max);
    for _ in 0..nsessions {
        let (client, seq, last_index) = (r.u64()?, r.u64()?, r.u64()?);
        let response = read_response(r)?;
        if !sessions.restore(client, Session { seq, response, last_index }) {
            return Err(SnapshotError::Corrupt("sessions"));
        }
    }
    if !sessions.finish_restore() {
        return Err(SnapshotError::Corrupt("sessions"));
    }
    Ok(sessions)
}

fn read_alarms(r: &mut Reader<'_>) -> R<Alarms> {
    let mut alarms = Alarms::default();
    for _ in 0..r.len()? {
        let (alarm, member) = (r.i64()?, r.u64()?);
        let alarm = i32::try_from(alarm).map_err(|_| SnapshotError::Corrupt("alarm type"))?;
        alarms.raised.insert((alarm, member));
    }
    Ok(alarms)
}

fn write_auth(w: &mut Writer<'_>, auth: &AuthStore) {
    w.u8(u8::from(auth.is_enabled()));
    w.u64(auth.revision());
    w.u64(auth.users().count() as u64);
    for u in auth.users() {
        w.bytes(&u.encode_to_vec());
    }
    w.u64(auth.roles().count() as u64);
    for role in auth.roles() {
        w.bytes(&role.encode_to_vec());
    }
}

fn read_auth(r: &mut Reader<'_>) -> R<AuthStore> {
    const BAD: SnapshotError = SnapshotError::Corrupt("auth");
    let enabled = match r.u8()? {
        0 => false,
        1 => true,
        _ => return Err(BAD),
    };
    let revision = r.u64()?;
    let users = (0..r.len()?).map(|_| Message::decode(r.bytes()?).map_err(|_| BAD)).collect::<R<Vec<_>>>()?;
    let roles = (0..r.len()?).map(|_| Message::decode(r.bytes()?).map_err(|_| BAD)).collect::<R<Vec<_>>>()?;
    Ok(AuthStore::restore(enabled, revision, users, roles))
}
