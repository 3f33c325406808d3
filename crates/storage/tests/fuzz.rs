//! Decoder fuzzing: whatever bytes a segment holds, opening the log returns `Ok` or a clear
//! `Err` and never panics; a log that opens can be read and appended to.

use std::path::Path;

use bytes::Bytes;
use proptest::prelude::*;
use tally_storage::simfs::SimFs;
use tally_storage::{
    segment_name, Error, HardState, LogEntry, Prepare, Wal, WalOptions, WriteBatch, SEGMENT_HEADER_LEN,
};

fn opts() -> WalOptions {
    WalOptions {
        segment_size: 4096,
        cache_bytes_max: 256,
        zero_fill: true,
        spare_segments_max: 2,
        prepare: Prepare::Inline,
    }
}

/// A data dir with one valid segment holding a few batches; returns the segment's bytes.
fn seeded_dir(fs: &SimFs) -> Vec<u8> {
    let (mut wal, _) = Wal::open_with(fs.clone(), "/d", opts()).unwrap();
    for i in 1..=6u64 {
        let e = LogEntry { index: i, term: 1, kind: 0, data: Bytes::from(vec![i as u8; 40 * i as usize]) };
        wal.append(&WriteBatch { hard_state: Some(HardState { term: 1, vote: 1, commit: i - 1 }), entries: &[e] })
            .unwrap();
    }
    drop(wal);
    fs.read_raw(&Path::new("/d").join(segment_name(1))).unwrap()
}

/// Opens and, if that works, exercises reads and an append.
fn open_and_use(fs: SimFs) -> Result<(), Error> {
    let (mut wal, rec) = Wal::open_with(fs, "/d", opts())?;
    let (first, last) = (wal.first_index(), wal.last_index());
    assert_eq!(rec.entries.len() as u64, last + 1 - first);
    wal.entries(first, last + 1)?;
    let e = LogEntry { index: last + 1, term: rec.hard_state.term.max(1), kind: 0, data: Bytes::from_static(b"x") };
    wal.append(&WriteBatch { hard_state: None, entries: &[e] })?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Random overwrites anywhere in a valid segment (including the header).
    #[test]
    fn damaged_segment_never_panics(edits in prop::collection::vec((0usize..4096, any::<u8>()), 1..20)) {
        let fs = SimFs::new();
        let mut bytes = seeded_dir(&fs);
        for (at, b) in edits {
            let at = at % bytes.len();
            bytes[at] = b;
        }
        fs.write_raw(&Path::new("/d").join(segment_name(1)), &bytes).unwrap();
        if let Err(e) = open_and_use(fs) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    /// Arbitrary bytes after a valid header: records are built from scratch by the fuzzer.
    #[test]
    fn arbitrary_records_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048), len_extra in 0usize..64) {
        let fs = SimFs::new();
        let valid = seeded_dir(&fs);
        let mut bytes = valid[..SEGMENT_HEADER_LEN].to_vec();
        bytes.extend_from_slice(&body);
        bytes.resize(bytes.len() + len_extra, 0);
        fs.write_raw(&Path::new("/d").join(segment_name(1)), &bytes).unwrap();
        let _ = open_and_use(fs);
    }

    /// Truncated files of any length.
    #[test]
    fn truncated_segment_never_panics(cut in 0usize..4096) {
        let fs = SimFs::new();
        let bytes = seeded_dir(&fs);
        fs.write_raw(&Path::new("/d").join(segment_name(1)), &bytes[..cut.min(bytes.len())]).unwrap();
        let _ = open_and_use(fs);
    }
}
