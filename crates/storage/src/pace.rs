//! Bulk writes made in the background (a new segment's zeros, a snapshot file) share the disk
//! with the log's appends, and at the disk's full speed they queue every append behind them:
//! on the test machine's virtio disk, one thread writing zeros in 1 MiB pieces took the 24 KiB
//! write + fdatasync of three log-like writers from 0.34 ms to 6.6 ms, and a long-lived
//! cluster's p99 under ZooKeeper creates from 13-19 ms to 18-64 ms (bench/HISTORY.md, 6 Dec).
//! So a background write goes in pieces of [`PIECE`] bytes, each followed by a pause
//! [`PAUSE_PER_BUSY`] times as long as the piece took: it keeps at most a quarter of the disk's
//! time, whatever the disk, and an append waits behind one piece at most.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::fs::StorageFile;

/// The most a background write puts before the disk at once.
pub const PIECE: usize = 128 << 10;
/// Pause after each piece, in multiples of the time the piece took.
pub const PAUSE_PER_BUSY: u32 = 3;

/// How fast a bulk write may go.
#[derive(Clone, Copy, Debug)]
pub enum Pace<'a> {
    /// At the disk's full speed: something waits for the write.
    Full,
    /// Yielding the disk to the log's appends until `hurry` is set (by whoever comes to
    /// wait for the write).
    Yield { hurry: &'a AtomicBool },
}

impl Pace<'_> {
    /// Yields with nothing ever to hurry it.
    pub const ALWAYS: Pace<'static> = Pace::Yield { hurry: &NEVER };
}

static NEVER: AtomicBool = AtomicBool::new(false);

/// Writes `buf` at `offset` of `file` at `pace`, for files on a disk others use.
pub(crate) fn write_paced(file: &impl StorageFile, buf: &[u8], offset: u64, pace: Pace) -> io::Result<()> {
    let Pace::Yield { hurry } = pace else {
        return file.write_all_at(buf, offset);
    };
    let mut done = 0;
    while done < buf.len() {
        let n = PIECE.min(buf.len() - done);
        let started = Instant::now();
        file.write_all_at(&buf[done..done + n], offset + done as u64)?;
        done += n;
        // After the last piece too: callers write in chunks (a segment's zeros 1 MiB at a
        // time), and a chunk's last piece is as much of the disk's time as any other.
        if !hurry.load(Ordering::Relaxed) {
            std::thread::sleep(started.elapsed() * PAUSE_PER_BUSY);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records the writes it is given, or fails them all.
    #[derive(Default)]
    struct Recorder {
        writes: Mutex<Vec<(u64, Vec<u8>)>>,
        full: bool,
    }

    impl StorageFile for Recorder {
        fn read_exact_at(&self, _: &mut [u8], _: u64) -> io::Result<()> {
            unimplemented!()
        }
        fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
            if self.full {
                return Err(io::Error::other("no space left"));
            }
            self.writes.lock().unwrap().push((offset, buf.to_vec()));
            Ok(())
        }
        fn sync_data(&self) -> io::Result<()> {
            Ok(())
        }
        fn set_len(&self, _: u64) -> io::Result<()> {
            Ok(())
        }
        fn size(&self) -> io::Result<u64> {
            Ok(0)
        }
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn a_yielding_write_goes_in_pieces_that_cover_the_buffer_in_order() {
        // Hurried, it only stops pausing.
        let hurry = AtomicBool::new(true);
        for pace in [Pace::ALWAYS, Pace::Yield { hurry: &hurry }] {
            let (file, buf) = (Recorder::default(), pattern(3 * PIECE + 17));
            write_paced(&file, &buf, 4096, pace).unwrap();
            let writes = file.writes.into_inner().unwrap();
            assert_eq!(writes.iter().map(|(_, w)| w.len()).collect::<Vec<_>>(), [PIECE, PIECE, PIECE, 17]);
            let mut at = 4096;
            for (offset, data) in &writes {
                assert_eq!(*offset, at);
                assert_eq!(data[..], buf[(at - 4096) as usize..(at - 4096) as usize + data.len()]);
                at += data.len() as u64;
            }
        }
    }

    #[test]
    fn a_full_speed_write_is_one_write() {
        let (file, buf) = (Recorder::default(), pattern(3 * PIECE));
        write_paced(&file, &buf, 0, Pace::Full).unwrap();
        assert_eq!(file.writes.into_inner().unwrap(), [(0, buf)]);
    }

    #[test]
    fn a_failed_piece_fails_the_write() {
        let full = Recorder { full: true, ..Default::default() };
        let err = write_paced(&full, &pattern(2 * PIECE), 0, Pace::ALWAYS).unwrap_err();
        assert_eq!(err.to_string(), "no space left");
    }
}
