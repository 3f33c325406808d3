//! The seeded random operation generator.
//!
//! Every seed gets its own key space under `s{seed:06}/`: eight keys with the shared prefix
//! `s{seed:06}/k/` plus three outside it (`a`, `k` — the prefix without its slash — and `z`).
//! Seeds run in increasing order, so a from-key range of one seed never sees another seed's keys.
//!
//! Ops are drawn from the seed's own random stream; revisions (range/compact/watch/compare
//! revisions) are drawn *relative* to the state the run is in (current and compacted revision,
//! known from etcd's answers), and lease ids from the leases this seed granted. Both systems get
//! the same request (Tally's lease ids translated, see `exec`).

use tally_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use tally_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use tally_proto::etcdserverpb::request_op::Request;
use tally_proto::etcdserverpb::watch_create_request::FilterType;
use tally_proto::etcdserverpb::*;

/// etcd's `MaxLeaseTTL`.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;
/// Watches created per seed at most (each costs a quiet period when its events are collected).
const MAX_WATCHES_PER_SEED: usize = 2;

/// splitmix64: small, fast, and stable across crate versions (a seed replays forever).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5eed_7a11_d1ff_0000)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with probability `pct` percent.
    pub fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// The kinds of op, for the exclusion list and for reporting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Put,
    Range,
    Delete,
    Txn,
    Compact,
    LeaseGrant,
    LeaseRevoke,
    LeaseTtl,
    Watch,
    Progress,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Put,
        Kind::Range,
        Kind::Delete,
        Kind::Txn,
        Kind::Compact,
        Kind::LeaseGrant,
        Kind::LeaseRevoke,
        Kind::LeaseTtl,
        Kind::Watch,
        Kind::Progress,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Put => "put",
            Kind::Range => "range",
            Kind::Delete => "delete",
            Kind::Txn => "txn",
            Kind::Compact => "compact",
            Kind::LeaseGrant => "lease_grant",
            Kind::LeaseRevoke => "lease_revoke",
            Kind::LeaseTtl => "lease_ttl",
            Kind::Watch => "watch",
            Kind::Progress => "progress",
        }
    }

    fn weight(self) -> u64 {
        match self {
            Kind::Put => 24,
            Kind::Range => 20,
            Kind::Delete => 8,
            Kind::Txn => 16,
            Kind::Compact => 2,
            Kind::LeaseGrant => 6,
            Kind::LeaseRevoke => 3,
            Kind::LeaseTtl => 4,
            Kind::Watch => 5,
            Kind::Progress => 2,
        }
    }
}

/// One generated operation, as sent to etcd (Tally gets the same with its own lease ids).
#[derive(Clone, Debug)]
pub enum Op {
    Put(PutRequest),
    Range(RangeRequest),
    Delete(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact(CompactionRequest),
    LeaseGrant(LeaseGrantRequest),
    LeaseRevoke(LeaseRevokeRequest),
    LeaseTtl(LeaseTimeToLiveRequest),
    Watch(WatchCreateRequest),
    /// A progress request on the seed's watch stream.
    Progress,
}

/// What the generator knows of the run; updated by the executor from etcd's answers.
#[derive(Default)]
pub struct GenState {
    /// The store's current revision (the newest header revision etcd returned).
    pub current_rev: i64,
    /// The last revision a compaction succeeded at (0: none yet).
    pub compact_rev: i64,
    /// Leases of this seed with long TTLs, usable on keys (etcd's ids).
    pub leases: Vec<i64>,
    /// Client-chosen lease ids granted in this seed, revoked ones included.
    pub granted_ids: Vec<i64>,
    /// Revoked leases of this seed (etcd's ids).
    pub revoked: Vec<i64>,
    pub watches: usize,
}

pub struct Gen {
    pub rng: Rng,
    seed: u64,
    base: String,
    next_lease: i64,
    excluded: Vec<Kind>,
}

pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl Gen {
    pub fn new(seed: u64, excluded: Vec<Kind>) -> Gen {
        Gen { rng: Rng::new(seed), seed, base: format!("s{seed:06}/"), next_lease: (seed as i64 + 1) * 1000, excluded }
    }

    fn prefix(&self) -> Vec<u8> {
        format!("{}k/", self.base).into_bytes()
    }

    fn key(&mut self) -> Vec<u8> {
        if self.rng.pct(80) {
            format!("{}k/{}", self.base, self.rng.below(8)).into_bytes()
        } else {
            let k = *self.rng.pick(&["a", "k", "z"]);
            format!("{}{k}", self.base).into_bytes()
        }
    }

    fn value(&mut self) -> Vec<u8> {
        match self.rng.below(10) {
            0 => Vec::new(),
            1..=6 => format!("v{}", self.rng.below(4)).into_bytes(),
            _ => format!("val-{}-{}", self.seed, self.rng.below(1000)).into_bytes(),
        }
    }

    /// A lease id a unknown to both systems.
    fn unknown_lease(&self) -> i64 {
        (self.seed as i64 + 1) * 1000 + 999
    }

    /// A revision relative to the current one; `allow_zero` for fields where 0 means "latest".
    fn revision(&mut self, st: &GenState) -> i64 {
        let cur = st.current_rev.max(1);
        // Always two draws, whatever the state: a seed draws the same ops alone as in a batch.
        let (which, k) = (self.rng.below(10), self.rng.range(1, 6));
        match which {
            0..=1 => cur,
            2..=5 => (cur - k).max(1),
            6 => cur + k.min(3),
            7 if st.compact_rev > 0 => (st.compact_rev - (k - 1).min(2)).max(1),
            7 | 8 => (st.compact_rev + (k - 1).min(2)).max(1),
            _ => 0,
        }
    }

    /// (key, range_end) of a single key, the seed's prefix, a from-key range or an explicit range.
    fn key_range(&mut self) -> (Vec<u8>, Vec<u8>) {
        match self.rng.below(100) {
            0..=44 => (self.key(), Vec::new()),
            45..=69 => {
                let p = self.prefix();
                let end = prefix_end(&p);
                (p, end)
            }
            70..=79 => (self.key(), vec![0]),
            80..=94 => {
                let (a, b) = (self.key(), self.key());
                (a.clone().min(b.clone()), a.max(b))
            }
            95..=97 => {
                // range_end before key: an empty interval.
                let (a, b) = (self.key(), self.key());
                (a.clone().max(b.clone()), a.min(b))
            }
            _ => (Vec::new(), Vec::new()),
        }
    }

    pub fn next(&mut self, st: &mut GenState) -> Op {
        loop {
            let total: u64 = Kind::ALL.iter().map(|k| k.weight()).sum();
            let mut r = self.rng.below(total);
            let mut kind = Kind::Put;
            for k in Kind::ALL {
                if r < k.weight() {
                    kind = k;
                    break;
                }
                r -= k.weight();
            }
            if self.excluded.contains(&kind) {
                continue;
            }
            return match kind {
                Kind::Put => Op::Put(self.put(st)),
                Kind::Range => Op::Range(self.range(st)),
                Kind::Delete => Op::Delete(self.delete()),
                Kind::Txn => Op::Txn(self.txn(st, 0)),
                Kind::Compact => Op::Compact(self.compact(st)),
                Kind::LeaseGrant => Op::LeaseGrant(self.lease_grant(st)),
                Kind::LeaseRevoke => Op::LeaseRevoke(LeaseRevokeRequest { id: self.lease_ref(st, true) }),
                Kind::LeaseTtl => {
                    Op::LeaseTtl(LeaseTimeToLiveRequest { id: self.lease_ref(st, true), keys: self.rng.pct(50) })
                }
                Kind::Watch => {
                    if st.watches >= MAX_WATCHES_PER_SEED {
                        continue;
                    }
                    st.watches += 1;
                    Op::Watch(self.watch(st))
                }
                Kind::Progress => {
                    if st.watches == 0 {
                        continue;
                    }
                    Op::Progress
                }
            };
        }
    }

    /// A lease of this seed (mostly a live one), a revoked one, or one never granted.
    fn lease_ref(&mut self, st: &GenState, mostly_live: bool) -> i64 {
        let r = self.rng.below(10);
        if !st.leases.is_empty() && (r < 7 || !mostly_live) {
            return *self.rng.pick(&st.leases);
        }
        if r == 7 && !st.revoked.is_empty() {
            return *self.rng.pick(&st.revoked);
        }
        self.unknown_lease()
    }

    fn put(&mut self, st: &GenState) -> PutRequest {
        let key = if self.rng.pct(2) { Vec::new() } else { self.key() };
        let mut req = PutRequest { key, value: self.value(), prev_kv: self.rng.pct(40), ..Default::default() };
        match self.rng.below(100) {
            0..=69 => {}
            70..=89 if !st.leases.is_empty() => req.lease = *self.rng.pick(&st.leases),
            _ => req.lease = self.lease_ref(st, false),
        }
        if self.rng.pct(8) {
            req.ignore_value = true;
            if self.rng.pct(70) {
                req.value.clear();
            }
        }
        if self.rng.pct(8) {
            req.ignore_lease = true;
            if self.rng.pct(70) {
                req.lease = 0;
            }
        }
        req
    }

    fn range(&mut self, st: &GenState) -> RangeRequest {
        let (key, range_end) = self.key_range();
        let mut req = RangeRequest { key, range_end, ..Default::default() };
        if self.rng.pct(30) {
            req.limit = self.rng.range(1, 4);
        }
        if self.rng.pct(40) {
            req.revision = self.revision(st);
        }
        if self.rng.pct(40) {
            req.sort_order = *self.rng.pick(&[SortOrder::None, SortOrder::Ascend, SortOrder::Descend]) as i32;
            req.sort_target = *self.rng.pick(&[
                SortTarget::Key,
                SortTarget::Version,
                SortTarget::Create,
                SortTarget::Mod,
                SortTarget::Value,
            ]) as i32;
        }
        req.serializable = self.rng.pct(15);
        req.keys_only = self.rng.pct(15);
        req.count_only = self.rng.pct(10);
        if self.rng.pct(8) {
            req.min_mod_revision = self.revision(st);
        }
        if self.rng.pct(8) {
            req.max_mod_revision = self.revision(st);
        }
        if self.rng.pct(8) {
            req.min_create_revision = self.revision(st);
        }
        if self.rng.pct(8) {
            req.max_create_revision = self.revision(st);
        }
        req
    }

    fn delete(&mut self) -> DeleteRangeRequest {
        let (key, range_end) = self.key_range();
        DeleteRangeRequest { key, range_end, prev_kv: self.rng.pct(50) }
    }

    fn compare(&mut self, st: &GenState) -> Compare {
        let key = self.key();
        let range_end = if self.rng.pct(15) { prefix_end(&self.prefix()) } else { Vec::new() };
        let key = if range_end.is_empty() { key } else { self.prefix() };
        let result = *self.rng.pick(&[
            CompareResult::Equal,
            CompareResult::Greater,
            CompareResult::Less,
            CompareResult::NotEqual,
        ]) as i32;
        let (target, union) = match self.rng.below(5) {
            0 => (CompareTarget::Version, TargetUnion::Version(self.rng.range(0, 3))),
            1 => (CompareTarget::Create, TargetUnion::CreateRevision(self.revision(st))),
            2 => (CompareTarget::Mod, TargetUnion::ModRevision(self.revision(st))),
            3 => (CompareTarget::Value, TargetUnion::Value(self.value())),
            _ => {
                let lease = if self.rng.pct(40) { 0 } else { self.lease_ref(st, true) };
                (CompareTarget::Lease, TargetUnion::Lease(lease))
            }
        };
        Compare { result, target: target as i32, key, range_end, target_union: Some(union) }
    }

    fn request_op(&mut self, st: &GenState, depth: u32) -> RequestOp {
        let request = match self.rng.below(100) {
            0..=49 => Request::RequestPut(self.put(st)),
            50..=79 => Request::RequestRange(self.range(st)),
            80..=94 => Request::RequestDeleteRange(self.delete()),
            _ if depth == 0 => Request::RequestTxn(self.txn(st, depth + 1)),
            _ => Request::RequestRange(self.range(st)),
        };
        RequestOp { request: Some(request) }
    }

    fn txn(&mut self, st: &GenState, depth: u32) -> TxnRequest {
        let n = self.rng.below(3) as usize;
        let compare = (0..n).map(|_| self.compare(st)).collect();
        let n = self.rng.below(4) as usize;
        let mut success: Vec<RequestOp> = (0..n).map(|_| self.request_op(st, depth)).collect();
        let n = self.rng.below(3) as usize;
        let failure = (0..n).map(|_| self.request_op(st, depth)).collect();
        match self.rng.below(100) {
            // Duplicate key: two puts of one key in one branch.
            0..=4 => {
                let put = PutRequest { key: self.key(), value: self.value(), ..Default::default() };
                success.push(RequestOp { request: Some(Request::RequestPut(put.clone())) });
                success.push(RequestOp { request: Some(Request::RequestPut(put)) });
            }
            // A put overlapping a delete of the prefix.
            5..=6 => {
                let p = self.prefix();
                let del = DeleteRangeRequest { range_end: prefix_end(&p), key: p.clone(), prev_kv: false };
                let put = PutRequest { key: [p, b"1".to_vec()].concat(), ..Default::default() };
                success.push(RequestOp { request: Some(Request::RequestDeleteRange(del)) });
                success.push(RequestOp { request: Some(Request::RequestPut(put)) });
            }
            // Sibling nested txns that put a key, then delete it (etcd's duplicate-key check lets
            // them through): the DELETE's watch prev_kv is the key before the txn.
            9..=12 if depth == 0 => {
                let key = self.key();
                let put = PutRequest {
                    key: key.clone(),
                    value: self.value(),
                    prev_kv: self.rng.pct(50),
                    ..Default::default()
                };
                let del = DeleteRangeRequest { key, range_end: Vec::new(), prev_kv: self.rng.pct(50) };
                let nested = |request| RequestOp {
                    request: Some(Request::RequestTxn(TxnRequest {
                        success: vec![RequestOp { request: Some(request) }],
                        ..Default::default()
                    })),
                };
                success.push(nested(Request::RequestPut(put)));
                success.push(nested(Request::RequestDeleteRange(del)));
            }
            // Too many operations.
            7..=8 if depth == 0 => {
                let key = self.key();
                let range = RangeRequest { key, ..Default::default() };
                let n = MAX_TXN_OPS + self.rng.below(2) as usize;
                success = vec![RequestOp { request: Some(Request::RequestRange(range)) }; n];
            }
            _ => {}
        }
        TxnRequest { compare, success, failure }
    }

    fn compact(&mut self, st: &GenState) -> CompactionRequest {
        let cur = st.current_rev.max(1);
        let (which, k) = (self.rng.below(10), self.rng.range(1, 10));
        let revision = match which {
            0..=2 => cur,
            3..=6 => (cur - k).max(1),
            7 => cur + k.min(3),
            8 => st.compact_rev,
            _ => (st.compact_rev - 1).max(0),
        };
        CompactionRequest { revision, physical: self.rng.pct(20) }
    }

    /// Long-lived leases (they must not expire during a run: an expiry deletes keys at a moment
    /// that differs between the systems) join `st.leases`; short ones are never put on keys.
    fn lease_grant(&mut self, st: &mut GenState) -> LeaseGrantRequest {
        let long_ttl = self.rng.range(3600, 7200);
        match self.rng.below(100) {
            0..=39 => {
                self.next_lease += 1;
                st.granted_ids.push(self.next_lease);
                LeaseGrantRequest { ttl: long_ttl, id: self.next_lease }
            }
            // Server-chosen id: the executor maps Tally's id to etcd's.
            40..=74 => LeaseGrantRequest { ttl: long_ttl, id: 0 },
            75..=84 if !st.granted_ids.is_empty() => {
                LeaseGrantRequest { ttl: long_ttl, id: *self.rng.pick(&st.granted_ids) }
            }
            85..=94 => {
                self.next_lease += 1;
                LeaseGrantRequest { ttl: *self.rng.pick(&[-1, 0, 1, 2, 3]), id: self.next_lease }
            }
            _ => {
                self.next_lease += 1;
                LeaseGrantRequest { ttl: MAX_LEASE_TTL + self.rng.range(0, 1), id: self.next_lease }
            }
        }
    }

    fn watch(&mut self, st: &GenState) -> WatchCreateRequest {
        let (key, range_end) = loop {
            let kr = self.key_range();
            if !kr.0.is_empty() {
                break kr;
            }
        };
        let cur = st.current_rev.max(1);
        let (which, k) = (self.rng.below(10), self.rng.range(0, 5));
        let start_revision = match which {
            0..=3 => 0,
            4..=6 => (cur - k).max(1),
            7 => cur + 1,
            _ => (st.compact_rev - k.min(1)).max(1),
        };
        let filters = match self.rng.below(10) {
            0..=6 => vec![],
            7 => vec![FilterType::Noput as i32],
            _ => vec![FilterType::Nodelete as i32],
        };
        WatchCreateRequest { key, range_end, start_revision, filters, prev_kv: self.rng.pct(40), ..Default::default() }
    }
}
