//! The Rust `etcd-client` crate against a 3-member Tally cluster: the core KV, cluster and
//! maintenance calls, with etcd's revision and version arithmetic.

mod support;

use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
};
use support::Cluster;

fn keys(resp: &etcd_client::GetResponse) -> Vec<String> {
    resp.kvs().iter().map(|kv| kv.key_str().expect("utf-8 key").to_string()).collect()
}

fn revision(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.expect("response header").revision()
}

fn grpc_message(err: etcd_client::Error) -> String {
    match err {
        etcd_client::Error::GRpcStatus(status) => status.message().to_string(),
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_client_crate_core_operations() {
    let mut cluster = Cluster::start(3).await;
    let mut client = Client::connect(cluster.endpoints(), None).await.expect("connect");

    // put: the first write to an empty store is revision 2, version 1.
    let resp = client.put("fruit/apple", "red", Some(PutOptions::new().with_prev_key())).await.expect("put");
    assert_eq!(revision(resp.header()), 2);
    assert!(resp.prev_key().is_none(), "a new key has no previous value");
    let got = client.get("fruit/apple", None).await.expect("get");
    let kv = &got.kvs()[0];
    assert_eq!((kv.create_revision(), kv.mod_revision(), kv.version()), (2, 2, 1));
    assert_eq!(kv.value(), b"red");

    // A second put of the same key: version 2, mod_revision moves, create_revision stays.
    let resp = client.put("fruit/apple", "green", Some(PutOptions::new().with_prev_key())).await.expect("put again");
    assert_eq!(revision(resp.header()), 3);
    let prev = resp.prev_key().expect("prev_kv of an overwritten key");
    assert_eq!(prev.value(), b"red");
    assert_eq!((prev.create_revision(), prev.mod_revision(), prev.version()), (2, 2, 1));
    let got = client.get("fruit/apple", None).await.expect("get");
    let kv = &got.kvs()[0];
    assert_eq!((kv.create_revision(), kv.mod_revision(), kv.version()), (2, 3, 2));
    assert_eq!(revision(got.header()), 3);

    client.put("fruit/banana", "yellow", None).await.expect("put"); // 4
    client.put("fruit/cherry", "dark red", None).await.expect("put"); // 5
    client.put("fruit/date", "brown", None).await.expect("put"); // 6
    client.put("veg/kale", "green", None).await.expect("put"); // 7

    // get: prefix, limit, sort, count_only, keys_only, revision.
    let all = client.get("fruit/", Some(GetOptions::new().with_prefix())).await.expect("prefix get");
    assert_eq!(keys(&all), ["fruit/apple", "fruit/banana", "fruit/cherry", "fruit/date"]);
    assert_eq!(all.count(), 4);
    assert!(!all.more());
    assert_eq!(revision(all.header()), 7);

    let limited = client.get("fruit/", Some(GetOptions::new().with_prefix().with_limit(2))).await.expect("limit");
    assert_eq!(keys(&limited), ["fruit/apple", "fruit/banana"]);
    assert_eq!(limited.count(), 4, "count is the number of keys in the range, not the number returned");
    assert!(limited.more());

    let desc = client
        .get("fruit/", Some(GetOptions::new().with_prefix().with_sort(SortTarget::Key, SortOrder::Descend)))
        .await
        .expect("sorted get");
    assert_eq!(keys(&desc), ["fruit/date", "fruit/cherry", "fruit/banana", "fruit/apple"]);

    let by_value = client
        .get("fruit/", Some(GetOptions::new().with_prefix().with_sort(SortTarget::Value, SortOrder::Ascend)))
        .await
        .expect("sort by value");
    assert_eq!(keys(&by_value), ["fruit/date", "fruit/cherry", "fruit/apple", "fruit/banana"]);

    let by_mod = client
        .get(
            "fruit/",
            Some(GetOptions::new().with_prefix().with_sort(SortTarget::Mod, SortOrder::Descend).with_limit(1)),
        )
        .await
        .expect("latest modified");
    assert_eq!(keys(&by_mod), ["fruit/date"]);

    let count = client.get("fruit/", Some(GetOptions::new().with_prefix().with_count_only())).await.expect("count");
    assert_eq!(count.count(), 4);
    assert!(count.kvs().is_empty(), "count_only returned key-values");

    let keys_only = client.get("fruit/", Some(GetOptions::new().with_prefix().with_keys_only())).await.expect("keys");
    assert_eq!(keys(&keys_only).len(), 4);
    assert!(keys_only.kvs().iter().all(|kv| kv.value().is_empty()), "keys_only returned values");
    assert_eq!(keys_only.kvs()[0].version(), 2, "keys_only keeps the metadata");

    let old = client.get("fruit/apple", Some(GetOptions::new().with_revision(2))).await.expect("get at revision 2");
    assert_eq!(old.kvs()[0].value(), b"red");
    let before = client.get("fruit/", Some(GetOptions::new().with_prefix().with_revision(4))).await.expect("rev 4");
    assert_eq!(keys(&before), ["fruit/apple", "fruit/banana"]);

    let from = client.get("fruit/cherry", Some(GetOptions::new().with_from_key())).await.expect("from key");
    assert_eq!(keys(&from), ["fruit/cherry", "fruit/date", "veg/kale"]);

    // delete with prev_kv.
    let del = client.delete("fruit/banana", Some(DeleteOptions::new().with_prev_key())).await.expect("delete");
    assert_eq!(del.deleted(), 1);
    assert_eq!(revision(del.header()), 8);
    assert_eq!(del.prev_kvs().len(), 1);
    assert_eq!(del.prev_kvs()[0].value(), b"yellow");
    assert_eq!(del.prev_kvs()[0].mod_revision(), 4);
    let none = client.delete("fruit/banana", None).await.expect("delete a missing key");
    assert_eq!(none.deleted(), 0);
    assert_eq!(revision(none.header()), 8, "deleting nothing does not make a revision");

    // A deleted and re-created key starts again at version 1 with a new create_revision.
    client.put("fruit/banana", "ripe", None).await.expect("re-create"); // 9
    let kv = client.get("fruit/banana", None).await.expect("get").kvs()[0].clone();
    assert_eq!((kv.create_revision(), kv.mod_revision(), kv.version()), (9, 9, 1));

    // txn: compares on version, create, mod and value.
    let txn = Txn::new()
        .when([
            Compare::version("fruit/apple", CompareOp::Equal, 2),
            Compare::create_revision("fruit/apple", CompareOp::Equal, 2),
            Compare::mod_revision("fruit/apple", CompareOp::Less, 4),
            Compare::value("fruit/apple", CompareOp::Equal, "green"),
        ])
        .and_then([TxnOp::put("fruit/apple", "golden", None), TxnOp::get("fruit/cherry", None)])
        .or_else([TxnOp::put("txn/failed", "1", None)]);
    let resp = client.txn(txn).await.expect("txn");
    assert!(resp.succeeded(), "every compare holds");
    assert_eq!(revision(resp.header()), 10);
    let ops = resp.op_responses();
    assert_eq!(ops.len(), 2);
    match &ops[1] {
        TxnOpResponse::Get(get) => assert_eq!(get.kvs()[0].value(), b"dark red"),
        other => panic!("expected a get response, got {other:?}"),
    }
    let kv = client.get("fruit/apple", None).await.expect("get").kvs()[0].clone();
    assert_eq!((kv.create_revision(), kv.mod_revision(), kv.version()), (2, 10, 3));
    assert_eq!(kv.value(), b"golden");

    let txn = Txn::new()
        .when([Compare::version("fruit/apple", CompareOp::Greater, 3)])
        .and_then([TxnOp::put("txn/succeeded", "1", None)])
        .or_else([TxnOp::put("txn/failed", "1", None), TxnOp::delete("veg/kale", None)]);
    let resp = client.txn(txn).await.expect("txn");
    assert!(!resp.succeeded(), "version 3 is not greater than 3");
    assert_eq!(revision(resp.header()), 11, "both failure ops share one revision");
    match &resp.op_responses()[1] {
        TxnOpResponse::Delete(d) => assert_eq!(d.deleted(), 1),
        other => panic!("expected a delete response, got {other:?}"),
    }
    assert!(client.get("txn/succeeded", None).await.unwrap().kvs().is_empty());
    let failed = client.get("txn/failed", None).await.unwrap();
    assert_eq!(failed.kvs()[0].mod_revision(), 11);
    assert!(client.get("veg/kale", None).await.unwrap().kvs().is_empty());

    // A compare on a missing key: its version and create revision are 0.
    let txn = Txn::new().when([Compare::create_revision("nothing/here", CompareOp::Equal, 0)]).and_then([TxnOp::put(
        "nothing/here",
        "now",
        None,
    )]);
    assert!(client.txn(txn).await.expect("create-if-absent").succeeded());
    let txn = Txn::new().when([Compare::create_revision("nothing/here", CompareOp::Equal, 0)]).and_then([TxnOp::put(
        "nothing/here",
        "again",
        None,
    )]);
    let resp = client.txn(txn).await.expect("create-if-absent twice");
    assert!(!resp.succeeded());
    assert_eq!(revision(resp.header()), 12, "a txn that changes nothing makes no revision");

    // compact: older revisions are gone, the current one is intact.
    client.compact(9, None).await.expect("compact");
    let err = client.get("fruit/apple", Some(GetOptions::new().with_revision(8))).await.expect_err("compacted");
    assert_eq!(grpc_message(err), "etcdserver: mvcc: required revision has been compacted");
    let at = client.get("fruit/", Some(GetOptions::new().with_prefix().with_revision(9))).await.expect("at 9");
    assert_eq!(keys(&at), ["fruit/apple", "fruit/banana", "fruit/cherry", "fruit/date"]);
    let err = client.compact(9, None).await.expect_err("compacting twice");
    assert_eq!(grpc_message(err), "etcdserver: mvcc: required revision has been compacted");
    let err = client.compact(1000, None).await.expect_err("compacting the future");
    assert_eq!(grpc_message(err), "etcdserver: mvcc: required revision is a future revision");
    let err = client.get("fruit/apple", Some(GetOptions::new().with_revision(1000))).await.expect_err("future");
    assert_eq!(grpc_message(err), "etcdserver: mvcc: required revision is a future revision");

    // member_list: every member with its name and URLs.
    let list = client.member_list().await.expect("member list");
    assert_eq!(list.members().len(), 3);
    for (i, m) in cluster.members.iter().enumerate() {
        let member = list
            .members()
            .iter()
            .find(|x| x.name() == m.name)
            .unwrap_or_else(|| panic!("member {} missing from {:?}", m.name, list.members()));
        assert_eq!(member.id(), cluster.id(i));
        assert_eq!(member.peer_urls(), [m.peer_url()]);
        assert!(!member.is_learner());
    }

    // status: each endpoint answers for itself and names the same leader.
    let leader = cluster.leader().await;
    for (i, m) in cluster.members.iter().enumerate() {
        let mut one = Client::connect([m.client_url()], None).await.expect("connect to one member");
        let status = one.status().await.expect("status");
        assert_eq!(status.header().expect("header").member_id(), cluster.id(i));
        assert_eq!(status.leader(), cluster.id(leader));
        assert_eq!(status.version(), "3.5.35", "the etcd release Tally matches");
        assert!(status.raft_term() >= 1);
        assert!(status.raft_index() >= 13, "raft index {} below the writes made", status.raft_index());
        assert!(status.raft_applied_index() <= status.raft_index());
        assert!(!status.is_learner());
        // Every member serves reads (linearizable by default) at the same revision.
        let got = one.get("fruit/apple", None).await.expect("get through one member");
        assert_eq!(revision(got.header()), 12);
        assert_eq!(got.kvs()[0].value(), b"golden");

        // A txn of ranges only is a read, as in etcd: answered after a ReadIndex (or locally
        // if every range is serializable), without a log entry.
        let index = one.status().await.expect("status").raft_index();
        for serializable in [false, true] {
            let get = |key| {
                let opts = GetOptions::new();
                TxnOp::get(key, Some(if serializable { opts.with_serializable() } else { opts }))
            };
            let txn = Txn::new()
                .when([Compare::value("fruit/apple", CompareOp::Equal, "golden")])
                .and_then([get("fruit/apple"), get("fruit/banana")])
                .or_else([get("veg/kale")]);
            let resp = one.txn(txn).await.expect("read-only txn");
            assert!(resp.succeeded());
            assert_eq!(revision(resp.header()), 12);
            let values: Vec<Vec<u8>> = resp
                .op_responses()
                .into_iter()
                .map(|op| match op {
                    etcd_client::TxnOpResponse::Get(g) => g.kvs()[0].value().to_vec(),
                    other => panic!("expected a range response, got {other:?}"),
                })
                .collect();
            assert_eq!(values, [b"golden".to_vec(), b"ripe".to_vec()]);
        }
        assert_eq!(one.status().await.expect("status").raft_index(), index, "the read-only txns made log entries");
    }
    cluster.assert_running();
}

/// Client connections hold writes until a flush and tell h2 they have no vectored writes
/// (`CoalescedWrites`), so h2 copies payloads under 1 KiB into its buffer and writes larger
/// ones in two parts, and a connection writes out what it holds past 64 KiB: values on both sides of those
/// sizes and of a 16 KiB frame, alone, all in one multi-frame response, and many at once on
/// one connection, must arrive byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_of_every_size_arrive_whole() {
    // A garbled HTTP/2 stream hangs rather than errs: fail instead.
    tokio::time::timeout(std::time::Duration::from_secs(60), every_size_arrives_whole())
        .await
        .expect("responses did not arrive within 60 s");
}

async fn every_size_arrives_whole() {
    let cluster = Cluster::start(3).await;
    let mut client = Client::connect(cluster.endpoints(), None).await.expect("connect");
    let sizes = [0, 1, 200, 255, 256, 300, 1000, 1023, 1024, 1025, 16_375, 16_384, 16_400, 100_000, 1 << 20];
    let value = |size: usize| (0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>();
    for size in sizes {
        client.put(format!("size/{size:08}"), value(size), None).await.expect("put");
    }
    for size in sizes {
        let got = client.get(format!("size/{size:08}"), None).await.expect("get");
        assert_eq!(got.kvs()[0].value(), value(size).as_slice(), "value of {size} bytes");
    }
    let all = client.get("size/", Some(GetOptions::new().with_prefix())).await.expect("prefix get");
    let got: Vec<usize> = all.kvs().iter().map(|kv| kv.value().len()).collect();
    assert_eq!(got, sizes.to_vec());
    for (kv, size) in all.kvs().iter().zip(sizes) {
        assert_eq!(kv.value(), value(size).as_slice(), "value of {size} bytes in the prefix range");
    }

    let reads = sizes.iter().cycle().take(64).map(|&size| {
        let mut client = client.clone();
        tokio::spawn(async move {
            let got = client.get(format!("size/{size:08}"), None).await.expect("concurrent get");
            (size, got.kvs()[0].value().to_vec())
        })
    });
    for read in reads.collect::<Vec<_>>() {
        let (size, got) = read.await.expect("reader task");
        assert_eq!(got, value(size), "value of {size} bytes read concurrently");
    }
}
