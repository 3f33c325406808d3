//! Range requests: etcd's `applierV3backend.Range` (limit, revision, sort, count, filters, `more`).

use std::cmp::Ordering;

use tally_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use tally_proto::etcdserverpb::{RangeRequest, RangeResponse};
use tally_proto::mvccpb::KeyValue;

use crate::error::MvccError;
use crate::go_sort::go_sort;
use crate::store::{header, KeyRange, Store};
use crate::validate;

fn compare_by(target: SortTarget, a: &KeyValue, b: &KeyValue) -> Ordering {
    match target {
        SortTarget::Key => a.key.cmp(&b.key),
        SortTarget::Version => a.version.cmp(&b.version),
        SortTarget::Create => a.create_revision.cmp(&b.create_revision),
        SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
        SortTarget::Value => a.value.cmp(&b.value),
    }
}

impl Store {
    /// Serves a Range at the current revision: validates it as etcd's gRPC layer does, then reads.
    pub fn range(&self, r: &RangeRequest) -> Result<RangeResponse, MvccError> {
        validate::check_range(r)?;
        self.range_at(r, self.current_rev)
    }

    /// etcd's `applierV3backend.Range` with the read view at `cur_rev`.
    pub(crate) fn range_at(&self, r: &RangeRequest, cur_rev: i64) -> Result<RangeResponse, MvccError> {
        let sort_order = SortOrder::try_from(r.sort_order).unwrap_or(SortOrder::None);
        let sort_target = SortTarget::try_from(r.sort_target).unwrap_or(SortTarget::Key);
        let filtered = r.min_mod_revision != 0
            || r.max_mod_revision != 0
            || r.min_create_revision != 0
            || r.max_create_revision != 0;
        let mut limit = r.limit;
        if r.sort_order != SortOrder::None as i32 || filtered {
            // fetch everything; sort and truncate afterwards
            limit = 0;
        }
        if limit > 0 {
            // one extra for `more`
            limit += 1;
        }
        // Values are copied only if answered or sorted by.
        let values = !r.keys_only || sort_target == SortTarget::Value;
        let kr = KeyRange::new(&r.key, &r.range_end);
        let rr = self.range_keys(kr, r.revision, limit, r.count_only, values, cur_rev)?;
        let mut kvs = rr.kvs;
        if r.max_mod_revision != 0 {
            kvs.retain(|kv| kv.mod_revision <= r.max_mod_revision);
        }
        if r.min_mod_revision != 0 {
            kvs.retain(|kv| kv.mod_revision >= r.min_mod_revision);
        }
        if r.max_create_revision != 0 {
            kvs.retain(|kv| kv.create_revision <= r.max_create_revision);
        }
        if r.min_create_revision != 0 {
            kvs.retain(|kv| kv.create_revision >= r.min_create_revision);
        }
        let mut order = sort_order;
        if r.sort_target != SortTarget::Key as i32 && r.sort_order == SortOrder::None as i32 {
            // the store returns keys ascending; any other target defaults to ascending
            order = SortOrder::Ascend;
        }
        match order {
            SortOrder::None => {}
            SortOrder::Ascend => go_sort(&mut kvs, &|a, b| compare_by(sort_target, a, b) == Ordering::Less),
            SortOrder::Descend => go_sort(&mut kvs, &|a, b| compare_by(sort_target, b, a) == Ordering::Less),
        }
        let mut more = false;
        if r.limit > 0 && kvs.len() as i64 > r.limit {
            kvs.truncate(r.limit as usize);
            more = true;
        }
        if r.keys_only {
            for kv in &mut kvs {
                kv.value = Vec::new();
            }
        }
        Ok(RangeResponse { header: header(rr.rev), kvs, more, count: rr.count })
    }
}
