//! Methods Tally does not serve answer gRPC `Unimplemented`, as a server of an older etcd
//! release does, so that newer clients fall back (etcd 3.7's client tries `KV.RangeStream`).
//! The unary KV calls have a fast path of their own (`client_api`): unknown KV methods must not
//! fall through it.

mod support;

use support::{channel, Cluster};
use tally_proto::etcdserverpb::{RangeRequest, RangeResponse};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::Code;

async fn call(url: &str, path: &'static str) -> (Code, String) {
    let mut grpc = tonic::client::Grpc::new(channel(url));
    grpc.ready().await.expect("connection ready");
    let codec = tonic_prost::ProstCodec::<RangeRequest, RangeResponse>::default();
    let request = tonic::Request::new(RangeRequest { key: b"k".to_vec(), ..Default::default() });
    match grpc.unary(request, PathAndQuery::from_static(path), codec).await {
        Ok(resp) => panic!("{path} answered {resp:?}"),
        Err(status) => (status.code(), status.message().to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_methods_are_unimplemented() {
    let cluster = Cluster::start(1).await;
    let url = cluster.members[0].client_url();
    // grpc-go's messages, as etcd 3.5.35 gives them.
    for (path, message) in [
        ("/etcdserverpb.KV/RangeStream", "unknown method RangeStream for service etcdserverpb.KV"),
        ("/etcdserverpb.Maintenance/NoSuchCall", "unknown method NoSuchCall for service etcdserverpb.Maintenance"),
        ("/etcdserverpb.Nope/Range", "unknown service etcdserverpb.Nope"),
    ] {
        assert_eq!(call(&url, path).await, (Code::Unimplemented, message.to_string()), "{path}");
    }
}
