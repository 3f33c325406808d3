//! The parser on hand-made files: each layout bbolt writes, and damaged inputs that must give
//! an error.

use super::testdb::{bucket_at, file, inline_bucket, leaf, meta, LeafEntry, PAGE_SIZE};
use super::*;

type Pair = (Vec<u8>, Vec<u8>);

fn data<'a>(key: &'a [u8], value: &[u8]) -> LeafEntry<'a> {
    (key, value.to_vec(), false)
}

fn nested(key: &[u8], value: Vec<u8>) -> LeafEntry<'_> {
    (key, value, true)
}

/// A bucket's plain key/value pairs, in the order the walk yields them.
fn pairs(bucket: Bucket) -> Result<Vec<Pair>, BoltError> {
    let mut out = Vec::new();
    for entry in bucket.entries() {
        let entry = entry?;
        if let Value::Data(v) = entry.value {
            out.push((entry.key.to_vec(), v.to_vec()));
        }
    }
    Ok(out)
}

fn pair(k: &str, v: &str) -> Pair {
    (k.as_bytes().to_vec(), v.as_bytes().to_vec())
}

/// Root leaf at page 2 with one inline bucket `a` and one bucket `b` whose leaf is page 3.
fn two_buckets() -> Vec<u8> {
    let a = inline_bucket(&[data(b"k1", b"v1"), data(b"k2", b"v2")]);
    let root = leaf(2, &[nested(b"a", a), nested(b"b", bucket_at(3))]);
    file(2, &[root, leaf(3, &[data(b"x", b"1")])])
}

#[test]
fn reads_inline_and_paged_buckets() {
    let file = two_buckets();
    let db = Db::open(&file).unwrap();
    assert_eq!(db.page_size(), PAGE_SIZE);
    assert_eq!(db.txid(), 2);
    let a = db.bucket(b"a").unwrap().unwrap();
    assert_eq!(pairs(a).unwrap(), vec![pair("k1", "v1"), pair("k2", "v2")]);
    let b = db.bucket(b"b").unwrap().unwrap();
    assert_eq!(pairs(b).unwrap(), vec![pair("x", "1")]);
    assert!(db.bucket(b"c").unwrap().is_none());
    assert!(matches!(a.get(b"k2").unwrap(), Some(Value::Data(b"v2"))));
}

#[test]
fn reads_buckets_nested_in_buckets() {
    let inner = inline_bucket(&[data(b"deep", b"yes")]);
    let outer = inline_bucket(&[nested(b"inner", inner), data(b"z", b"last")]);
    let file = file(2, &[leaf(2, &[nested(b"outer", outer)])]);
    let db = Db::open(&file).unwrap();
    let outer = db.bucket(b"outer").unwrap().unwrap();
    assert_eq!(pairs(outer).unwrap(), vec![pair("z", "last")]);
    let inner = outer.bucket(b"inner").unwrap().unwrap();
    assert_eq!(pairs(inner).unwrap(), vec![pair("deep", "yes")]);
    assert_eq!(outer.bucket(b"z").unwrap_err(), BoltError::NotABucket { name: "z".into() });
}

#[test]
fn walks_branch_pages_in_key_order() {
    // Bucket `t`: a branch at page 3 over a second branch (page 4) and a leaf (page 7).
    let root = leaf(2, &[nested(b"t", bucket_at(3))]);
    let top = testdb::branch(3, &[(b"a", 4), (b"m", 7)]);
    let lower = testdb::branch(4, &[(b"a", 5), (b"f", 6)]);
    let leaves = [
        leaf(5, &[data(b"a", b"1"), data(b"b", b"2")]),
        leaf(6, &[data(b"f", b"3")]),
        leaf(7, &[data(b"m", b"4"), data(b"n", b"5")]),
    ];
    let file = file(2, &[root, top, lower, leaves[0].clone(), leaves[1].clone(), leaves[2].clone()]);
    let db = Db::open(&file).unwrap();
    let got = pairs(db.bucket(b"t").unwrap().unwrap()).unwrap();
    assert_eq!(got, vec![pair("a", "1"), pair("b", "2"), pair("f", "3"), pair("m", "4"), pair("n", "5")]);
}

#[test]
fn reads_values_that_overflow_into_following_pages() {
    let big: Vec<u8> = (0..3 * PAGE_SIZE as u32).map(|i| i as u8).collect();
    let value_leaf = leaf(3, &[data(b"big", &big), data(b"small", b"s")]);
    assert_eq!(value_leaf.len(), 4 * PAGE_SIZE, "the leaf takes three overflow pages");
    let file = file(2, &[leaf(2, &[nested(b"v", bucket_at(3))]), value_leaf]);
    let db = Db::open(&file).unwrap();
    let got = pairs(db.bucket(b"v").unwrap().unwrap()).unwrap();
    assert_eq!(got, vec![(b"big".to_vec(), big), pair("small", "s")]);
}

#[test]
fn empty_bucket_has_no_entries() {
    let file = file(2, &[leaf(2, &[nested(b"e", inline_bucket(&[]))])]);
    let db = Db::open(&file).unwrap();
    assert_eq!(db.bucket(b"e").unwrap().unwrap().entries().count(), 0);
}

#[test]
fn fnv1a64_matches_reference_values() {
    assert_eq!(meta::fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(meta::fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(meta::fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
}

/// The same file with a second root (page 3) that only meta page 1 (txid 2) names.
fn two_roots() -> Vec<u8> {
    let old = leaf(2, &[nested(b"old", inline_bucket(&[]))]);
    let new = leaf(3, &[nested(b"new", inline_bucket(&[]))]);
    let mut file = file(2, &[old, new]);
    file[PAGE_SIZE..2 * PAGE_SIZE].copy_from_slice(&meta(1, 3, 4, 2));
    file
}

fn top_level_names(file: &[u8]) -> Vec<Vec<u8>> {
    let db = Db::open(file).unwrap();
    db.root().entries().map(|e| e.unwrap().key.to_vec()).collect()
}

#[test]
fn picks_the_valid_meta_page_with_the_higher_txid() {
    let file = two_roots();
    assert_eq!(top_level_names(&file), vec![b"new".to_vec()]);

    // A damaged newer meta page falls back to the older one, as bbolt does.
    let mut damaged = file.clone();
    damaged[PAGE_SIZE + 16 + 40] ^= 1; // meta 1's high-water mark
    assert_eq!(top_level_names(&damaged), vec![b"old".to_vec()]);
}

#[test]
fn finds_the_page_size_from_the_second_meta_page_when_the_first_is_damaged() {
    let mut file = two_roots();
    file[16] ^= 0xff; // meta 0's magic
    assert_eq!(top_level_names(&file), vec![b"new".to_vec()]);
}

#[test]
fn refuses_a_file_without_a_valid_meta_page() {
    let mut file = two_buckets();
    file[16 + 8] ^= 1; // meta 0's page size: checksum no longer matches
    file[PAGE_SIZE + 16 + 4] = 9; // meta 1's version
    let err = Db::open(&file).unwrap_err();
    assert_eq!(err, BoltError::NoValidMeta { first: MetaFault::BadChecksum, second: MetaFault::NotFound });

    assert!(matches!(Db::open(b"not a database").unwrap_err(), BoltError::NoValidMeta { .. }));
    assert!(matches!(Db::open(&[]).unwrap_err(), BoltError::NoValidMeta { .. }));
}

#[test]
fn refuses_a_truncated_file() {
    let file = two_buckets();
    let err = Db::open(&file[..file.len() - 1]).unwrap_err();
    assert_eq!(err, BoltError::Truncated { needed: 4 * PAGE_SIZE as u64, len: 4 * PAGE_SIZE as u64 - 1 });
}

/// `file` with page `id` replaced, for pages the meta pages do not checksum.
fn with_page(mut file: Vec<u8>, id: usize, page: &[u8]) -> Vec<u8> {
    file[id * PAGE_SIZE..(id + 1) * PAGE_SIZE].copy_from_slice(page);
    file
}

/// The first error walking every top-level bucket gives.
fn walk_error(file: &[u8]) -> BoltError {
    let db = Db::open(file).unwrap();
    let walk = || -> Result<(), BoltError> {
        for entry in db.root().entries() {
            if let Value::Bucket(bucket) = entry?.value {
                for inner in bucket.entries() {
                    inner?;
                }
            }
        }
        Ok(())
    };
    walk().unwrap_err()
}

#[test]
fn refuses_pages_past_the_high_water_mark() {
    let file = with_page(two_buckets(), 2, &leaf(2, &[nested(b"b", bucket_at(9))]));
    assert_eq!(walk_error(&file), BoltError::PageOutOfRange { at: PageAt::Id(9), high_water: 4 });
    // Overflow pages must stay below it too.
    let mut page = leaf(3, &[data(b"x", b"1")]);
    page[12] = 1;
    let file = with_page(two_buckets(), 3, &page);
    assert_eq!(walk_error(&file), BoltError::PageOutOfRange { at: PageAt::Id(3), high_water: 4 });
}

#[test]
fn refuses_a_page_with_another_id_or_type() {
    let file = with_page(two_buckets(), 3, &leaf(7, &[data(b"x", b"1")]));
    assert_eq!(walk_error(&file), BoltError::PageIdMismatch { at: PageAt::Id(3), found: 7 });
    let mut page = leaf(3, &[data(b"x", b"1")]);
    page[8] = 0x10; // freelist
    let file = with_page(two_buckets(), 3, &page);
    assert_eq!(walk_error(&file), BoltError::UnexpectedPageType { at: PageAt::Id(3), flags: 0x10 });
}

#[test]
fn refuses_elements_outside_their_page() {
    let mut page = leaf(3, &[data(b"x", b"1")]);
    page[16 + 12..16 + 16].copy_from_slice(&u32::MAX.to_le_bytes()); // vsize
    let file = with_page(two_buckets(), 3, &page);
    assert_eq!(walk_error(&file), BoltError::ElementOutOfBounds { at: PageAt::Id(3), index: 0 });

    let mut page = leaf(3, &[data(b"x", b"1")]);
    page[10..12].copy_from_slice(&u16::MAX.to_le_bytes()); // count
    let file = with_page(two_buckets(), 3, &page);
    assert_eq!(walk_error(&file), BoltError::TooManyElements { at: PageAt::Id(3), count: 65535 });
}

#[test]
fn refuses_a_branch_that_points_back_at_itself() {
    let file = with_page(two_buckets(), 3, &testdb::branch(3, &[(b"a", 3)]));
    assert_eq!(walk_error(&file), BoltError::PageReachedTwice { at: PageAt::Id(3) });
    let file = with_page(two_buckets(), 3, &testdb::branch(3, &[]));
    assert_eq!(walk_error(&file), BoltError::EmptyBranch { at: PageAt::Id(3) });
}

#[test]
fn refuses_keys_out_of_order() {
    let file = with_page(two_buckets(), 3, &leaf(3, &[data(b"y", b"1"), data(b"x", b"2")]));
    assert_eq!(walk_error(&file), BoltError::KeysOutOfOrder { at: PageAt::Id(3) });
    let file = with_page(two_buckets(), 3, &leaf(3, &[data(b"x", b"1"), data(b"x", b"2")]));
    assert_eq!(walk_error(&file), BoltError::KeysOutOfOrder { at: PageAt::Id(3) });
}

#[test]
fn refuses_damaged_bucket_values() {
    let file = with_page(two_buckets(), 2, &leaf(2, &[nested(b"a", vec![0; 15])]));
    assert_eq!(walk_error(&file), BoltError::ShortBucketValue { at: PageAt::Id(2), len: 15 });
    // An inline bucket whose page is cut short.
    let file = with_page(two_buckets(), 2, &leaf(2, &[nested(b"a", vec![0; 20])]));
    assert_eq!(walk_error(&file), BoltError::ShortPage { at: PageAt::Inline, len: 4 });
    // An inline bucket must be a single leaf.
    let mut inline = bucket_at(0);
    inline.extend_from_slice(&testdb::branch(0, &[(b"a", 3)])[..32 + 1]);
    let file = with_page(two_buckets(), 2, &leaf(2, &[nested(b"a", inline)]));
    assert_eq!(walk_error(&file), BoltError::UnexpectedPageType { at: PageAt::Inline, flags: 0x01 });
}
