//! Reads: children sorted, descendants counted, ephemerals listed, requests dispatched.

mod common;

use common::*;
use tally_zk::proto::*;
use tally_zk::ZkError;

#[test]
fn children_come_sorted_by_name() {
    let mut r = Replica::new();
    for name in ["/b", "/a", "/c", "/a0"] {
        r.mk(name, OPEN);
    }
    assert_eq!(r.children("/"), ["a", "a0", "b", "c", "zookeeper"]);
    let (children, stat) = r.state.get_children2("/", &[]).unwrap();
    assert_eq!((children.len() as i32, stat.num_children), (5, 5));
    assert_eq!(r.children("/zookeeper"), ["config", "quota"]);
}

#[test]
fn all_children_number_counts_every_descendant() {
    let mut r = Replica::new();
    for path in ["/a", "/a/b", "/a/b/c", "/a/d", "/a-x", "/ab"] {
        r.mk(path, OPEN);
    }
    assert_eq!(r.state.get_all_children_number("/a", &[]), Ok(3));
    assert_eq!(r.state.get_all_children_number("/a/b/c", &[]), Ok(0));
    // The root counts everything else, ZooKeeper's own three nodes included.
    assert_eq!(r.state.get_all_children_number("/", &[]), Ok(9));
    assert_eq!(r.state.get_all_children_number("/nope", &[]), Err(ZkError::NoNode));
}

#[test]
fn exists_refuses_null_characters_and_misses_are_no_node() {
    let r = Replica::new();
    assert_eq!(r.state.exists("/a\0", &[]), Err(ZkError::BadArguments));
    assert_eq!(r.state.exists("/a", &[]), Err(ZkError::NoNode));
    // Reads do not validate paths otherwise: an invalid path is simply not there.
    assert_eq!(r.state.get_data("/a/", &[]), Err(ZkError::NoNode));
}

#[test]
fn get_ephemerals_filters_by_prefix() {
    let mut r = Replica::new();
    r.mk("/app", OPEN);
    r.mk("/app/e1", EPHEMERAL);
    r.mk("/apple", EPHEMERAL);
    r.mk("/b", EPHEMERAL);
    let s = r.session;
    assert_eq!(r.state.get_ephemerals(s, "/"), ["/app/e1", "/apple", "/b"]);
    assert_eq!(r.state.get_ephemerals(s, " "), ["/app/e1", "/apple", "/b"]);
    assert_eq!(r.state.get_ephemerals(s, "/app"), ["/app/e1", "/apple"]);
    assert_eq!(r.state.get_ephemerals(s + 1, "/"), Vec::<String>::new());
}

/// Found by the differential test: ZooKeeper trims the prefix with Java's `String.trim`, which
/// strips control characters (NUL too) but not Unicode spaces, unlike Rust's `str::trim`.
#[test]
fn get_ephemerals_trims_the_prefix_as_java_does() {
    let mut r = Replica::new();
    r.mk("/a", EPHEMERAL);
    let s = r.session;
    for blank in ["\0", "\t/ ", "\u{1}/\u{1f}", " / "] {
        assert_eq!(r.state.get_ephemerals(s, blank), ["/a"], "{blank:?} lists all");
    }
    for spaces in ["\u{a0}", "\u{3000}/", "\u{2028}"] {
        assert_eq!(r.state.get_ephemerals(s, spaces), Vec::<String>::new(), "{spaces:?} is a prefix");
    }
}

#[test]
fn read_dispatches_read_requests_and_declines_the_rest() {
    let mut r = Replica::new();
    r.mk("/a", OPEN);
    let watched = |path: &str| WatchedPathRequest { path: path.into(), watch: true };
    let (data, stat) = r.state.get_data("/a", &[]).unwrap();
    assert_eq!(
        r.state.read(&Request::GetData(watched("/a")), r.session, &[]),
        Some(Ok(Response::GetData { data, stat }))
    );
    assert_eq!(r.state.read(&Request::Exists(watched("/b")), r.session, &[]), Some(Err(ZkError::NoNode)));
    assert_eq!(
        r.state.read(&Request::GetAllChildrenNumber(PathRequest { path: "/zookeeper".into() }), r.session, &[]),
        Some(Ok(Response::AllChildrenNumber(2)))
    );
    assert_eq!(r.state.read(&Request::Ping, r.session, &[]), None);
    assert_eq!(r.state.read(&Request::Write(delete("/a", -1)), r.session, &[]), None);
}

#[test]
fn multi_read_answers_each_op_on_its_own() {
    let mut r = Replica::new();
    r.mk("/a", OPEN);
    let request = Request::MultiRead(vec![
        ReadOp::GetChildren(WatchedPathRequest { path: "/".into(), watch: false }),
        ReadOp::GetData(WatchedPathRequest { path: "/missing".into(), watch: false }),
        ReadOp::GetData(WatchedPathRequest { path: "/a".into(), watch: false }),
    ]);
    let Some(Ok(Response::Multi(results))) = r.state.read(&request, r.session, &[]) else { panic!() };
    assert_eq!(results[0], OpResult::GetChildren { children: vec!["a".into(), "zookeeper".into()] });
    assert_eq!(results[1], OpResult::Error { err: ZkError::NoNode.code() });
    assert_eq!(results[2], OpResult::GetData { data: Some(b"d".to_vec()), stat: r.stat("/a") });
}

/// ZooKeeper 3.8's node map holds the root under "" too: reads of the empty path read the root
/// (seen in the differential test), and getAllChildrenNumber("") counts every path starting with
/// "/", the root's included. Writes still refuse the empty path.
#[test]
fn the_empty_path_reads_the_root() {
    let mut r = Replica::new();
    r.mk("/a", OPEN);
    assert_eq!(r.state.exists("", &[]), r.state.exists("/", &[]));
    assert_eq!(r.state.get_data("", &[]), r.state.get_data("/", &[]));
    assert_eq!(r.state.get_children("", &[]).unwrap(), ["a", "zookeeper"]);
    assert_eq!(r.state.get_children2("", &[]), r.state.get_children2("/", &[]));
    assert_eq!(r.state.get_acl("", &[]), r.state.get_acl("/", &[]));
    assert_eq!(r.state.get_all_children_number("/", &[]), Ok(4));
    assert_eq!(r.state.get_all_children_number("", &[]), Ok(5));
    assert_eq!(r.write(set_data("", b"x", -1)), Err(ZkError::BadArguments));
    assert_eq!(r.create("", OPEN), Err(ZkError::BadArguments));
    assert_eq!(r.write(delete("", -1)), Err(ZkError::BadArguments));
}
