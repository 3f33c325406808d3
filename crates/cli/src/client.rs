//! Client commands for people without etcdctl. Each write carries a request id, so retrying it
//! at another endpoint (after a timeout or a leader change) applies it once.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use tally_proto::etcdserverpb::cluster_client::ClusterClient;
use tally_proto::etcdserverpb::kv_client::KvClient;
use tally_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use tally_proto::etcdserverpb::{DeleteRangeRequest, MemberListRequest, PutRequest, RangeRequest, StatusRequest};
use tally_server::client::services::context::{CLIENT_ID_HEADER, SEQ_HEADER};
use tally_server::client::services::recipe::prefix_end;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

const DEFAULT_ENDPOINTS: &str = "127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379";

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Store a value.
    Put {
        key: String,
        value: String,
        #[arg(long, default_value = DEFAULT_ENDPOINTS, value_delimiter = ',')]
        endpoints: Vec<String>,
    },
    /// Read a key (or every key under a prefix).
    Get {
        key: String,
        #[arg(long)]
        prefix: bool,
        /// Read as of this revision.
        #[arg(long, default_value_t = 0)]
        rev: i64,
        #[arg(long, default_value = DEFAULT_ENDPOINTS, value_delimiter = ',')]
        endpoints: Vec<String>,
    },
    /// Delete a key (or every key under a prefix).
    Del {
        key: String,
        #[arg(long)]
        prefix: bool,
        #[arg(long, default_value = DEFAULT_ENDPOINTS, value_delimiter = ',')]
        endpoints: Vec<String>,
    },
    /// Each endpoint's view: leader, term, raft index.
    Status {
        #[arg(long, default_value = DEFAULT_ENDPOINTS, value_delimiter = ',')]
        endpoints: Vec<String>,
    },
    /// The cluster's members.
    Members {
        #[arg(long, default_value = DEFAULT_ENDPOINTS, value_delimiter = ',')]
        endpoints: Vec<String>,
    },
}

pub(crate) fn url(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

async fn channel(endpoint: &str) -> Result<Channel, String> {
    tonic::transport::Endpoint::from_shared(url(endpoint))
        .map_err(|e| format!("bad endpoint {endpoint}: {e}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| format!("cannot reach {endpoint}: {e}"))
}

/// Tries each endpoint in turn until one answers (anything but "unavailable").
async fn with_endpoints<T, F, Fut>(endpoints: &[String], mut call: F) -> Result<T, String>
where
    F: FnMut(Channel) -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let mut last = String::from("no endpoints given");
    for endpoint in endpoints {
        match channel(endpoint).await {
            Ok(ch) => match call(ch).await {
                Ok(v) => return Ok(v),
                Err(s) if matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded) => {
                    last = format!("{endpoint}: {}", s.message())
                }
                Err(s) => return Err(s.message().to_string()),
            },
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn with_request_id<T>(body: T, client_id: u64) -> Request<T> {
    let mut req = Request::new(body);
    req.metadata_mut().insert(CLIENT_ID_HEADER, client_id.to_string().parse().expect("digits"));
    req.metadata_mut().insert(SEQ_HEADER, "1".parse().expect("digits"));
    req
}

fn new_client_id() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (now.as_nanos() as u64 ^ (std::process::id() as u64).rotate_left(40)).max(1)
}

pub async fn run(cmd: ClientCommand) -> ExitCode {
    let result = match cmd {
        ClientCommand::Put { key, value, endpoints } => {
            let client_id = new_client_id();
            with_endpoints(&endpoints, |ch| {
                let req = PutRequest {
                    key: key.clone().into_bytes(),
                    value: value.clone().into_bytes(),
                    ..Default::default()
                };
                async move { KvClient::new(ch).put(with_request_id(req, client_id)).await }
            })
            .await
            .map(|_| println!("OK"))
        }
        ClientCommand::Get { key, prefix, rev, endpoints } => with_endpoints(&endpoints, |ch| {
            let range_end = if prefix { prefix_end(key.as_bytes()) } else { Vec::new() };
            let req = RangeRequest { key: key.clone().into_bytes(), range_end, revision: rev, ..Default::default() };
            async move { KvClient::new(ch).range(req).await }
        })
        .await
        .map(|resp| {
            for kv in resp.into_inner().kvs {
                println!("{}\n{}", String::from_utf8_lossy(&kv.key), String::from_utf8_lossy(&kv.value));
            }
        }),
        ClientCommand::Del { key, prefix, endpoints } => {
            let client_id = new_client_id();
            with_endpoints(&endpoints, |ch| {
                let range_end = if prefix { prefix_end(key.as_bytes()) } else { Vec::new() };
                let req = DeleteRangeRequest { key: key.clone().into_bytes(), range_end, ..Default::default() };
                async move { KvClient::new(ch).delete_range(with_request_id(req, client_id)).await }
            })
            .await
            .map(|resp| println!("{}", resp.into_inner().deleted))
        }
        ClientCommand::Status { endpoints } => {
            let mut failures = 0;
            for endpoint in &endpoints {
                let status = match channel(endpoint).await {
                    Ok(ch) => {
                        MaintenanceClient::new(ch).status(StatusRequest {}).await.map_err(|s| s.message().to_string())
                    }
                    Err(e) => Err(e),
                };
                match status {
                    Ok(s) => {
                        let s = s.into_inner();
                        let id = s.header.map_or(0, |h| h.member_id);
                        let role = if s.leader == id { "leader" } else { "follower" };
                        println!(
                            "{endpoint}  member {id:x}  {role}  leader {:x}  term {}  index {}  applied {}",
                            s.leader, s.raft_term, s.raft_index, s.raft_applied_index
                        );
                    }
                    Err(e) => {
                        failures += 1;
                        println!("{endpoint}  unreachable: {e}");
                    }
                }
            }
            if failures == endpoints.len() {
                Err("no endpoint answered".into())
            } else {
                Ok(())
            }
        }
        ClientCommand::Members { endpoints } => with_endpoints(&endpoints, |ch| async move {
            ClusterClient::new(ch).member_list(MemberListRequest { linearizable: false }).await
        })
        .await
        .map(|resp| {
            for m in resp.into_inner().members {
                println!(
                    "{:x}  {}  peers {}  clients {}",
                    m.id,
                    m.name,
                    m.peer_ur_ls.join(","),
                    m.client_ur_ls.join(",")
                );
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tally: {e}");
            ExitCode::from(1)
        }
    }
}
