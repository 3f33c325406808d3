//! `tally snapshot save|status|restore`: backups of a running cluster and new clusters made from
//! them, as `etcdctl snapshot save` and `etcdutl snapshot status|restore` do for etcd. `restore`
//! also takes an etcd snapshot: that is how a cluster moves from etcd to Tally.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use tally_node::cluster::ClusterSpec;
use tally_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use tally_proto::etcdserverpb::SnapshotRequest;
use tally_server::node::backup;

#[derive(Subcommand)]
pub enum SnapshotCommand {
    /// Save a consistent snapshot of one member's state to FILE (etcdctl snapshot save).
    Save {
        file: PathBuf,
        /// The member to take it from (the first endpoint is used).
        #[arg(long, default_value = "127.0.0.1:2379", value_delimiter = ',')]
        endpoints: Vec<String>,
    },
    /// Print a snapshot file's revision, compacted revision, keys and size (Tally's or etcd's).
    Status {
        file: PathBuf,
        /// Output format: table or json.
        #[arg(short = 'w', long = "write-out", default_value = "table")]
        write_out: String,
        #[arg(long)]
        skip_hash_check: bool,
    },
    /// Make the data directory of one member of a new cluster from a snapshot file (Tally's, or
    /// an etcd snapshot to move from etcd). Run it once per member, with that member's --name.
    Restore {
        file: PathBuf,
        #[arg(long, default_value = "default")]
        name: String,
        #[arg(long, default_value = "default=http://127.0.0.1:2380")]
        initial_cluster: String,
        #[arg(long, default_value = "tally-cluster")]
        initial_cluster_token: String,
        /// This member's peer URLs; checked against --initial-cluster.
        #[arg(long, value_delimiter = ',')]
        initial_advertise_peer_urls: Vec<String>,
        /// Defaults to NAME.tally, as `tally server` names it.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Accept a file without a valid SHA-256 trailer (e.g. an etcd member's member/snap/db).
        #[arg(long)]
        skip_hash_check: bool,
    },
}

pub async fn run(cmd: SnapshotCommand) -> ExitCode {
    let result = match cmd {
        SnapshotCommand::Save { file, endpoints } => save(&file, &endpoints[0]).await,
        SnapshotCommand::Status { file, write_out, skip_hash_check } => status(&file, &write_out, skip_hash_check),
        SnapshotCommand::Restore {
            file,
            name,
            initial_cluster,
            initial_cluster_token,
            initial_advertise_peer_urls,
            data_dir,
            skip_hash_check,
        } => {
            let data_dir = data_dir.unwrap_or_else(|| PathBuf::from(format!("{name}.tally")));
            let spec =
                Spec { name, initial_cluster, token: initial_cluster_token, peer_urls: initial_advertise_peer_urls };
            restore(&file, &spec, &data_dir, skip_hash_check)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Streams the snapshot into FILE.part and renames it once whole, so FILE is never half written.
async fn save(file: &Path, endpoint: &str) -> Result<(), String> {
    let channel = tonic::transport::Endpoint::from_shared(crate::client::url(endpoint))
        .map_err(|e| format!("bad endpoint {endpoint}: {e}"))?
        .connect()
        .await
        .map_err(|e| format!("cannot reach {endpoint}: {e}"))?;
    let mut stream = MaintenanceClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .snapshot(SnapshotRequest {})
        .await
        .map_err(|e| format!("snapshot: {}", e.message()))?
        .into_inner();
    let part = file.with_extension("part");
    let mut out = std::fs::File::create(&part).map_err(|e| format!("creating {}: {e}", part.display()))?;
    let mut bytes = 0;
    while let Some(resp) = stream.message().await.map_err(|e| format!("snapshot: {}", e.message()))? {
        out.write_all(&resp.blob).map_err(|e| format!("writing {}: {e}", part.display()))?;
        bytes += resp.blob.len();
    }
    out.sync_all().map_err(|e| format!("syncing {}: {e}", part.display()))?;
    let contents = std::fs::read(&part).map_err(|e| format!("reading {}: {e}", part.display()))?;
    backup::load(&contents, false).map_err(|e| format!("the received snapshot is unusable: {e}"))?;
    std::fs::rename(&part, file).map_err(|e| format!("renaming to {}: {e}", file.display()))?;
    println!("Snapshot saved at {} ({bytes} bytes)", file.display());
    Ok(())
}

fn read(file: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(file).map_err(|e| format!("reading {}: {e}", file.display()))
}

fn status(file: &Path, write_out: &str, skip_hash_check: bool) -> Result<(), String> {
    let s = backup::status(&read(file)?, skip_hash_check).map_err(|e| e.to_string())?;
    match write_out {
        "json" => println!(
            "{}",
            serde_json::json!({
                "origin": s.origin, "revision": s.revision, "compactRevision": s.compact_revision,
                "totalKey": s.total_keys, "totalSize": s.total_size,
            })
        ),
        "table" => {
            println!("+--------+----------+------------------+------------+------------+");
            println!("| ORIGIN | REVISION | COMPACT REVISION | TOTAL KEYS | TOTAL SIZE |");
            println!("+--------+----------+------------------+------------+------------+");
            println!(
                "| {:>6} | {:>8} | {:>16} | {:>10} | {:>10} |",
                s.origin, s.revision, s.compact_revision, s.total_keys, s.total_size
            );
            println!("+--------+----------+------------------+------------+------------+");
        }
        other => return Err(format!("unknown output format {other:?} (table or json)")),
    }
    Ok(())
}

struct Spec {
    name: String,
    initial_cluster: String,
    token: String,
    peer_urls: Vec<String>,
}

fn restore(file: &Path, spec: &Spec, data_dir: &Path, skip_hash_check: bool) -> Result<(), String> {
    let cluster = ClusterSpec::parse(&spec.initial_cluster, &spec.token).map_err(|e| e.to_string())?;
    let id = cluster.id_of(&spec.name).map_err(|e| e.to_string())?;
    if !spec.peer_urls.is_empty() && spec.peer_urls != cluster.members[&id].peer_urls {
        return Err(format!(
            "--initial-advertise-peer-urls {:?} differ from {:?} given for {} in --initial-cluster",
            spec.peer_urls, cluster.members[&id].peer_urls, spec.name
        ));
    }
    let (sm, origin) = backup::load(&read(file)?, skip_hash_check).map_err(|e| e.to_string())?;
    backup::restore_member(&sm, &cluster, data_dir).map_err(|e| e.to_string())?;
    println!(
        "restored {} snapshot at revision {} into {} for member {} ({id:x})",
        match origin {
            backup::Origin::Tally => "a Tally",
            backup::Origin::Etcd => "an etcd",
        },
        sm.store.revision(),
        data_dir.display(),
        spec.name
    );
    Ok(())
}
