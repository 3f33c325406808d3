//! An in-memory file system that models what survives a crash, for deterministic tests.
//!
//! Every file keeps its durable bytes apart from the writes made since its last
//! `sync_data`. Directory entries (create, rename, remove) likewise become durable only with
//! `sync_dir`. [`SimFs::crash`] then builds the post-crash disk: each file keeps its durable
//! bytes plus a random prefix of its unsynced writes, the last of which may be torn (cut
//! short, filled with garbage, or with only some of its 512-byte sectors persisted); each
//! directory either keeps or loses its unsynced entry changes.
//!
//! [`SimFs::crash_after`] arms a countdown of mutating calls; when it hits zero that call and
//! every later one fails, as if the machine died there.

use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fs::{FileSystem, StorageFile};

/// Small deterministic PRNG (SplitMix64) so tests need no extra crate.
#[derive(Clone, Debug)]
pub struct SimRng(u64);

impl SimRng {
    pub fn new(seed: u64) -> SimRng {
        SimRng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        self.next_u64() % n
    }
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
}

#[derive(Clone, Debug)]
enum Op {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default)]
struct FileData {
    durable: Vec<u8>,
    current: Vec<u8>,
    unsynced: Vec<Op>,
}

fn apply(buf: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write { offset, data } => {
            let end = *offset as usize + data.len();
            if buf.len() < end {
                buf.resize(end, 0);
            }
            buf[*offset as usize..end].copy_from_slice(data);
        }
        Op::SetLen(len) => buf.resize(*len as usize, 0),
    }
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    files: BTreeMap<u64, FileData>,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    locks: HashMap<PathBuf, u64>,
    next_lock: u64,
    /// Mutating calls left before the simulated power cut.
    crash_countdown: Option<u64>,
    crashed: bool,
    syncs: u64,
}

impl State {
    /// Counts one mutating call against the crash countdown.
    fn tick(&mut self) -> io::Result<()> {
        if let Some(n) = self.crash_countdown.as_mut() {
            if *n == 0 {
                self.crashed = true;
            } else {
                *n -= 1;
            }
        }
        if self.crashed {
            return Err(io::Error::other("simulated crash"));
        }
        Ok(())
    }
}

/// Crash-simulating in-memory file system; clones share one disk.
#[derive(Clone, Debug, Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

/// A handle to a file in a [`SimFs`].
#[derive(Debug)]
pub struct SimFile {
    state: Arc<Mutex<State>>,
    id: u64,
}

/// Directory lock in a [`SimFs`]; released on drop.
#[derive(Debug)]
pub struct SimLock {
    state: Arc<Mutex<State>>,
    dir: PathBuf,
    token: u64,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut st = lock(&self.state);
        if st.locks.get(&self.dir) == Some(&self.token) {
            st.locks.remove(&self.dir);
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panicking test thread must not hide the disk from the next assertion.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{} not found", path.display()))
}

impl SimFs {
    pub fn new() -> SimFs {
        SimFs::default()
    }

    /// The `n`-th mutating call from now (0 = the next one) fails, and so does everything after.
    pub fn crash_after(&self, n: u64) {
        lock(&self.state).crash_countdown = Some(n);
    }

    /// Whether the armed crash has happened.
    pub fn has_crashed(&self) -> bool {
        lock(&self.state).crashed
    }

    /// Number of `sync_data` + `sync_dir` calls so far.
    pub fn sync_count(&self) -> u64 {
        lock(&self.state).syncs
    }

    /// Power cut: replaces the disk by what could have survived, drops all locks and
    /// disarms the crash. Open handles must not be used afterwards.
    pub fn crash(&self, rng: &mut SimRng) {
        let mut st = lock(&self.state);
        // Directories: each independently keeps or loses its unsynced entry changes.
        let mut dirs: Vec<PathBuf> =
            st.names.keys().chain(st.durable_names.keys()).filter_map(|p| p.parent().map(Path::to_owned)).collect();
        dirs.sort();
        dirs.dedup();
        for dir in dirs {
            if rng.chance(1, 2) {
                sync_dir_entries(&mut st, &dir);
            }
        }
        st.names = st.durable_names.clone();
        for f in st.files.values_mut() {
            let mut buf = std::mem::take(&mut f.durable);
            let keep = rng.below(f.unsynced.len() as u64 + 1) as usize;
            for op in &f.unsynced[..keep] {
                apply(&mut buf, op);
            }
            if let Some(Op::Write { offset, data }) = f.unsynced.get(keep) {
                let old = bytes_at(&buf, *offset, data.len());
                let torn = tear(rng, &old, data);
                if let Some(torn) = torn {
                    apply(&mut buf, &Op::Write { offset: *offset, data: torn });
                }
            }
            f.durable = buf.clone();
            f.current = buf;
            f.unsynced.clear();
        }
        st.locks.clear();
        st.crash_countdown = None;
        st.crashed = false;
    }

    /// Durable contents of `path` (for tests that inspect or damage files).
    pub fn read_raw(&self, path: &Path) -> io::Result<Vec<u8>> {
        let st = lock(&self.state);
        let id = st.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(st.files[id].current.clone())
    }

    /// Overwrites `path` durably, bypassing the crash model (to inject corruption).
    pub fn write_raw(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut st = lock(&self.state);
        let id = *st.names.get(path).ok_or_else(|| not_found(path))?;
        let f = st.files.get_mut(&id).expect("named files exist");
        f.durable = data.to_vec();
        f.current = data.to_vec();
        f.unsynced.clear();
        Ok(())
    }
}

/// Some damaged version of an in-flight write, or `None` for "not persisted at all".
/// `len` bytes of `buf` from `offset`, zeros past its end.
fn bytes_at(buf: &[u8], offset: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    let from = (offset as usize).min(buf.len());
    let to = (offset as usize + len).min(buf.len());
    bytes[..to - from].copy_from_slice(&buf[from..to]);
    bytes
}

/// What a write interrupted by the crash left over the `old` bytes it was replacing with
/// `data`. A byte it rewrote with its own value keeps it, however the write was cut: an
/// append that rewrites the start of its block whole (as an unbuffered one must, and as page
/// cache writeback always did) cannot damage the records before it.
fn tear(rng: &mut SimRng, old: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    const SECTOR: usize = 512;
    let mut d = match rng.below(4) {
        0 => return None,
        1 => return Some(data[..rng.below(data.len() as u64 + 1) as usize].to_vec()),
        2 => {
            // Cut short, the missing part replaced by garbage.
            let cut = rng.below(data.len() as u64 + 1) as usize;
            let mut d = data.to_vec();
            for b in &mut d[cut..] {
                *b = rng.next_u64() as u8;
            }
            d
        }
        _ => {
            // Disk reordering: only some sectors made it; the rest keep their old bytes.
            let mut d = data.to_vec();
            for (chunk, old) in d.chunks_mut(SECTOR).zip(old.chunks(SECTOR)) {
                if rng.chance(1, 2) {
                    chunk.copy_from_slice(old);
                }
            }
            d
        }
    };
    for ((torn, new), old) in d.iter_mut().zip(data).zip(old) {
        if new == old {
            *torn = *old;
        }
    }
    Some(d)
}

fn sync_dir_entries(st: &mut State, dir: &Path) {
    st.durable_names.retain(|p, _| p.parent() != Some(dir));
    let entries: Vec<(PathBuf, u64)> =
        st.names.iter().filter(|(p, _)| p.parent() == Some(dir)).map(|(p, &id)| (p.clone(), id)).collect();
    st.durable_names.extend(entries);
}

impl StorageFile for SimFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let st = lock(&self.state);
        let data = &st.files[&self.id].current;
        let end = offset as usize + buf.len();
        let src = data
            .get(offset as usize..end)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past end"))?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut st = lock(&self.state);
        st.tick()?;
        let f = st.files.get_mut(&self.id).expect("open file exists");
        let op = Op::Write { offset, data: buf.to_vec() };
        apply(&mut f.current, &op);
        f.unsynced.push(op);
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        let mut st = lock(&self.state);
        st.tick()?;
        st.syncs += 1;
        let f = st.files.get_mut(&self.id).expect("open file exists");
        f.durable = f.current.clone();
        f.unsynced.clear();
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = lock(&self.state);
        st.tick()?;
        let f = st.files.get_mut(&self.id).expect("open file exists");
        apply(&mut f.current, &Op::SetLen(len));
        f.unsynced.push(Op::SetLen(len));
        Ok(())
    }
    fn size(&self) -> io::Result<u64> {
        Ok(lock(&self.state).files[&self.id].current.len() as u64)
    }
}

impl FileSystem for SimFs {
    type File = SimFile;
    type Lock = SimLock;

    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(()) // Directories are implicit in paths.
    }
    fn open(&self, path: &Path, create: bool) -> io::Result<SimFile> {
        let mut st = lock(&self.state);
        let id = match st.names.get(path) {
            Some(&id) => id,
            None if create => {
                st.tick()?;
                let id = st.next_id;
                st.next_id += 1;
                st.files.insert(id, FileData::default());
                st.names.insert(path.to_owned(), id);
                id
            }
            None => return Err(not_found(path)),
        };
        Ok(SimFile { state: self.state.clone(), id })
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = lock(&self.state);
        Ok(st
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        st.tick()?;
        st.names.remove(path).map(drop).ok_or_else(|| not_found(path))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        st.tick()?;
        let id = st.names.remove(from).ok_or_else(|| not_found(from))?;
        st.names.insert(to.to_owned(), id);
        Ok(())
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        st.tick()?;
        st.syncs += 1;
        sync_dir_entries(&mut st, dir);
        Ok(())
    }
    fn try_lock(&self, dir: &Path) -> io::Result<Option<SimLock>> {
        let mut st = lock(&self.state);
        if st.locks.contains_key(dir) {
            return Ok(None);
        }
        st.next_lock += 1;
        let token = st.next_lock;
        st.locks.insert(dir.to_owned(), token);
        Ok(Some(SimLock { state: self.state.clone(), dir: dir.to_owned(), token }))
    }
    fn create_unbuffered(&self, path: &Path) -> io::Result<SimFile> {
        let file = self.open(path, true)?;
        file.set_len(0)?;
        Ok(file)
    }
    fn open_unbuffered(&self, path: &Path) -> io::Result<SimFile> {
        self.open(path, false)
    }
    /// A copy: nothing here is paged in lazily.
    fn map(&self, path: &Path, offset: u64, len: usize) -> io::Result<Bytes> {
        let mut buf = vec![0; len];
        self.open(path, false)?.read_exact_at(&mut buf, offset)?;
        Ok(Bytes::from(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_write_never_changes_the_bytes_it_rewrote_with_their_own_value() {
        let path = Path::new("/f");
        let old: Vec<u8> = (0..2048u32).map(|i| (i % 200) as u8 + 1).collect();
        // The first 700 bytes rewritten as they were, the rest changed.
        let mut new = old.clone();
        new[700..].iter_mut().for_each(|b| *b = b.wrapping_add(100));
        let (mut torn, mut lost_sectors) = (0, 0);
        for seed in 0..400 {
            let fs = SimFs::new();
            let file = fs.open(path, true).unwrap();
            file.write_all_at(&old, 0).unwrap();
            file.sync_data().unwrap();
            fs.sync_dir(Path::new("/")).unwrap();
            file.write_all_at(&new, 0).unwrap();
            fs.crash(&mut SimRng::new(seed));
            let after = fs.read_raw(path).unwrap();
            assert_eq!(after[..700], old[..700], "seed {seed}");
            torn += usize::from(after != old && after != new);
            lost_sectors += usize::from(after[1024..1536] == old[1024..1536] && after[1536..] == new[1536..]);
        }
        assert!(torn > 100 && lost_sectors > 10, "the crash tore writes ({torn}) and lost sectors ({lost_sectors})");
    }
}
