//! Snapshot files: `snap-<index>-<term>.snap`, written to a temp file, fsynced, renamed,
//! and made durable by fsyncing the directory.
//!
//! Layout: magic 8 | version u32 | conf_len u32 | index u64 | term u64 | data_len u64 |
//! conf_state | data | crc32c u32 over everything before it.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::error::{Error, IoContext, Result};
use crate::fs::{AlignedBuf, FileSystem, StorageFile, UNBUFFERED_BLOCK};
use crate::pace::Pace;
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

/// Data written between two syncs of a snapshot file, and the size of the buffer it goes
/// through (a multiple of [`UNBUFFERED_BLOCK`]).
const SYNC_EVERY: usize = 4 << 20;

/// Writes a snapshot durably; when this returns Ok the file survives a crash. The header,
/// the data and the checksum go out one after the other: the data (the whole state machine)
/// is not copied into a file-sized buffer first.
///
/// The file bypasses the page cache (see [`FileSystem::create_unbuffered`]): a snapshot of a
/// large state, written once and rarely read, would otherwise have its size in fresh page
/// cache pages, which cost as much CPU to fill as the encoding itself (on a 2-core VM, a
/// 794 MB snapshot took half the machine for seconds while it was written).
///
/// The data is synced every `SYNC_EVERY` bytes rather than once at the end: where it goes
/// through the page cache, a journal commit for the WAL's fdatasync must also write out the
/// snapshot's dirty pages (ext4's ordered mode), so tens of MB written at once held up the
/// log's appends until they were on disk.
pub fn write_snapshot<F: FileSystem>(
    fs: &F,
    dir: &Path,
    meta: &SnapshotMeta,
    data: &[u8],
    pace: Pace,
) -> Result<PathBuf> {
    let head = header(meta, data.len())?;
    let crc = crc32c::crc32c_append(crc32c::crc32c(&head), data);
    let path = dir.join(snapshot_name(meta.index, meta.term));
    let tmp = dir.join(format!("{}{TMP_SUFFIX}", snapshot_name(meta.index, meta.term)));
    let what = || format!("writing snapshot {}", tmp.display());
    let file = fs.create_unbuffered(&tmp).ctx(what)?;
    let len = write_blocks(&file, [&head, data, &crc.to_le_bytes()], pace).ctx(what)?;
    // The last block's padding goes.
    file.set_len(len).ctx(what)?;
    file.sync_data().ctx(what)?;
    drop(file);
    fs.rename(&tmp, &path).ctx(|| format!("renaming {} into place", tmp.display()))?;
    fs.sync_dir(dir).ctx(|| format!("syncing directory {}", dir.display()))?;
    Ok(path)
}

/// Writes `parts` one after the other from offset 0, in whole blocks from an aligned buffer
/// (as an unbuffered file requires) at `pace`, syncing each chunk of `SYNC_EVERY` bytes before
/// the next; the last block is padded with zeros. Returns the length of the parts.
fn write_blocks<File: StorageFile>(file: &File, parts: [&[u8]; 3], pace: Pace) -> std::io::Result<u64> {
    // A small snapshot needs no zeroed buffer of `SYNC_EVERY` bytes.
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let chunk_len = SYNC_EVERY.min(total.next_multiple_of(UNBUFFERED_BLOCK));
    let mut memory = AlignedBuf::new(chunk_len);
    let chunk = memory.bytes();
    let (mut offset, mut filled) = (0u64, 0usize);
    for mut part in parts {
        while !part.is_empty() {
            let n = part.len().min(chunk_len - filled);
            chunk[filled..filled + n].copy_from_slice(&part[..n]);
            (filled, part) = (filled + n, &part[n..]);
            if filled == chunk_len {
                if offset > 0 {
                    file.sync_data()?;
                }
                file.write_all_at_paced(chunk, offset, pace)?;
                (offset, filled) = (offset + chunk_len as u64, 0);
            }
        }
    }
    if filled > 0 {
        let padded = filled.next_multiple_of(UNBUFFERED_BLOCK);
        chunk[filled..padded].fill(0);
        file.write_all_at_paced(&chunk[..padded], offset, pace)?;
    }
    Ok(offset + filled as u64)
}

/// The data of the snapshot file `path` wrote by [`write_snapshot`] with `meta` and `len`
/// bytes of data, mapped (see [`FileSystem::map`]): a store-sized snapshot kept for followers
/// that may need it then costs page cache the kernel can reclaim, not process memory.
pub fn map_snapshot_data<F: FileSystem>(fs: &F, path: &Path, meta: &SnapshotMeta, len: usize) -> Result<Bytes> {
    let data_at = (SNAPSHOT_HEADER_LEN + meta.conf_state.len()) as u64;
    fs.map(path, data_at, len).ctx(|| format!("mapping snapshot {}", path.display()))
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
        let written = write_snapshot(&crate::fs::RealFs, dir.path(), &meta, b"state", Pace::Full).unwrap();
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
    fn data_written_in_blocks_reads_back_whole_and_mapped() {
        let meta = SnapshotMeta { index: 7, term: 2, conf_state: vec![9] };
        // Header and checksum around the data: the file's length is rarely a whole block.
        let around = SNAPSHOT_HEADER_LEN + 1 + 4;
        let sizes = [0, 1, UNBUFFERED_BLOCK - around, SYNC_EVERY - around, SYNC_EVERY - 1, 2 * SYNC_EVERY + 5];
        for (len, pace) in sizes.into_iter().flat_map(|len| [(len, Pace::Full), (len, Pace::ALWAYS)]) {
            let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let dir = tempfile::tempdir().unwrap();
            let written = write_snapshot(&crate::fs::RealFs, dir.path(), &meta, &data, pace).unwrap();
            assert_eq!(std::fs::metadata(&written).unwrap().len(), (around + len) as u64, "no padding is left");
            let snap = read_snapshot(&crate::fs::RealFs, &written).unwrap();
            assert!(snap.data == data, "{len} bytes did not read back whole");
            let mapped = map_snapshot_data(&crate::fs::RealFs, &written, &meta, len).unwrap();
            assert!(mapped == data, "{len} bytes did not map back whole");
        }
    }

    #[test]
    fn a_simulated_disk_writes_and_maps_the_same_file() {
        let fs = crate::simfs::SimFs::new();
        let meta = SnapshotMeta { index: 9, term: 1, conf_state: vec![1, 2] };
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 7) as u8).collect();
        let written = write_snapshot(&fs, Path::new("/d"), &meta, &data, Pace::ALWAYS).unwrap();
        assert_eq!(read_snapshot(&fs, &written).unwrap().data, data);
        assert!(map_snapshot_data(&fs, &written, &meta, data.len()).unwrap() == data);
    }
}
