//! The generated KV server and client talk real gRPC over loopback.

use tally_proto::etcdserverpb::kv_client::KvClient;
use tally_proto::etcdserverpb::kv_server::{Kv, KvServer};
use tally_proto::etcdserverpb::*;
use tally_proto::mvccpb::KeyValue;
use tonic::{Request, Response, Status};

struct Fake;

#[tonic::async_trait]
impl Kv for Fake {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let req = req.into_inner();
        Ok(Response::new(RangeResponse {
            header: Some(ResponseHeader { cluster_id: 1, member_id: 2, revision: 3, raft_term: 4 }),
            kvs: vec![KeyValue { key: req.key, value: b"v".to_vec(), version: 1, ..Default::default() }],
            more: false,
            count: 1,
        }))
    }
    async fn put(&self, _: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        Err(Status::unimplemented("put"))
    }
    async fn delete_range(&self, _: Request<DeleteRangeRequest>) -> Result<Response<DeleteRangeResponse>, Status> {
        Err(Status::unimplemented("delete_range"))
    }
    async fn txn(&self, _: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        Err(Status::unimplemented("txn"))
    }
    async fn compact(&self, _: Request<CompactionRequest>) -> Result<Response<CompactionResponse>, Status> {
        Err(Status::unimplemented("compact"))
    }
}

#[tokio::test]
async fn kv_range_over_loopback() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(KvServer::new(Fake))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let mut client = KvClient::connect(format!("http://{addr}")).await.unwrap();
    let resp = client.range(RangeRequest { key: b"foo".to_vec(), ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(resp.header.unwrap().revision, 3);
    assert_eq!(resp.kvs[0].key, b"foo");
    let err = client.put(PutRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);

    server.abort();
}
