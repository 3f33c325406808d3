//! Snapshot files: `snap-<index>-<term>.snap`, written to a temp file, fsynced, renamed,
//! and made durable by fsyncing the directory.
//!
//! Layout: magic 8 | version u32 | conf_len u32 | index u64 | term u64 | data_len u64 |
//! conf_state | data | crc32c u32 over everything before it.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::fs::{FileSystem, StorageFile};
use crate::segment::TMP_SUFFIX;
use crate::types::{Snapshot, SnapshotMeta};

pub const SNAPSHOT_MAGIC: [u8; 8] = *b"TALLYSNP";
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;
const SNAPSHOT_HEADER_LEN: usize = 8 + 4 + 4 + 8 + 8 + 8;

pub fn snapshot_name(index: u64, term: u64) -> String {
    format!("snap-{index:016x}-{term:016x}.snap")
}

/// (index, term) of a finished snapshot file name.
pub fn parse_snapshot_name(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix("snap-")?.strip_suffix(".snap")?;
    let (i, t) = rest.split_once('-')?;
    if i.len() != 16 || t.len() != 16 {
        return None;
    }
    Some((u64::from_str_radix(i, 16).ok()?, u64::from_str_radix(t, 16).ok()?))
}

/// Everything before the data: the fixed header and the conf state.
fn header(meta: &SnapshotMeta, data_len: usize) -> Result<Vec<u8>> {
    let conf_len =
        u32::try_from(meta.conf_state.len()).map_err(|_| Error::InvalidBatch("conf_state larger than 4 GiB".into()))?;
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER_LEN + meta.conf_state.len());
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&conf_len.to_le_bytes());
    out.extend_from_slice(&meta.index.to_le_bytes());
    out.extend_from_slice(&meta.term.to_le_bytes());
    out.extend_from_slice(&(data_len as u64).to_le_bytes());
    out.extend_from_slice(&meta.conf_state);
    Ok(out)
}

/// Data written between two syncs of a snapshot file.
const SYNC_EVERY: usize = 4 << 20;

/// Writes a snapshot durably; when this returns Ok the file survives a crash. The header,
/// the data and the checksum are written one after the other: the data (the whole state
/// machine) is not copied into a file-sized buffer first.
///
/// The data is synced every `SYNC_EVERY` bytes rather than once at the end: a journal commit
/// for the WAL's fdatasync must also write out the snapshot's dirty pages (ext4's ordered
/// mode), so tens of MB written at once held up the log's appends until they were on disk.
pub fn write_snapshot<F: FileSystem>(fs: &F, dir: &Path, meta: &SnapshotMeta, data: &[u8]) -> Result<PathBuf> {
    let head = header(meta, data.len())?;
    let crc = crc32c::crc32c_append(crc32c::crc32c(&head), data);
    let path = dir.join(snapshot_name(meta.index, meta.term));
    let tmp = dir.join(format!("{}{TMP_SUFFIX}", snapshot_name(meta.index, meta.term)));
    let what = || format!("writing snapshot {}", tmp.display());
    let file = fs.open(&tmp, true).ctx(what)?;
    file.set_len(0).ctx(what)?;
    let data_at = head.len() as u64;
    file.write_all_at(&head, 0).ctx(what)?;
    for (i, chunk) in data.chunks(SYNC_EVERY).enumerate() {
        if i > 0 {
            // The chunk before; the last one is synced with the checksum below.
            file.sync_data().ctx(what)?;
        }
        file.write_all_at(chunk, data_at + (i * SYNC_EVERY) as u64).ctx(what)?;
    }
    file.write_all_at(&crc.to_le_bytes(), data_at + data.len() as u64).ctx(what)?;
    file.sync_data().ctx(what)?;
    drop(file);
    fs.rename(&tmp, &path).ctx(|| format!("renaming {} into place", tmp.display()))?;
    fs.sync_dir(dir).ctx(|| format!("syncing directory {}", dir.display()))?;
    Ok(path)
}

/// Reads and verifies a snapshot file; any damage is reported as `Corrupt` with an offset.
pub fn read_snapshot<F: FileSystem>(fs: &F, path: &Path) -> Result<Snapshot> {
    let what = || format!("reading snapshot {}", path.display());
    let file = fs.open(path, false).ctx(what)?;
    let len = file.size().ctx(what)?;
    let mut buf = vec![0u8; usize::try_from(len).expect("snapshot fits in memory")];
    file.read_exact_at(&mut buf, 0).ctx(what)?;
    decode(path, &buf)
}

fn decode(path: &Path, buf: &[u8]) -> Result<Snapshot> {
    let corrupt = |offset: usize, reason: &str| Error::Corrupt {
        path: path.to_owned(),
        offset: offset as u64,
        reason: reason.to_owned(),
    };
    if buf.len() < SNAPSHOT_HEADER_LEN + 4 {
        return Err(corrupt(0, "snapshot file shorter than its header"));
    }
    if buf[0..8] != SNAPSHOT_MAGIC {
        return Err(corrupt(0, "bad snapshot magic"));
    }
    let u32_at = |o: usize| u32::from_le_bytes(buf[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(buf[o..o + 8].try_into().unwrap());
    let version = u32_at(8);
    if version > SNAPSHOT_FORMAT_VERSION {
        return Err(Error::NewerFormat { path: path.to_owned(), found: version, supported: SNAPSHOT_FORMAT_VERSION });
    }
    let crc_at = buf.len() - 4;
    if crc32c::crc32c(&buf[..crc_at]) != u32_at(crc_at) {
        return Err(corrupt(crc_at, "snapshot checksum mismatch"));
    }
    let conf_len = u32_at(12) as usize;
    let (index, term, data_len) = (u64_at(16), u64_at(24), u64_at(32));
    let body = crc_at - SNAPSHOT_HEADER_LEN;
    if conf_len as u64 + data_len != body as u64 {
        return Err(corrupt(12, "snapshot section lengths do not add up"));
    }
    if parse_snapshot_name(&path.file_name().unwrap_or_default().to_string_lossy()) != Some((index, term)) {
        return Err(corrupt(16, "snapshot index/term disagree with the file name"));
    }
    let conf_end = SNAPSHOT_HEADER_LEN + conf_len;
    Ok(Snapshot {
        meta: SnapshotMeta { index, term, conf_state: buf[SNAPSHOT_HEADER_LEN..conf_end].to_vec() },
        data: buf[conf_end..crc_at].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let meta = SnapshotMeta { index: 10, term: 3, conf_state: vec![1, 2, 3] };
        let path = PathBuf::from(snapshot_name(10, 3));
        let dir = tempfile::tempdir().unwrap();
        let written = write_snapshot(&crate::fs::RealFs, dir.path(), &meta, b"state").unwrap();
        assert_eq!(written, dir.path().join(&path));
        let bytes = std::fs::read(&written).unwrap();
        let snap = decode(&path, &bytes).unwrap();
        assert_eq!((snap.meta, snap.data), (meta, b"state".to_vec()));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode(&path, &bad).is_err(), "flip at {i} went unnoticed");
        }
        assert_eq!(parse_snapshot_name(&snapshot_name(u64::MAX, 1)), Some((u64::MAX, 1)));
    }

    #[test]
    fn data_synced_in_chunks_reads_back_whole() {
        let meta = SnapshotMeta { index: 7, term: 2, conf_state: vec![9] };
        for len in [SYNC_EVERY - 1, SYNC_EVERY, 2 * SYNC_EVERY + 5] {
            let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let dir = tempfile::tempdir().unwrap();
            let written = write_snapshot(&crate::fs::RealFs, dir.path(), &meta, &data).unwrap();
            let snap = read_snapshot(&crate::fs::RealFs, &written).unwrap();
            assert!(snap.data == data, "{len} bytes did not read back whole");
        }
    }
}
