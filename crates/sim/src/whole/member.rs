//! One simulated member: a disk that outlives crashes, and the process (a `tally_node::Node`)
//! that a crash takes away.

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tally_mvcc::StoreConfig;

use tally_node::members::Members;
use tally_node::persist::{Disk, InitialState};
use tally_node::{ConsensusKind, Node, NodeBug, NodeConfig, Shared};
use tally_paxos::multi::PaxosBug;
use tally_proto::tally_v1::MemberInfo;
use tally_raft::{Config, NodeId};
use tally_server::node::watch_hub::{HeaderSource, WatchHub};
use tally_storage::simfs::{SimFs, SimRng};
use tally_storage::{Prepare, WalOptions};

use super::host::SimHost;

const DATA_DIR: &str = "/data";

/// Small segments and cache, so that rolls, spare segments and re-reads from disk happen.
fn wal_options() -> WalOptions {
    WalOptions {
        segment_size: 16 << 10,
        cache_bytes_max: 8 << 10,
        zero_fill: false,
        spare_segments_max: 1,
        prepare: Prepare::AtRoll,
    }
}

/// What every incarnation of a member is configured with.
#[derive(Clone)]
pub struct MemberSetup {
    pub raft: Config,
    pub voters: Vec<NodeId>,
    pub snapshot_count: u64,
    pub snapshot_log_ratio: f64,
    pub election_timeout: Duration,
    pub bug: Option<NodeBug>,
    pub consensus: ConsensusKind,
    pub paxos_bug: Option<PaxosBug>,
    /// Founding member, or one added later that learns everything from the leader.
    pub initial: InitialState,
    /// The state machine's settings, until a snapshot brings the leader's.
    pub store: StoreConfig,
}

pub struct Member {
    pub id: NodeId,
    pub fs: SimFs,
    pub node: Option<Node<SimHost>>,
    pub incarnation: u64,
    pub tick_us: u64,
    /// Removed from the cluster: its process stopped for good.
    pub removed: bool,
    setup: MemberSetup,
}

/// The peer URL of the founding member `id`.
pub fn founder_url(id: NodeId) -> String {
    format!("http://n{id}:2380")
}

fn founders(voters: &[NodeId]) -> Members {
    let mut members = Members::default();
    for &id in voters {
        let info = MemberInfo {
            id,
            name: format!("n{id}"),
            peer_urls: vec![founder_url(id)],
            client_urls: vec![format!("http://n{id}:2379")],
            is_learner: false,
        };
        members.members.insert(id, info);
    }
    members
}

impl Member {
    /// What every incarnation of this member is configured with.
    pub fn setup(&self) -> &MemberSetup {
        &self.setup
    }

    pub fn new(id: NodeId, setup: MemberSetup, tick_us: u64) -> Self {
        Self { id, fs: SimFs::new(), node: None, incarnation: 0, tick_us, removed: false, setup }
    }

    pub fn is_up(&self) -> bool {
        self.node.is_some()
    }

    pub fn node(&mut self) -> &mut Node<SimHost> {
        self.node.as_mut().expect("member is up")
    }

    /// Starts a process on the disk as it is. Errors are the node's own refusals to start.
    pub fn start(&mut self, base: Instant, now_us: Rc<Cell<u64>>) -> Result<(), String> {
        self.incarnation += 1;
        let founders = founders(&self.setup.voters);
        let (disk, persisted) = Disk::open_with(
            self.fs.clone(),
            Path::new(DATA_DIR),
            wal_options(),
            self.setup.initial,
            &self.setup.voters,
            founders.encode(),
        )
        .map_err(|e| format!("opening the log: {e}"))?;
        let members = Arc::new(RwLock::new(founders));
        let sm = Node::<SimHost>::recover_state(&persisted, &members, self.setup.store)?;
        let mut raft = self.setup.raft.clone();
        raft.seed = raft.seed.wrapping_mul(31).wrapping_add(self.incarnation);
        let cfg = NodeConfig {
            raft,
            consensus: self.setup.consensus,
            snapshot_count: self.setup.snapshot_count,
            snapshot_log_ratio: self.setup.snapshot_log_ratio,
            election_timeout: self.setup.election_timeout,
            cluster_token: "sim".into(),
            members,
            request_id_seed: self.id << 32 | self.incarnation,
            zk_container_check_interval: Duration::from_millis(100),
        };
        let sm = Arc::new(RwLock::new(sm));
        let shared = Arc::new(Shared::default());
        let headers = HeaderSource { cluster_id: 1, member_id: self.id, term: shared.term_handle() };
        let hub = WatchHub::inline(sm.clone(), headers, Duration::from_secs(3600));
        let host = SimHost::new(self.fs.clone(), hub, base, now_us);
        let mut node = Node::new(cfg, disk, persisted, sm, host, shared);
        if let Some(bug) = self.setup.bug {
            node.inject_bug(bug);
        }
        if let Some(bug) = self.setup.paxos_bug {
            node.inject_paxos_bug(bug);
        }
        self.node = Some(node);
        Ok(())
    }

    /// Power cut: the process is gone and the disk keeps only what could have survived.
    pub fn crash(&mut self, rng: &mut SimRng) {
        self.node = None;
        self.fs.crash(rng);
    }
}
