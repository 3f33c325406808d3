//! Exclusive directory lock via flock(2).
//!
//! flock locks belong to the open file description, so a second `open` of the same
//! directory conflicts even inside one process, not only across processes.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Holds the lock until dropped (closing the descriptor releases it).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks `path` (created if missing); `Ok(None)` if another holder has it.
    pub fn try_lock(path: &Path) -> io::Result<Option<DirLock>> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        // SAFETY: flock only reads the descriptor number; `file` keeps it open for the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(Some(DirLock { _file: file }));
        }
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(err)
        }
    }
}
