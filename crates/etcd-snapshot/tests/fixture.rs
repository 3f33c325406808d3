//! A real snapshot, saved from etcd 3.5.35, and damaged copies of it.
//!
//! `fixtures/etcd-3.5.35.snapshot` was written by `etcdctl snapshot save` from a fresh
//! single-member etcd after: `put kNNN vNNN` for NNN = 001..120 (revisions 2..121), `put k001
//! again` (122), `del k002` (123), a lease of 600 s and `put leased x` on it (124), `compact
//! 100`, a 5000-byte `put big` (125), `del k003` (126). Its key bucket spans branch and leaf
//! pages, and the page holding `big` has an overflow page.

use proptest::prelude::*;
use tally_etcd_snapshot::{EtcdAuth, EtcdSnapshot, HashCheck, SnapshotError};

const FIXTURE: &[u8] = include_bytes!("fixtures/etcd-3.5.35.snapshot");
const PAGE_SIZE: usize = 4096;
const LEASE: i64 = 0x390d_a23b_5096_297d;

fn value_of<'a>(snap: &'a EtcdSnapshot, key: &str) -> Option<&'a [u8]> {
    snap.live().into_iter().find(|kv| kv.key == key.as_bytes()).map(|kv| &kv.value[..])
}

#[test]
fn reads_the_fixture() {
    let snap = EtcdSnapshot::from_bytes(FIXTURE, HashCheck::Verify).unwrap();
    assert_eq!(snap.current_revision(), 126);
    assert_eq!(snap.compact_revision(), 100);
    assert_eq!((snap.consistent_index, snap.term), (131, 2));

    // k001..k120, less the deleted k002 and k003, plus `leased` and `big`.
    let live = snap.live();
    assert_eq!(live.len(), 120);
    assert_eq!(value_of(&snap, "k001"), Some(&b"again"[..]));
    assert_eq!(value_of(&snap, "k120"), Some(&b"v120"[..]));
    assert_eq!(value_of(&snap, "k002"), None);
    assert_eq!(value_of(&snap, "big"), Some(&[b'b'; 5000][..]));

    let k001 = live.iter().find(|kv| kv.key == b"k001").unwrap();
    assert_eq!((k001.create_revision, k001.mod_revision, k001.version), (2, 122, 2));
    let leased = live.iter().find(|kv| kv.key == b"leased").unwrap();
    assert_eq!(leased.lease, LEASE);
    assert_eq!(snap.leases.len(), 1);
    assert_eq!((snap.leases[0].id, snap.leases[0].ttl), (LEASE, 600));

    // Compaction at 100 keeps each key's latest change at or before 100, so that reads at 100
    // still work: k001's first put (2) stays although 122 overwrote it. Nothing here is older.
    assert_eq!(snap.revisions.len(), 125);
    assert_eq!((snap.revisions[0].main, &snap.revisions[0].kv.value[..]), (2, &b"v001"[..]));
    // The deletes after the compaction are still there, as tombstones.
    let tombstones: Vec<_> = snap.revisions.iter().filter(|r| r.tombstone).map(|r| (r.main, &r.kv.key[..])).collect();
    assert_eq!(tombstones, vec![(123, &b"k002"[..]), (126, &b"k003"[..])]);

    assert_eq!(snap.members.len(), 1);
    assert_eq!(snap.members[0].name, "fixture");
    assert_eq!(snap.conf_state.as_ref().unwrap().voters, vec![snap.members[0].id]);
    assert_eq!(snap.cluster_version.as_deref(), Some("3.5.0"));
    // Auth never used: off, at the revision etcd starts it at, no users or roles.
    assert_eq!(snap.auth, EtcdAuth { revision: 1, ..EtcdAuth::default() });
}

#[test]
fn refuses_a_damaged_copy_unless_told_to_skip_the_hash() {
    let mut damaged = FIXTURE.to_vec();
    damaged[3 * PAGE_SIZE + 100] ^= 0x20; // inside `big`'s value: still a readable database
    let err = EtcdSnapshot::from_bytes(&damaged, HashCheck::Verify).unwrap_err();
    assert!(matches!(err, SnapshotError::HashMismatch { .. }), "{err}");
    let snap = EtcdSnapshot::from_bytes(&damaged, HashCheck::Skip).unwrap();
    assert_ne!(value_of(&snap, "big"), Some(&[b'b'; 5000][..]));
}

#[test]
fn reads_the_raw_database_when_the_hash_check_is_skipped() {
    let raw = &FIXTURE[..FIXTURE.len() - 32];
    assert!(matches!(EtcdSnapshot::from_bytes(raw, HashCheck::Verify), Err(SnapshotError::MissingTrailer { .. })));
    let snap = EtcdSnapshot::from_bytes(raw, HashCheck::Skip).unwrap();
    assert_eq!(snap, EtcdSnapshot::from_bytes(FIXTURE, HashCheck::Verify).unwrap());
}

/// A byte position that lands in a page's header and first elements half the time, where
/// damage reaches the parser's structure rather than values.
fn position() -> impl Strategy<Value = usize> {
    let pages = (FIXTURE.len() - 32) / PAGE_SIZE;
    prop_oneof![(0..pages, 0..96usize), (0..pages, 0..PAGE_SIZE)].prop_map(|(page, off)| page * PAGE_SIZE + off)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Damaged bytes give a snapshot or an error, never a panic. The hash check is skipped so
    /// that the damage reaches the bbolt and etcd decoders.
    #[test]
    fn flipped_bytes_never_panic(flips in prop::collection::vec((position(), 1..=255u8), 1..8)) {
        let mut damaged = FIXTURE.to_vec();
        for (at, mask) in flips {
            damaged[at] ^= mask;
        }
        let _ = EtcdSnapshot::from_bytes(&damaged, HashCheck::Skip);
        prop_assert!(EtcdSnapshot::from_bytes(&damaged, HashCheck::Verify).is_err());
    }

    #[test]
    fn truncated_files_never_panic(len in 0..FIXTURE.len()) {
        let _ = EtcdSnapshot::from_bytes(&FIXTURE[..len], HashCheck::Skip);
        prop_assert!(EtcdSnapshot::from_bytes(&FIXTURE[..len], HashCheck::Verify).is_err());
    }
}
