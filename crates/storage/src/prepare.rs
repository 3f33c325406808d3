//! Segment files made before they are needed (etcd's WAL "file pipeline"): when no spare
//! is left, the next file is created and zero-filled while appends go on, so a roll only
//! writes a header instead of waiting for `segment_size` bytes of zeros.
//!
//! The file is named `*.tmp` until a roll renames it into the log, so recovery deletes it
//! like any never-finished segment. A background job runs on its own thread; the inline
//! mode does the same work at the same point synchronously, for deterministic tests.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::fs::{FileSystem, StorageFile, UNBUFFERED_BLOCK};
use crate::pace::Pace;
use crate::recovery::write_zeros;

/// Name of the prepared file inside the data directory.
pub const PREPARED_NAME: &str = "next.wal.tmp";

/// How the next segment file is made when no spare is available.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prepare {
    /// At the roll, synchronously (each roll waits for the zero fill).
    AtRoll,
    /// Right after the previous roll, synchronously: deterministic, for tests.
    Inline,
    /// Right after the previous roll, on a background thread.
    Background,
}

/// Creates `path` with `size` bytes, written as zeros at `pace` if `zero_fill`, and syncs it.
pub fn create_file<F: FileSystem>(fs: &F, path: &Path, size: u64, zero_fill: bool, pace: Pace) -> io::Result<F::File> {
    if zero_fill && size.is_multiple_of(UNBUFFERED_BLOCK as u64) {
        // Straight to the disk: copied through the page cache, new segments' zeros took 9% of
        // the test machine's CPU under ZooKeeper writes on a large tree, for pages the
        // appends (unbuffered too) never read.
        let file = fs.create_unbuffered(path)?;
        write_zeros(&file, 0, size, pace)?;
        file.sync_data()?;
        return fs.open(path, false);
    }
    let file = fs.open(path, true)?;
    file.set_len(0)?;
    file.set_len(size)?;
    if zero_fill {
        write_zeros(&file, 0, size, pace)?;
    }
    file.sync_data()?;
    Ok(file)
}

/// A prepared (or being prepared) file of `segment_size` bytes.
pub enum Prepared<File> {
    /// Its zeros yield the disk to the log's appends (see `pace.rs`) until `hurry` is set.
    Running {
        job: JoinHandle<io::Result<File>>,
        hurry: Arc<AtomicBool>,
    },
    Done(io::Result<File>),
}

impl<File: StorageFile + 'static> Prepared<File> {
    pub fn start<F: FileSystem<File = File>>(fs: &F, dir: &Path, size: u64, zero_fill: bool, mode: Prepare) -> Self {
        let path = dir.join(PREPARED_NAME);
        match mode {
            Prepare::Background => {
                let (job_fs, job_path) = (fs.clone(), path.clone());
                let hurry = Arc::new(AtomicBool::new(false));
                let job_hurry = hurry.clone();
                let job = move || create_file(&job_fs, &job_path, size, zero_fill, Pace::Yield { hurry: &job_hurry });
                // Named: unnamed, it bore its creator's name, and its zero fill counted as the
                // Raft driver's CPU in per-thread figures.
                let thread = std::thread::Builder::new().name("wal-prepare".into());
                match thread.spawn(job) {
                    Ok(job) => Prepared::Running { job, hurry },
                    Err(_) => Prepared::Done(create_file(fs, &path, size, zero_fill, Pace::Full)),
                }
            }
            Prepare::Inline | Prepare::AtRoll => Prepared::Done(create_file(fs, &path, size, zero_fill, Pace::Full)),
        }
    }

    /// Writes the rest of its zeros at the disk's full speed.
    pub fn hurry(&self) {
        if let Prepared::Running { hurry, .. } = self {
            hurry.store(true, Ordering::Relaxed);
        }
    }

    /// Waits for the file, the rest of its zeros at the disk's full speed.
    pub fn wait(self) -> io::Result<File> {
        self.hurry();
        match self {
            Prepared::Running { job, .. } => {
                job.join().unwrap_or_else(|_| Err(io::Error::other("preparing thread panicked")))
            }
            Prepared::Done(res) => res,
        }
    }

    /// Waits for the file; returns it with its path.
    pub fn finish(self, dir: &Path) -> io::Result<(PathBuf, File)> {
        Ok((dir.join(PREPARED_NAME), self.wait()?))
    }
}
