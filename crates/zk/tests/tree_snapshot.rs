//! Random command sequences: the invariants hold after every entry; a snapshot decodes to the
//! same state with the same hash; a replica restored from a snapshot taken midway and fed the
//! rest ends where one fed everything does.

use proptest::prelude::*;
use tally_zk::proto::*;
use tally_zk::tree::{path, Write, ZkCommand, ZkState};

const PATHS: [&str; 6] = ["/a", "/a/b", "/a/b/c", "/b", "/b/x", "/zookeeper/q"];

/// A command drawn before the sessions it names exist: sessions are picked by position.
#[derive(Clone, Debug)]
enum Step {
    Open,
    Close(usize),
    Txn(usize, Vec<Op>, bool),
    Expire(usize),
    Wait(i64),
}

#[derive(Clone, Debug)]
enum Op {
    Create(usize, i32),
    Container(usize),
    Ttl(usize, i64),
    Delete(usize, i32),
    SetData(usize, Vec<u8>, i32),
    SetAcl(usize, bool, i32),
    Check(usize, i32),
}

fn op() -> impl Strategy<Value = Op> {
    let path = 0..PATHS.len();
    let version = prop_oneof![Just(-1), 0..3i32];
    prop_oneof![
        4 => (path.clone(), 0..4i32).prop_map(|(p, flags)| Op::Create(p, flags)),
        1 => path.clone().prop_map(Op::Container),
        1 => (path.clone(), 1..5000i64).prop_map(|(p, ttl)| Op::Ttl(p, ttl)),
        2 => (path.clone(), version.clone()).prop_map(|(p, v)| Op::Delete(p, v)),
        2 => (path.clone(), proptest::collection::vec(any::<u8>(), 0..4), version.clone())
            .prop_map(|(p, d, v)| Op::SetData(p, d, v)),
        1 => (path.clone(), any::<bool>(), version.clone()).prop_map(|(p, open, v)| Op::SetAcl(p, open, v)),
        1 => (path, version).prop_map(|(p, v)| Op::Check(p, v)),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => Just(Step::Open),
        1 => (0..4usize).prop_map(Step::Close),
        6 => (0..4usize, proptest::collection::vec(op(), 1..4), any::<bool>()).prop_map(|(s, ops, multi)| Step::Txn(s, ops, multi)),
        1 => (0..PATHS.len()).prop_map(Step::Expire),
        1 => (0..10_000i64).prop_map(Step::Wait),
    ]
}

fn write_op(op: &Op) -> WriteOp {
    let acl = Acl::open_unsafe();
    match op {
        Op::Create(p, flags) => {
            WriteOp::Create(CreateRequest { path: PATHS[*p].into(), data: None, acl, flags: *flags })
        }
        Op::Container(p) => {
            WriteOp::CreateContainer(CreateRequest { path: PATHS[*p].into(), data: None, acl, flags: 4 })
        }
        Op::Ttl(p, ttl) => {
            WriteOp::CreateTtl(CreateTtlRequest { path: PATHS[*p].into(), data: None, acl, flags: 5, ttl: *ttl })
        }
        Op::Delete(p, version) => WriteOp::Delete(DeleteRequest { path: PATHS[*p].into(), version: *version }),
        Op::SetData(p, data, version) => {
            WriteOp::SetData(SetDataRequest { path: PATHS[*p].into(), data: Some(data.clone()), version: *version })
        }
        Op::SetAcl(p, open, version) => {
            let acl = if *open { acl } else { vec![Acl::new(perms::ALL - perms::WRITE, Id::anyone())] };
            WriteOp::SetAcl(SetAclRequest { path: PATHS[*p].into(), acl, version: *version })
        }
        Op::Check(p, version) => WriteOp::Check(CheckVersionRequest { path: PATHS[*p].into(), version: *version }),
    }
}

/// The commands of a run, after a first session's creation, with their index and time; session
/// positions are resolved as it goes (a closed session may be picked again).
fn commands(steps: &[Step]) -> Vec<(i64, i64, ZkCommand)> {
    let mut sessions: Vec<i64> = Vec::new();
    let mut out = Vec::new();
    let (mut zxid, mut now) = (1i64, 1_000i64);
    // Position 3 never names a session that was opened: writes by it are SessionExpired.
    let pick = |sessions: &[i64], i: usize| match i {
        3 => 0x0100_0000_0000_0000 | 999_999,
        _ => sessions[i % sessions.len()],
    };
    for step in std::iter::once(&Step::Open).chain(steps) {
        let command = match step {
            Step::Wait(ms) => {
                now += ms;
                continue;
            }
            Step::Open => {
                sessions.push(tally_zk::tree::session_id(zxid));
                ZkCommand::CreateSession { timeout_ms: 5000, password: [1; 16] }
            }
            Step::Close(i) => ZkCommand::CloseSession { session: pick(&sessions, *i) },
            Step::Txn(i, ops, multi) => {
                let write = if *multi {
                    Write::Multi(ops.iter().filter(|op| !matches!(op, Op::SetAcl(..))).map(write_op).collect())
                } else {
                    Write::One(write_op(&ops[0]))
                };
                ZkCommand::Txn { session: pick(&sessions, *i), owner: 0, auth: vec![], write }
            }
            Step::Expire(p) => ZkCommand::DeleteIfExpired { path: PATHS[*p].into() },
        };
        out.push((zxid, now, command));
        zxid += 1;
        now += 100;
    }
    out
}

fn replay(state: &mut ZkState, commands: &[(i64, i64, ZkCommand)]) {
    for (zxid, now, command) in commands {
        state.apply(*zxid, *now, command);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn snapshots_and_replays_agree(steps in proptest::collection::vec(step(), 1..60), cut in any::<prop::sample::Index>()) {
        let commands = commands(&steps);
        let mut full = ZkState::new();
        for (zxid, now, command) in &commands {
            prop_assert_eq!(&ZkCommand::decode(&command.encode()), &Ok(command.clone()));
            full.apply(*zxid, *now, command);
            prop_assert_eq!(full.check_invariants(), Ok(()));
        }
        let restored = ZkState::decode_snapshot(&full.encode_snapshot()).unwrap();
        prop_assert_eq!(restored.hash(), full.hash());
        prop_assert_eq!(&restored, &full);

        // A replica that took a snapshot midway, restored it, and applied the rest.
        let cut = cut.index(commands.len() + 1);
        let mut early = ZkState::new();
        replay(&mut early, &commands[..cut]);
        let mut late = ZkState::decode_snapshot(&early.encode_snapshot()).unwrap();
        replay(&mut late, &commands);
        prop_assert_eq!(late.hash(), full.hash());
        prop_assert_eq!(&late, &full);
    }
}

#[test]
fn different_states_hash_differently() {
    let mut a = ZkState::new();
    let b = ZkState::new();
    a.apply(1, 0, &ZkCommand::CreateSession { timeout_ms: 1, password: [0; 16] });
    assert_ne!(a.hash(), b.hash());
}

/// The snapshots of a fixed run of 3000 random writes, byte for byte (through their hashes,
/// every 300 writes), and its getChildren answers: the format, and so every replica's hash, and
/// the order of children do not depend on how the tree is held in memory.
#[test]
fn a_fixed_runs_snapshots_are_pinned() {
    let paths = ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"].map(String::from).to_vec();
    let mut run = FixedRun { state: ZkState::new(), zxid: 0, x: 0x9e37_79b9_7f4a_7c15, paths };
    let mut sessions = vec![run.open()];
    let mut digest = 0u64;
    for i in 1..=3000 {
        let picked = run.below(run.paths.len());
        let path = run.paths[picked].clone();
        let session = sessions[run.below(sessions.len())];
        match run.below(20) {
            0 => sessions.push(run.open()),
            1 if sessions.len() > 1 => {
                let closed = sessions.swap_remove(run.below(sessions.len()));
                run.apply(ZkCommand::CloseSession { session: closed });
            }
            2 => {
                run.apply(ZkCommand::DeleteIfExpired { path });
            }
            3..=5 => run.write(session, WriteOp::Delete(DeleteRequest { path, version: -1 })),
            6..=8 => {
                let data = Some(vec![run.below(256) as u8; run.below(8)]);
                run.write(session, WriteOp::SetData(SetDataRequest { path, data, version: -1 }));
            }
            9 => {
                let acl = vec![Acl::new(perms::ALL - run.below(2) as i32 * perms::WRITE, Id::anyone())];
                run.write(session, WriteOp::SetAcl(SetAclRequest { path, acl, version: -1 }));
            }
            _ => run.create(session, &path),
        }
        if i % 300 == 0 {
            assert_eq!(run.state.check_invariants(), Ok(()));
            run.check_children();
            digest = digest.rotate_left(5) ^ run.state.hash();
        }
    }
    assert!(run.state.node_count() > 200, "the run grows a tree: {}", run.state.node_count());
    assert_eq!(digest, 0x0da3_a6ed_4eb7_6b4d);
}

struct FixedRun {
    state: ZkState,
    zxid: i64,
    /// xorshift64's state.
    x: u64,
    /// Every path created so far, deleted or not, and ZooKeeper's own.
    paths: Vec<String>,
}

impl FixedRun {
    fn below(&mut self, n: usize) -> usize {
        self.x ^= self.x << 13;
        self.x ^= self.x >> 7;
        self.x ^= self.x << 17;
        (self.x % n as u64) as usize
    }

    fn apply(&mut self, command: ZkCommand) -> tally_zk::Outcome {
        self.zxid += 1;
        self.state.apply(self.zxid, self.zxid * 100, &command).outcome
    }

    fn open(&mut self) -> i64 {
        self.apply(ZkCommand::CreateSession { timeout_ms: 5000, password: [1; 16] });
        tally_zk::tree::session_id(self.zxid)
    }

    fn write(&mut self, session: i64, op: WriteOp) {
        self.apply(ZkCommand::Txn { session, owner: 0, auth: vec![], write: Write::One(op) });
    }

    /// getChildren of every node lists the names of the live paths under it, sorted.
    fn check_children(&self) {
        let mut live: Vec<&str> =
            self.paths.iter().map(String::as_str).filter(|p| self.state.node(p).is_some()).collect();
        live.sort_unstable();
        live.dedup();
        for &parent in &live {
            let mut names: Vec<&str> = live
                .iter()
                .filter_map(|p| path::split(p).filter(|&(q, _)| q == parent && *p != "/"))
                .map(|(_, n)| n)
                .collect();
            names.sort_unstable();
            assert_eq!(self.state.get_children(parent, &[]).unwrap(), names, "children of {parent}");
        }
    }

    /// A child of `parent` with a name that sorts apart from its path ("a!" and "a/b"), of
    /// any kind.
    fn create(&mut self, session: i64, parent: &str) {
        let name = ["a", "b", "a!", "a0", "\u{e9}", "x y"][self.below(6)];
        let path = format!("{}/{name}", parent.trim_end_matches('/'));
        let data = Some(vec![7; self.below(4)]);
        let r = CreateRequest { path, data, acl: Acl::open_unsafe(), flags: self.below(4) as i32 };
        let op = match self.below(6) {
            0 => WriteOp::CreateContainer(CreateRequest { flags: 4, ..r }),
            1 => WriteOp::CreateTtl(CreateTtlRequest { path: r.path, data: r.data, acl: r.acl, flags: 5, ttl: 1000 }),
            _ => WriteOp::Create(r),
        };
        let outcome = self.apply(ZkCommand::Txn { session, owner: 0, auth: vec![], write: Write::One(op) });
        if let tally_zk::Outcome::Reply(Ok(Response::Create { path } | Response::Create2 { path, .. })) = outcome {
            self.paths.push(path);
        }
    }
}
