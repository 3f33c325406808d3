//! etcd's lock and election recipe (clientv3/concurrency), run inside the server: each
//! contender owns the key `<name>/<lease id in hex>` bound to its lease; the contender whose key
//! has the lowest create revision holds the lock (or leads). That create revision only grows,
//! which makes it the fencing token.

use std::sync::Arc;
use std::time::Duration;

use tally_mvcc::{AuthInfo, CommandResponse};
use tally_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use tally_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use tally_proto::etcdserverpb::request_op::Request as Op;
use tally_proto::etcdserverpb::response_op::Response as OpResponse;
use tally_proto::etcdserverpb::{
    Compare, PutRequest, RangeRequest, RequestOp, ResponseHeader, TxnRequest, TxnResponse,
};
use tally_proto::mvccpb::KeyValue;
use tally_proto::tally_v1::command::Op as CommandOp;
use tokio::sync::{mpsc, Notify};
use tonic::Status;

use super::context::Context;
use crate::client::errors;
use crate::node::watch_hub::{WatchHub, Watcher};

/// Re-check the waiting condition at least this often, whatever the watch says.
const RECHECK: Duration = Duration::from_millis(200);

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

pub fn create_revision_is(key: &[u8], rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        target_union: Some(TargetUnion::CreateRevision(rev)),
        ..Default::default()
    }
}

pub fn op(request: Op) -> RequestOp {
    RequestOp { request: Some(request) }
}

/// The first contender under `prefix` (lowest create revision).
pub fn first_created(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: SortOrder::Ascend as i32,
        sort_target: SortTarget::Create as i32,
        ..Default::default()
    }
}

/// A txn made for `who` (the caller of a Lock or Election call), checked as theirs.
pub async fn txn(ctx: &Context, who: &AuthInfo, req: TxnRequest) -> Result<TxnResponse, Status> {
    match ctx.submit(ctx.command(&Default::default(), who, CommandOp::Txn(req))).await? {
        CommandResponse::Txn(resp) => Ok(resp),
        CommandResponse::Error(e) => Err(errors::from_mvcc(&e)),
        _ => Err(Status::internal("txn answered with another response type")),
    }
}

pub fn range_kvs(resp: &TxnResponse, i: usize) -> Vec<KeyValue> {
    match resp.responses.get(i).and_then(|r| r.response.as_ref()) {
        Some(OpResponse::ResponseRange(r)) => r.kvs.clone(),
        _ => Vec::new(),
    }
}

/// Becomes a contender for `prefix` with `key` (or finds it already is one), then waits until
/// it is first. Returns the key's create revision and the header of the moment it got there.
pub async fn contend(
    ctx: &Context,
    who: &AuthInfo,
    hub: &Arc<WatchHub>,
    prefix: &[u8],
    key: &[u8],
    value: &[u8],
    lease: i64,
) -> Result<(i64, ResponseHeader), Status> {
    let put = PutRequest { key: key.to_vec(), value: value.to_vec(), lease, ..Default::default() };
    let get_mine = RangeRequest { key: key.to_vec(), ..Default::default() };
    let req = TxnRequest {
        compare: vec![create_revision_is(key, 0)],
        success: vec![op(Op::RequestPut(put.clone())), op(Op::RequestRange(first_created(prefix)))],
        failure: vec![op(Op::RequestRange(get_mine)), op(Op::RequestRange(first_created(prefix)))],
    };
    let resp = txn(ctx, who, req).await?;
    let header = resp.header.unwrap_or_default();
    let my_rev = if resp.succeeded {
        header.revision
    } else {
        let mine = range_kvs(&resp, 0);
        let existing = mine.first().ok_or_else(|| Status::internal("contender key vanished"))?;
        if existing.value != value {
            // A campaign with a new value proclaims it, as etcd's Campaign does.
            let req = TxnRequest {
                compare: vec![create_revision_is(key, existing.create_revision)],
                success: vec![op(Op::RequestPut(put))],
                failure: vec![],
            };
            txn(ctx, who, req).await?;
        }
        existing.create_revision
    };
    let owner = range_kvs(&resp, 1);
    if owner.first().is_none_or(|kv| kv.create_revision == my_rev) {
        return Ok((my_rev, ctx.header(header.revision)));
    }
    let header = wait_for_no_predecessor(ctx, hub, prefix, my_rev, header.revision).await?;
    Ok((my_rev, header))
}

pub type WatchEvents = mpsc::Receiver<Result<tally_proto::etcdserverpb::WatchResponse, Status>>;

/// Removes the internal watcher when the waiting call ends, however it ends.
pub struct WatchGuard<'a> {
    hub: &'a WatchHub,
    key: u64,
}

impl Drop for WatchGuard<'_> {
    fn drop(&mut self) {
        self.hub.remove(self.key);
    }
}

/// Returns a watcher on `prefix` whose events wake the caller.
pub fn watch_prefix<'h>(hub: &'h Arc<WatchHub>, prefix: &[u8]) -> (WatchGuard<'h>, WatchEvents) {
    let (out, rx) = mpsc::channel(64);
    let watcher = Watcher {
        watch_id: -1,
        stream: hub.new_stream(),
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        no_put: false,
        no_delete: false,
        prev_kv: false,
        start_rev: 0,
        progress_notify: false,
        sent_events: false,
        next_rev: 0,
        synced: false,
        out,
        wake: Arc::new(Notify::new()),
    };
    let key = hub.add(watcher);
    (WatchGuard { hub, key }, rx)
}

/// Waits until no key under `prefix` was created before `my_rev`, as seen by a state that
/// includes revision `at_least` (our own write).
async fn wait_for_no_predecessor(
    ctx: &Context,
    hub: &Arc<WatchHub>,
    prefix: &[u8],
    my_rev: i64,
    at_least: i64,
) -> Result<ResponseHeader, Status> {
    let (_guard, mut events) = watch_prefix(hub, prefix);
    let predecessors = RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        max_create_revision: my_rev - 1,
        keys_only: true,
        limit: 1,
        ..Default::default()
    };
    loop {
        let (current, waiting) = {
            let sm = ctx.sm.read().expect("sm lock");
            let current = sm.store.revision();
            let found = sm.store.range(&predecessors).map_err(|e| errors::from_mvcc(&e))?;
            (current, current < at_least || !found.kvs.is_empty())
        };
        if !waiting {
            return Ok(ctx.header(current));
        }
        // A change under the prefix, or the periodic re-check.
        let _ = tokio::time::timeout(RECHECK, events.recv()).await;
    }
}
