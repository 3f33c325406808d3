//! One bidirectional etcd Watch stream, driven request by request, for tests that check what a
//! server sends and when.

use std::time::Duration;

use tally_proto::etcdserverpb::watch_client::WatchClient;
use tally_proto::etcdserverpb::watch_request::RequestUnion;
use tally_proto::etcdserverpb::{WatchCancelRequest, WatchCreateRequest, WatchRequest, WatchResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::channel;

/// One bidirectional Watch stream.
pub struct WatchStream {
    pub tx: mpsc::Sender<WatchRequest>,
    pub rx: tonic::Streaming<WatchResponse>,
}

impl WatchStream {
    pub async fn open(url: &str) -> Result<WatchStream, tonic::Status> {
        let (tx, rx) = mpsc::channel(64);
        let mut client = WatchClient::new(channel(url));
        let rx = tokio::time::timeout(Duration::from_secs(5), client.watch(ReceiverStream::new(rx)))
            .await
            .map_err(|_| tonic::Status::deadline_exceeded("opening the watch stream"))??
            .into_inner();
        Ok(WatchStream { tx, rx })
    }

    pub async fn send(&self, req: RequestUnion) {
        self.tx.send(WatchRequest { request_union: Some(req) }).await.expect("watch request stream closed");
    }

    pub async fn create(&self, c: WatchCreateRequest) {
        self.send(RequestUnion::CreateRequest(c)).await;
    }

    pub async fn cancel(&self, watch_id: i64) {
        self.send(RequestUnion::CancelRequest(WatchCancelRequest { watch_id })).await;
    }

    /// The next response; `None` on a timeout, panics if the stream fails.
    pub async fn next(&mut self, timeout: Duration) -> Option<WatchResponse> {
        match tokio::time::timeout(timeout, self.rx.message()).await {
            Err(_) => None,
            Ok(Ok(Some(resp))) => Some(resp),
            Ok(Ok(None)) => panic!("watch stream ended"),
            Ok(Err(status)) => panic!("watch stream failed: {status:?}"),
        }
    }

    pub async fn expect(&mut self, what: &str) -> WatchResponse {
        self.next(Duration::from_secs(10)).await.unwrap_or_else(|| panic!("no watch response: {what}"))
    }

    /// Expects the created response of `watch_id`; returns its header revision.
    pub async fn expect_created(&mut self, watch_id: i64) -> i64 {
        let r = self.expect(&format!("created {watch_id}")).await;
        assert!(
            r.created && !r.canceled && r.watch_id == watch_id && r.events.is_empty(),
            "not a created response for {watch_id}: {r:?}"
        );
        r.header.expect("header").revision
    }
}
