//! Appends to the active segment in whole blocks, through a file that bypasses the page cache
//! where the file system allows it ([`FileSystem::open_unbuffered`]).
//!
//! Buffered, each append copied the record into the page cache, and its fdatasync wrote the
//! dirty page back and waited for it; a page no longer cached would first have been read to
//! write part of it. Written directly, the record goes from this memory to the disk and the
//! fdatasync only flushes the device's cache: on the test machine it takes half the kernel
//! CPU per append (`fdatasync` of 1.1 KiB records: 45 → 23 µs of system time).
//!
//! So the block holding the append point is kept here, and each append rewrites it whole
//! with the record after it and zeros to the end of the last block (the record's trailer).

use std::io;
use std::path::Path;

use crate::fs::{AlignedBuf, FileSystem, StorageFile, UNBUFFERED_BLOCK};
use crate::record::TRAILER_LEN;

/// The most written in one call; a larger record is written in several (plus a block for
/// the trailer).
const CHUNK: usize = 1 << 20;

/// The writer at the end of the active segment.
pub(crate) struct BlockAppender<File> {
    file: File,
    buf: AlignedBuf,
    /// The most `buf` holds before it is written out: [`CHUNK`], or less if the rest of the
    /// segment is smaller (a small segment needs no megabyte of zeroed memory).
    chunk: usize,
    /// File offset of the block that `buf` begins with.
    block_at: u64,
    /// Bytes of `buf` holding the file from `block_at` up to the append point.
    filled: usize,
    /// The file's length, which no write passes.
    file_len: u64,
}

impl<File: StorageFile> BlockAppender<File> {
    /// Opens the segment `path` of `file_len` bytes, appending at `at`; `existing` holds its
    /// bytes from the start of `at`'s block up to `at`.
    pub fn open<F: FileSystem<File = File>>(
        fs: &F,
        path: &Path,
        file_len: u64,
        at: u64,
        existing: &[u8],
    ) -> io::Result<Self> {
        let block_at = at - at % UNBUFFERED_BLOCK as u64;
        assert_eq!(existing.len() as u64, at - block_at, "the bytes of the append point's block");
        // Unbuffered writes must be whole blocks; a segment that does not end on one (a
        // record larger than a segment gets its own file) is written through the page cache.
        let file = if file_len.is_multiple_of(UNBUFFERED_BLOCK as u64) {
            fs.open_unbuffered(path)
        } else {
            fs.open(path, false)
        }?;
        let rest_of_file = usize::try_from(file_len - block_at).unwrap_or(usize::MAX);
        let chunk = CHUNK.min(rest_of_file.next_multiple_of(UNBUFFERED_BLOCK));
        let mut buf = AlignedBuf::new(chunk + UNBUFFERED_BLOCK);
        buf.bytes()[..existing.len()].copy_from_slice(existing);
        Ok(Self { file, buf, chunk, block_at, filled: existing.len(), file_len })
    }

    /// Opens a recovered segment at its append point `at`, reading back the bytes of the
    /// append point's block before it through `file`.
    pub fn reopen<F: FileSystem<File = File>>(
        fs: &F,
        path: &Path,
        file: &File,
        file_len: u64,
        at: u64,
    ) -> io::Result<Self> {
        let block_at = at - at % UNBUFFERED_BLOCK as u64;
        let mut existing = vec![0u8; (at - block_at) as usize];
        file.read_exact_at(&mut existing, block_at)?;
        Self::open(fs, path, file_len, at, &existing)
    }

    /// Writes `record` at the append point followed by zeros to the end of its last block
    /// (at least `TRAILER_LEN` of them, or up to the end of the file), and moves the append
    /// point past the record. Not durable until [`BlockAppender::sync`].
    pub fn append(&mut self, record: &[u8]) -> io::Result<()> {
        let end = self.block_at + self.filled as u64 + record.len() as u64;
        assert!(end <= self.file_len, "a record past the end of its segment");
        let mut rest = record;
        while !rest.is_empty() {
            let n = rest.len().min(self.chunk - self.filled);
            self.buf.bytes()[self.filled..self.filled + n].copy_from_slice(&rest[..n]);
            (self.filled, rest) = (self.filled + n, &rest[n..]);
            if self.filled == self.chunk && !rest.is_empty() {
                self.file.write_all_at(&self.buf.bytes()[..self.chunk], self.block_at)?;
                (self.block_at, self.filled) = (self.block_at + self.chunk as u64, 0);
            }
        }
        let to_file_end = usize::try_from(self.file_len - self.block_at).unwrap_or(usize::MAX);
        let written = (self.filled + TRAILER_LEN).next_multiple_of(UNBUFFERED_BLOCK).min(to_file_end);
        let filled = self.filled;
        self.buf.bytes()[filled..written].fill(0);
        self.file.write_all_at(&self.buf.bytes()[..written], self.block_at)?;
        // Keep the append point's block (the part of it written) for the next append.
        let kept_from = filled - filled % UNBUFFERED_BLOCK;
        self.buf.bytes().copy_within(kept_from..filled, 0);
        (self.block_at, self.filled) = (self.block_at + kept_from as u64, filled - kept_from);
        Ok(())
    }

    /// fdatasync: makes what was appended durable.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// The append point.
    pub fn offset(&self) -> u64 {
        self.block_at + self.filled as u64
    }

    /// The segment's length: no record goes past it.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::fs::RealFs;
    use crate::simfs::SimFs;

    /// Appends records of many lengths (within a block, across blocks, over a chunk) to a
    /// file of `file_len` bytes of 0xee from `start`, checking the whole file after each
    /// append and once more through an appender reopened at the append point.
    fn appends_keep_the_file_exact<F: FileSystem>(fs: &F, path: &Path, file_len: u64, start: u64) {
        let file = fs.open(path, true).unwrap();
        file.write_all_at(&vec![0xee; file_len as usize], 0).unwrap();
        let mut expected = vec![0xee; file_len as usize];
        let block_at = start - start % UNBUFFERED_BLOCK as u64;
        let mut appender =
            BlockAppender::open(fs, path, file_len, start, &expected[block_at as usize..start as usize]).unwrap();
        let lengths = [8, 1, 4000, UNBUFFERED_BLOCK, 24, CHUNK + 3 * UNBUFFERED_BLOCK + 5, 0, 700];
        for (i, len) in lengths.into_iter().enumerate() {
            if i == lengths.len() / 2 {
                drop(appender);
                appender = BlockAppender::reopen(fs, path, &file, file_len, start_of_next(&expected, start)).unwrap();
            }
            let at = appender.offset() as usize;
            let record: Vec<u8> = (0..len).map(|j| (i * 31 + j % 251) as u8 | 1).collect();
            appender.append(&record).unwrap();
            appender.sync().unwrap();
            expected[at..at + len].copy_from_slice(&record);
            let zeros_to = (at + len + TRAILER_LEN).next_multiple_of(UNBUFFERED_BLOCK).min(file_len as usize);
            expected[at + len..zeros_to].fill(0);
            let mut on_disk = vec![0; file_len as usize];
            file.read_exact_at(&mut on_disk, 0).unwrap();
            assert!(on_disk == expected, "after the record of {len} bytes at {at}");
            assert_eq!(appender.offset(), (at + len) as u64);
        }
    }

    /// The append point after the records in `expected` (where the zeros after them start).
    fn start_of_next(expected: &[u8], start: u64) -> u64 {
        let mut at = start as usize;
        while expected[at..at + TRAILER_LEN].iter().any(|&b| b != 0) {
            at += 1;
        }
        at as u64
    }

    #[test]
    fn appends_on_disk_are_the_records_then_zeros_to_the_block_end() {
        let dir = tempfile::tempdir().unwrap();
        let len = 4 * CHUNK as u64;
        for (name, file_len, start) in [("a", len, 0), ("b", len, 100), ("c", len, 8192 + 40), ("d", len + 520, 4090)] {
            appends_keep_the_file_exact(&RealFs, &dir.path().join(name), file_len, start);
        }
    }

    #[test]
    fn appends_through_simfs_match_the_real_disk() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/data")).unwrap();
        let len = 4 * CHUNK as u64;
        for (name, file_len, start) in [("a", len, 0), ("b", len + 520, 4090)] {
            appends_keep_the_file_exact(&fs, &PathBuf::from("/data").join(name), file_len, start);
        }
    }

    #[test]
    fn a_record_up_to_the_end_of_the_file_cuts_its_trailer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let file_len = 2 * UNBUFFERED_BLOCK as u64;
        let file = RealFs.open(&path, true).unwrap();
        file.set_len(file_len).unwrap();
        let mut appender = BlockAppender::open(&RealFs, &path, file_len, 0, &[]).unwrap();
        appender.append(&[7; 2 * UNBUFFERED_BLOCK - 8]).unwrap();
        appender.append(&[9; 8]).unwrap();
        let mut on_disk = vec![0; file_len as usize];
        file.read_exact_at(&mut on_disk, 0).unwrap();
        assert_eq!(&on_disk[..file_len as usize - 8], &[7; 2 * UNBUFFERED_BLOCK - 8][..]);
        assert_eq!(&on_disk[file_len as usize - 8..], &[9; 8]);
        assert_eq!(file.size().unwrap(), file_len, "nothing is written past the end");
    }
}
