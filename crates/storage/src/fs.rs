//! The small file-system surface the WAL needs, so tests can swap in a crash-simulating one.
//!
//! Only these calls reach the disk; anything the WAL claims about durability must be
//! expressible with them (write, fdatasync, fsync of a directory, rename).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::pace::Pace;

/// Offsets and lengths of writes to a file made by [`FileSystem::create_unbuffered`] are
/// multiples of this, and so are the addresses written from (the largest logical block size
/// of common disks).
pub const UNBUFFERED_BLOCK: usize = 4096;

/// Zeroed memory that begins on an [`UNBUFFERED_BLOCK`] boundary, to write an unbuffered file
/// from.
pub(crate) struct AlignedBuf {
    memory: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    pub fn new(len: usize) -> Self {
        let memory = vec![0u8; len + UNBUFFERED_BLOCK];
        let start = memory.as_ptr().align_offset(UNBUFFERED_BLOCK);
        Self { memory, start, len }
    }

    pub fn bytes(&mut self) -> &mut [u8] {
        &mut self.memory[self.start..self.start + self.len]
    }
}

/// An open file with positional I/O.
pub trait StorageFile: Send + Sync {
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset` (not durable until `sync_data`).
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset` for a background job, at `pace` (see `pace.rs`); a
    /// file with no disk to share writes at once.
    fn write_all_at_paced(&self, buf: &[u8], offset: u64, _pace: Pace) -> io::Result<()> {
        self.write_all_at(buf, offset)
    }
    /// fdatasync: makes written bytes and the file length durable.
    fn sync_data(&self) -> io::Result<()>;
    /// Sets the file length (zero-filling on growth).
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Current length in bytes.
    fn size(&self) -> io::Result<u64>;
}

/// Directory-level operations.
pub trait FileSystem: Clone + Send + Sync + 'static {
    type File: StorageFile;
    /// Held while the data directory is open; dropping it releases the lock.
    type Lock: Send + Sync;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Opens read-write; `create` makes a new empty file (truncating none).
    fn open(&self, path: &Path, create: bool) -> io::Result<Self::File>;
    /// File names (not paths) in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// fsync of the directory: makes creates, renames and removes in it durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on `dir`; `Ok(None)` if someone else holds it.
    fn try_lock(&self, dir: &Path) -> io::Result<Option<Self::Lock>>;
    /// Creates `path` empty, or empties it, for one large write that bypasses the page cache
    /// where the file system allows it (`O_DIRECT`): writes to it must be whole
    /// [`UNBUFFERED_BLOCK`]s, at block offsets, from block-aligned memory.
    fn create_unbuffered(&self, path: &Path) -> io::Result<Self::File>;
    /// Opens the existing `path` read-write, bypassing the page cache like
    /// [`FileSystem::create_unbuffered`] (the same rules for writes).
    fn open_unbuffered(&self, path: &Path) -> io::Result<Self::File>;
    /// `len` bytes of `path` from `offset`, mapped into memory rather than read where the
    /// platform allows: pages are read when first touched, and the page cache holds them.
    fn map(&self, path: &Path, offset: u64, len: usize) -> io::Result<Bytes>;
}

/// The real disk.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

impl StorageFile for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }
    fn write_all_at_paced(&self, buf: &[u8], offset: u64, pace: Pace) -> io::Result<()> {
        crate::pace::write_paced(self, buf, offset, pace)
    }
    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

impl FileSystem for RealFs {
    type File = File;
    type Lock = crate::lock::DirLock;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }
    fn open(&self, path: &Path, create: bool) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).create(create).truncate(false).open(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn try_lock(&self, dir: &Path) -> io::Result<Option<Self::Lock>> {
        crate::lock::DirLock::try_lock(&lock_path(dir))
    }
    fn create_unbuffered(&self, path: &Path) -> io::Result<File> {
        open_direct(OpenOptions::new().read(true).write(true).create(true).truncate(true), path)
    }
    fn open_unbuffered(&self, path: &Path) -> io::Result<File> {
        open_direct(OpenOptions::new().read(true).write(true), path)
    }
    fn map(&self, path: &Path, offset: u64, len: usize) -> io::Result<Bytes> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        if offset.checked_add(len as u64).is_none_or(|end| end > size) {
            let past = format!("mapping past the end of {}", path.display());
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, past));
        }
        if len == 0 {
            return Ok(Bytes::new());
        }
        // SAFETY: the files mapped (finished snapshots) are never written or truncated again,
        // only deleted, which leaves a mapping intact.
        let mapped = unsafe { memmap2::MmapOptions::new().offset(offset).len(len).map(&file)? };
        Ok(Bytes::from_owner(mapped))
    }
}

/// Opens with `O_DIRECT`, or without it on a file system that has no direct I/O: the same
/// writes then go through the page cache.
fn open_direct(options: &OpenOptions, path: &Path) -> io::Result<File> {
    match options.clone().custom_flags(libc::O_DIRECT).open(path) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => options.open(path),
        opened => opened,
    }
}

/// The lock file inside a data directory.
pub fn lock_path(dir: &Path) -> PathBuf {
    dir.join("LOCK")
}
