//! etcd's periodic corruption check (`--experimental-corrupt-check-time`): the leader compares
//! its HashKV at its current revision with every other member's at the same revision; a member
//! whose hash differs while its compacted revision is the same holds different data, and the
//! leader raises the CORRUPT alarm for it through the log. From then on every member refuses
//! writes (etcd's corrupt applier) and `/readyz` fails its data_corruption check, until an
//! operator has dealt with the member and disarmed the alarm.

use std::sync::Arc;
use std::time::Duration;

use tally_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use tally_proto::etcdserverpb::{AlarmType, HashKvRequest};

use crate::client::services::context::Context;

/// How long a member may take to answer the leader's HashKV.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the check every `interval` while this member leads.
pub async fn check_periodically(ctx: Arc<Context>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if ctx.node.shared.leader() == Some(ctx.member_id) {
            check_once(&ctx).await;
        }
    }
}

/// One round: the members whose hash at the leader's revision differs get a CORRUPT alarm.
async fn check_once(ctx: &Context) {
    let Ok((mine, _)) = ctx.hash_kv(0).await else { return };
    let peers: Vec<u64> = ctx.members.read().expect("members lock").members.keys().copied().collect();
    for peer in peers.into_iter().filter(|&p| p != ctx.member_id) {
        let Some(channel) = ctx.member_channel(peer) else { continue };
        let mut request = tonic::Request::new(HashKvRequest { revision: mine.revision });
        request.set_timeout(ASK_TIMEOUT);
        // A member behind us (FutureRev) or unreachable is asked again next round.
        let Ok(Ok(theirs)) = tokio::time::timeout(ASK_TIMEOUT, MaintenanceClient::new(channel).hash_kv(request)).await
        else {
            continue;
        };
        let theirs = theirs.into_inner();
        if theirs.compact_revision != mine.compact_revision || theirs.hash == mine.hash {
            continue;
        }
        tracing::error!(
            member = %format_args!("{peer:x}"),
            revision = mine.revision,
            their_hash = theirs.hash,
            our_hash = mine.hash,
            "corruption detected: a member's data differs from the leader's; raising the CORRUPT alarm"
        );
        ctx.raise_alarm(peer, AlarmType::Corrupt).await;
    }
}
