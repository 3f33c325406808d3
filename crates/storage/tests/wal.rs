//! Behaviour of the WAL on the real disk and on `SimFs`: round trips, group commit,
//! truncation, compaction, corruption, torn tails, locking and format versions.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use tally_storage::simfs::SimFs;
use tally_storage::{
    segment_name, Adoption, Error, HardState, LogEntry, Prepare, SnapshotMeta, Wal, WalOptions, WriteBatch,
};

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<LogEntry> {
    range
        .map(|i| LogEntry {
            index: i,
            term,
            kind: (i % 2) as u8,
            data: Bytes::from(format!("entry-{i}-term-{term}").repeat(3)),
        })
        .collect()
}

fn append(wal: &mut Wal<impl tally_storage::fs::FileSystem>, hs: Option<HardState>, es: &[LogEntry]) {
    wal.append(&WriteBatch { hard_state: hs, entries: es }).expect("append");
}

fn small() -> WalOptions {
    WalOptions {
        segment_size: 4096,
        cache_bytes_max: 1024,
        zero_fill: false,
        spare_segments_max: 2,
        prepare: Prepare::Inline,
    }
}

fn hs(term: u64, vote: u64, commit: u64) -> HardState {
    HardState { term, vote, commit }
}

#[test]
fn round_trip_on_disk_with_old_entries_read_back_from_segments() {
    let dir = tempfile::tempdir().unwrap();
    let all = entries(1..=300, 2);
    {
        let (mut wal, rec) = Wal::open(dir.path(), small()).unwrap();
        assert!(rec.entries.is_empty() && rec.hard_state == HardState::default());
        for chunk in all.chunks(7) {
            append(&mut wal, Some(hs(2, 1, chunk[0].index)), chunk);
        }
        assert!(wal.cached_bytes() <= 1024, "cache over budget: {}", wal.cached_bytes());
        assert!(wal.segment_count() > 3, "expected several segments");
        assert_eq!(wal.entries(1, 301).unwrap(), all);
        assert_eq!(wal.term(150), Some(2));
        assert!(matches!(wal.entries(0, 2), Err(Error::OutOfRange { .. })));
    }
    let (wal, rec) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(rec.entries, all);
    assert_eq!(rec.hard_state, hs(2, 1, 295));
    assert_eq!(rec.torn_tail, None);
    assert_eq!((wal.first_index(), wal.last_index()), (1, 300));
    assert_eq!(wal.entries(40, 45).unwrap(), all[39..44]);
}

#[test]
fn each_append_costs_exactly_one_fdatasync() {
    let fs = SimFs::new();
    // Inline: a background thread's syncs would land in the count at random.
    let opts = WalOptions { prepare: Prepare::Inline, ..WalOptions::default() };
    let (mut wal, _) = Wal::open_with(fs.clone(), "/d", opts).unwrap();
    for i in 0..50u64 {
        let before = fs.sync_count();
        let es = entries(i * 4 + 1..=i * 4 + 4, 1);
        append(&mut wal, Some(hs(1, 0, i)), &es);
        assert_eq!(fs.sync_count() - before, 1, "append {i}");
    }
    let before = fs.sync_count();
    append(&mut wal, None, &[]);
    assert_eq!(fs.sync_count(), before, "empty batch must not sync");
}

#[test]
fn suffix_truncation_survives_reopen() {
    let fs = SimFs::new();
    {
        let (mut wal, _) = Wal::open_with(fs.clone(), "/d", small()).unwrap();
        append(&mut wal, Some(hs(1, 1, 3)), &entries(1..=100, 1));
        // A new leader overwrites 51.. with its own, shorter suffix.
        append(&mut wal, Some(hs(2, 2, 3)), &entries(51..=60, 2));
        assert_eq!(wal.last_index(), 60);
        assert_eq!(wal.term(51), Some(2));
        // Committed entries cannot be overwritten.
        let err = wal.append(&WriteBatch { hard_state: None, entries: &entries(2..=2, 3) }).unwrap_err();
        assert!(matches!(err, Error::InvalidBatch(_)), "{err}");
        // Nor can a gap be left.
        assert!(wal.append(&WriteBatch { hard_state: None, entries: &entries(70..=70, 3) }).is_err());
    }
    let (wal, rec) = Wal::open_with(fs, "/d", small()).unwrap();
    let mut expect = entries(1..=50, 1);
    expect.extend(entries(51..=60, 2));
    assert_eq!(rec.entries, expect);
    assert_eq!(wal.last_index(), 60);
    assert_eq!(rec.hard_state, hs(2, 2, 3));
}

#[test]
fn snapshot_and_compaction_release_segments_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let all = entries(1..=400, 3);
    let segments_before;
    {
        let (mut wal, _) = Wal::open(dir.path(), small()).unwrap();
        for chunk in all.chunks(10) {
            append(&mut wal, Some(hs(3, 1, chunk.last().unwrap().index)), chunk);
        }
        segments_before = wal.segment_count();
        let meta1 = SnapshotMeta { index: 100, term: 3, conf_state: b"voters=1,2,3".to_vec() };
        wal.save_snapshot(&meta1, b"state at 100").unwrap();
        wal.compact(100).unwrap();
        let meta2 = SnapshotMeta { index: 350, term: 3, conf_state: b"voters=1,2,3".to_vec() };
        wal.save_snapshot(&meta2, b"state at 350").unwrap();
        // Keep a tail of 50 entries for slow followers.
        wal.compact(300).unwrap();
        assert_eq!(wal.first_index(), 301);
        assert!(wal.segment_count() < segments_before / 2, "{} of {segments_before}", wal.segment_count());
        assert!(matches!(wal.compact(351), Err(Error::InvalidBatch(_))), "compaction past the snapshot");
    }
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names.iter().filter(|n| n.ends_with(".snap")).count(), 1, "{names:?}");
    assert!(!names.contains(&segment_name(1)), "first segment must be gone: {names:?}");

    let (mut wal, rec) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(rec.snapshot_meta.as_ref().map(|m| m.index), Some(350));
    assert_eq!(rec.entries, all[300..]);
    assert_eq!((wal.first_index(), wal.term(300)), (301, Some(3)));
    assert_eq!(wal.load_snapshot().unwrap().unwrap().data, b"state at 350");
    append(&mut wal, None, &entries(401..=401, 3));
    assert_eq!(wal.last_index(), 401);
}

#[test]
fn installing_a_snapshot_beyond_the_log_discards_it() {
    let fs = SimFs::new();
    {
        let (mut wal, _) = Wal::open_with(fs.clone(), "/d", small()).unwrap();
        append(&mut wal, Some(hs(1, 0, 5)), &entries(1..=10, 1));
        let meta = SnapshotMeta { index: 50, term: 4, conf_state: vec![] };
        wal.save_snapshot(&meta, b"leader state").unwrap();
        assert_eq!((wal.first_index(), wal.last_index(), wal.term(50)), (51, 50, Some(4)));
        append(&mut wal, Some(hs(4, 0, 50)), &entries(51..=52, 4));
    }
    let (wal, rec) = Wal::open_with(fs, "/d", small()).unwrap();
    assert_eq!(rec.entries, entries(51..=52, 4));
    assert_eq!((wal.first_index(), wal.term(50)), (51, Some(4)));
}

/// Offset just past the last nonzero byte, rounded up to the record alignment.
fn log_end(bytes: &[u8]) -> usize {
    let last = bytes.iter().rposition(|&b| b != 0).unwrap();
    (last + 1).div_ceil(8) * 8
}

fn only_segment(dir: &Path) -> PathBuf {
    let p = dir.join(segment_name(1));
    assert!(p.exists());
    p
}

#[test]
fn flipped_byte_in_the_middle_is_reported_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        for i in 1..=20 {
            append(&mut wal, None, &entries(i..=i, 1));
        }
    }
    let path = only_segment(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let end = log_end(&bytes);
    let victim = end / 2;
    bytes[victim] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    let err = Wal::open(dir.path(), WalOptions::default()).err().expect("must refuse");
    let msg = err.to_string();
    let Error::Corrupt { path: p, offset, .. } = &err else {
        panic!("expected Corrupt, got {err}");
    };
    assert_eq!(p, &path);
    assert!(*offset as usize <= victim && victim - (*offset as usize) < 200, "offset {offset} vs flip at {victim}");
    assert!(msg.contains(&path.display().to_string()) && msg.contains(&format!("offset {offset}")), "{msg}");
}

#[test]
fn torn_tail_is_cut_and_the_log_stays_writable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        append(&mut wal, Some(hs(1, 1, 0)), &entries(1..=10, 1));
        append(&mut wal, None, &entries(11..=11, 1));
    }
    let path = only_segment(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let end = log_end(&bytes);
    // Simulate a crash midway through writing another copy of the last record.
    let torn: Vec<u8> = bytes[end - 64..end - 20].to_vec();
    bytes[end..end + torn.len()].copy_from_slice(&torn);
    bytes[end] = 0x5a;
    std::fs::write(&path, &bytes).unwrap();

    {
        let (mut wal, rec) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        let torn = rec.torn_tail.expect("torn tail reported");
        assert_eq!((torn.path, torn.offset), (path.clone(), end as u64));
        assert_eq!(rec.entries, entries(1..=11, 1));
        append(&mut wal, Some(hs(2, 2, 11)), &entries(12..=13, 2));
    }
    let (_, rec) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(rec.torn_tail, None);
    assert_eq!(rec.entries.len(), 13);
    assert_eq!(rec.hard_state, hs(2, 2, 11));
}

#[test]
fn second_open_of_a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    let err = Wal::open(dir.path(), WalOptions::default()).err().expect("locked");
    assert!(matches!(&err, Error::Locked { path } if path == dir.path()), "{err}");
    assert!(err.to_string().contains("locked"));
    drop(wal);
    Wal::open(dir.path(), WalOptions::default()).expect("lock released on drop");

    let fs = SimFs::new();
    let (_w, _) = Wal::open_with(fs.clone(), "/d", small()).unwrap();
    assert!(matches!(Wal::open_with(fs, "/d", small()), Err(Error::Locked { .. })));
}

#[test]
fn a_newer_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Wal::open(dir.path(), WalOptions::default()).unwrap());
    let path = only_segment(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let err = Wal::open(dir.path(), WalOptions::default()).err().expect("refused");
    assert!(matches!(err, Error::NewerFormat { found: 3, supported: 2, .. }), "{err}");
    assert!(err.to_string().contains("format version 3"), "{err}");
}

#[test]
fn a_failed_sync_poisons_the_log() {
    let fs = SimFs::new();
    let (mut wal, _) = Wal::open_with(fs.clone(), "/d", small()).unwrap();
    append(&mut wal, None, &entries(1..=3, 1));
    fs.crash_after(1); // the write succeeds, the fdatasync fails
    assert!(matches!(wal.append(&WriteBatch { hard_state: None, entries: &entries(4..=4, 1) }), Err(Error::Io { .. })));
    assert!(matches!(wal.append(&WriteBatch { hard_state: None, entries: &entries(4..=4, 1) }), Err(Error::Poisoned)));
}

#[test]
fn missing_segment_in_the_middle_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut wal, _) = Wal::open(dir.path(), small()).unwrap();
        for chunk in entries(1..=200, 1).chunks(10) {
            append(&mut wal, None, chunk);
        }
        assert!(wal.segment_count() >= 4);
    }
    std::fs::remove_file(dir.path().join(segment_name(2))).unwrap();
    let err = Wal::open(dir.path(), small()).err().expect("refused");
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
}

#[test]
fn segments_prepared_in_the_background_round_trip_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions { prepare: Prepare::Background, spare_segments_max: 0, ..small() };
    let all = entries(1..=300, 2);
    {
        let (mut wal, _) = Wal::open(dir.path(), opts.clone()).unwrap();
        for chunk in all.chunks(3) {
            append(&mut wal, Some(hs(2, 1, chunk[0].index)), chunk);
        }
        assert!(wal.segment_count() > 4, "{}", wal.segment_count());
        // Dropped while the next file may still be being written.
    }
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.iter().any(|n| n.ends_with(".tmp")), "the next segment was ready: {names:?}");
    let (mut wal, rec) = Wal::open(dir.path(), opts.clone()).unwrap();
    assert_eq!((rec.entries, rec.torn_tail), (all, None));
    append(&mut wal, None, &entries(301..=400, 2));
    drop(wal);
    assert_eq!(Wal::open(dir.path(), opts).unwrap().1.entries.len(), 400);
}

fn snap_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".snap"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_snapshot_written_on_another_thread_is_adopted_while_appends_go_on() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut wal, _) = Wal::open(dir.path(), small()).unwrap();
        append(&mut wal, Some(hs(2, 1, 100)), &entries(1..=100, 2));
        let meta = SnapshotMeta { index: 100, term: 2, conf_state: b"voters=1".to_vec() };
        let writer = wal.snapshot_writer();
        let background = std::thread::spawn(move || {
            let mapped = writer.write(&meta, b"state at 100")?;
            assert_eq!(&mapped[..], b"state at 100", "the data as the file holds it");
            Ok::<_, tally_storage::Error>(meta)
        });
        append(&mut wal, Some(hs(2, 1, 120)), &entries(101..=120, 2));
        let meta = background.join().unwrap().unwrap();
        assert_eq!(wal.adopt_snapshot(&meta).unwrap(), Adoption { adopted: true, retired: None });
        wal.compact(100).unwrap();
        assert_eq!(wal.first_index(), 101);
    }
    let (wal, rec) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(rec.snapshot_meta.map(|m| m.index), Some(100));
    assert_eq!(rec.entries, entries(101..=120, 2));
    assert_eq!(wal.load_snapshot().unwrap().unwrap().data, b"state at 100");
}

#[test]
fn a_snapshot_overtaken_by_a_newer_one_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), small()).unwrap();
    append(&mut wal, Some(hs(2, 1, 100)), &entries(1..=100, 2));
    let ours = SnapshotMeta { index: 60, term: 2, conf_state: vec![] };
    wal.snapshot_writer().write(&ours, b"state at 60").unwrap();
    // Meanwhile the leader's snapshot was installed.
    wal.save_snapshot(&SnapshotMeta { index: 90, term: 2, conf_state: vec![] }, b"state at 90").unwrap();
    let adoption = wal.adopt_snapshot(&ours).unwrap();
    assert!(!adoption.adopted);
    assert_eq!(adoption.retired, Some(dir.path().join(tally_storage::snapshot_name(60, 2))));
    wal.snapshot_writer().remove(&adoption.retired.unwrap()).unwrap();
    assert_eq!(snap_files(dir.path()), vec![tally_storage::snapshot_name(90, 2)]);
    // Adopting the current snapshot again changes nothing and keeps its file.
    let again = wal.adopt_snapshot(&SnapshotMeta { index: 90, term: 2, conf_state: vec![] }).unwrap();
    assert_eq!(again, Adoption { adopted: false, retired: None });
}

#[test]
fn adopting_a_snapshot_retires_the_previous_file_for_the_caller_to_delete() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut wal, _) = Wal::open(dir.path(), small()).unwrap();
        append(&mut wal, Some(hs(2, 1, 100)), &entries(1..=100, 2));
        let first = SnapshotMeta { index: 50, term: 2, conf_state: vec![] };
        wal.snapshot_writer().write(&first, b"state at 50").unwrap();
        wal.adopt_snapshot(&first).unwrap();
        let second = SnapshotMeta { index: 90, term: 2, conf_state: vec![] };
        wal.snapshot_writer().write(&second, b"state at 90").unwrap();
        let adoption = wal.adopt_snapshot(&second).unwrap();
        let old = dir.path().join(tally_storage::snapshot_name(50, 2));
        assert_eq!(adoption, Adoption { adopted: true, retired: Some(old) });
        // The file is still there: deleting it is the caller's.
        assert_eq!(snap_files(dir.path()).len(), 2);
        // The process dies before deleting it.
    }
    let (wal, rec) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(rec.snapshot_meta.map(|m| m.index), Some(90));
    assert_eq!(snap_files(dir.path()), vec![tally_storage::snapshot_name(90, 2)], "recovery deletes it");
    assert_eq!(wal.load_snapshot().unwrap().unwrap().data, b"state at 90");
}

#[test]
fn a_crash_between_writing_and_adopting_keeps_the_written_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut wal, _) = Wal::open(dir.path(), small()).unwrap();
        append(&mut wal, Some(hs(2, 1, 100)), &entries(1..=100, 2));
        let meta = SnapshotMeta { index: 80, term: 2, conf_state: vec![] };
        wal.snapshot_writer().write(&meta, b"state at 80").unwrap();
        append(&mut wal, Some(hs(2, 1, 110)), &entries(101..=110, 2));
        // Dropped without adopt_snapshot: the process died.
    }
    let (mut wal, rec) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(rec.snapshot_meta.map(|m| m.index), Some(80));
    assert_eq!(rec.entries.last().map(|e| e.index), Some(110));
    append(&mut wal, None, &entries(111..=111, 2));
}
