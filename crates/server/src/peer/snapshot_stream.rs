//! A snapshot travels on a peer connection of its own, in chunks: neither side ever holds more
//! than a chunk of it in flight (the sender slices the snapshot it already has; the receiver
//! writes chunks to a file), and the ordinary messages (heartbeats) are not stuck behind it.
//!
//! After a `PeerHello` with `snapshot_stream` set, the sender writes frames
//!
//! ```text
//! frame   = kind u8 | len u32 | crc32c(payload) u32 | payload      (integers big-endian)
//! CHUNK   (1)  the next `len` bytes of the snapshot's data
//! TRAILER (2)  a SnapshotTrailer: the Snapshot message with its data left out, the number of
//!              chunks, the total length and the CRC32C of the whole data
//! ```
//!
//! and the receiver answers with one RESULT (3) frame: empty when it took the snapshot, else
//! the reason it did not. The receiver checks each chunk as it arrives, and the whole (read
//! back from its file) against the trailer; only then does the node get the message. Any
//! failure (lost connection, bad checksum, a stall) deletes the partial file and makes the
//! sender report a failed transfer to its core, which starts a new one from the beginning.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tally_node::{paxos_codec, PeerMessage};
use tally_proto::tally_v1::SnapshotTrailer;
use tally_proto::Message as _;
use tally_raft::NodeId;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use tally_node::codec;

/// Data bytes per chunk the sender writes.
pub const CHUNK_BYTES: usize = 1 << 20;
/// Largest chunk the receiver accepts (a sender may choose larger chunks than ours).
const CHUNK_BYTES_MAX: usize = 16 << 20;
/// Largest trailer the receiver accepts (it holds a membership, a few ids).
const TRAILER_BYTES_MAX: usize = 1 << 20;
/// Largest snapshot the receiver accepts: it is read into memory in the end.
const SNAPSHOT_BYTES_MAX: u64 = 64 << 30;
/// Largest refusal reason read back.
const RESULT_BYTES_MAX: usize = 64 << 10;
/// Partial files in the data directory are named `PARTIAL_PREFIX<from>-<n>PARTIAL_SUFFIX`.
const PARTIAL_PREFIX: &str = "incoming-snapshot-";
const PARTIAL_SUFFIX: &str = ".part";

const KIND_CHUNK: u8 = 1;
const KIND_TRAILER: u8 = 2;
const KIND_RESULT: u8 = 3;
const HEADER_BYTES: usize = 9;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("nothing arrived for {0:?}")]
    Stalled(Duration),
    #[error("the stream ended after {chunks} chunks ({bytes} bytes) without a trailer")]
    Truncated { chunks: u64, bytes: u64 },
    #[error("chunk {chunk} (at byte {offset}) fails its checksum")]
    ChunkChecksum { chunk: u64, offset: u64 },
    #[error("the trailer fails its checksum")]
    TrailerChecksum,
    #[error("unexpected frame of kind {kind} and {len} bytes")]
    BadFrame { kind: u8, len: usize },
    #[error("the snapshot exceeds {SNAPSHOT_BYTES_MAX} bytes")]
    TooLarge,
    #[error("bad trailer: {0}")]
    BadTrailer(String),
    #[error("received {chunks} chunks ({bytes} bytes), the trailer says {chunks_sent} chunks ({bytes_sent} bytes)")]
    Length { chunks: u64, bytes: u64, chunks_sent: u64, bytes_sent: u64 },
    #[error("the snapshot's checksum is {actual:08x}, the trailer says {sent:08x}")]
    Checksum { actual: u32, sent: u32 },
    #[error("the receiver did not take the snapshot: {0}")]
    Refused(String),
}

async fn write_header<W: AsyncWrite + Unpin>(w: &mut W, kind: u8, payload: &[u8]) -> std::io::Result<u32> {
    let crc = crc32c::crc32c(payload);
    let mut header = [0u8; HEADER_BYTES];
    header[0] = kind;
    header[1..5].copy_from_slice(&(payload.len() as u32).to_be_bytes());
    header[5..].copy_from_slice(&crc.to_be_bytes());
    w.write_all(&header).await?;
    Ok(crc)
}

async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, kind: u8, payload: &[u8]) -> std::io::Result<u32> {
    let crc = write_header(w, kind, payload).await?;
    w.write_all(payload).await?;
    Ok(crc)
}

/// Reads one frame header: (kind, len, crc); `None` at a clean end of the stream.
async fn read_header<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<(u8, usize, u32)>> {
    let mut header = [0u8; HEADER_BYTES];
    match r.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(header[1..5].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_be_bytes(header[5..].try_into().expect("4 bytes"));
    Ok(Some((header[0], len, crc)))
}

/// `f` within `idle`, or `Stalled`.
async fn within<T, E: Into<StreamError>>(
    idle: Duration,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, StreamError> {
    match tokio::time::timeout(idle, f).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(StreamError::Stalled(idle)),
    }
}

/// Writes `m` (a Snapshot message) as chunks of `chunk_bytes` and a trailer; every write must
/// make progress within `idle`. The chunks are slices of the snapshot's data, never copies.
pub async fn write_snapshot<W: AsyncWrite + Unpin>(
    w: &mut W,
    mut m: PeerMessage,
    chunk_bytes: usize,
    idle: Duration,
) -> Result<(), StreamError> {
    assert!(chunk_bytes > 0 && chunk_bytes <= CHUNK_BYTES_MAX);
    let Some(snapshot) = m.snapshot_mut() else {
        panic!("write_snapshot of a {m:?}");
    };
    let data = std::mem::take(&mut snapshot.data);
    let (mut total_crc, mut chunks) = (0u32, 0u64);
    for start in (0..data.len()).step_by(chunk_bytes) {
        let chunk = data.slice(start..(start + chunk_bytes).min(data.len()));
        let crc = within(idle, write_header(w, KIND_CHUNK, &chunk)).await?;
        within(idle, w.write_all(&chunk)).await?;
        total_crc = crc32c::crc32c_combine(total_crc, crc, chunk.len());
        chunks += 1;
    }
    let (message, paxos_message) = match m {
        PeerMessage::Raft(m) => (Some(codec::message_to_pb(m)), None),
        PeerMessage::Paxos(m) => (None, Some(paxos_codec::paxos_to_pb(m))),
    };
    let trailer =
        SnapshotTrailer { message, paxos_message, chunks, total_bytes: data.len() as u64, total_crc32c: total_crc };
    within(idle, write_frame(w, KIND_TRAILER, &trailer.encode_to_vec())).await?;
    within(idle, w.flush()).await?;
    Ok(())
}

/// The receiver's answer: `Ok` if it took the snapshot.
pub async fn write_result<W: AsyncWrite + Unpin>(w: &mut W, result: &Result<(), String>) -> std::io::Result<()> {
    let reason = result.as_ref().err().map_or(&[][..], |r| r.as_bytes());
    write_frame(w, KIND_RESULT, &reason[..reason.len().min(RESULT_BYTES_MAX)]).await?;
    w.flush().await
}

pub async fn read_result<R: AsyncRead + Unpin>(r: &mut R, wait: Duration) -> Result<(), StreamError> {
    let header = within(wait, read_header(r)).await?;
    let (kind, len, crc) = header.ok_or(StreamError::Refused("it closed the connection".into()))?;
    if kind != KIND_RESULT || len > RESULT_BYTES_MAX {
        return Err(StreamError::BadFrame { kind, len });
    }
    let mut reason = vec![0u8; len];
    within(wait, r.read_exact(&mut reason)).await?;
    if crc32c::crc32c(&reason) != crc {
        return Err(StreamError::Refused("(its answer fails its checksum)".into()));
    }
    if reason.is_empty() {
        Ok(())
    } else {
        Err(StreamError::Refused(String::from_utf8_lossy(&reason).into_owned()))
    }
}

/// A file being received; deleted when dropped, whatever happened (the data is in memory by
/// then, or the transfer failed).
struct PartialFile {
    path: PathBuf,
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("could not remove {}: {e}", self.path.display());
            }
        }
    }
}

static PARTIAL_FILES: AtomicU64 = AtomicU64::new(0);

/// Reads a snapshot stream from peer `from` through a file in `dir`; every frame must arrive
/// within `idle`. Returns the complete Snapshot message once every check passed.
pub async fn read_snapshot<R: AsyncRead + Unpin>(
    r: &mut R,
    from: NodeId,
    dir: &Path,
    idle: Duration,
) -> Result<PeerMessage, StreamError> {
    let n = PARTIAL_FILES.fetch_add(1, Ordering::Relaxed);
    let partial = PartialFile { path: dir.join(format!("{PARTIAL_PREFIX}{from:016x}-{n}{PARTIAL_SUFFIX}")) };
    let mut file = tokio::fs::File::create(&partial.path).await?;
    let mut buf = Vec::new();
    let (mut chunks, mut bytes) = (0u64, 0u64);
    let trailer = loop {
        let Some((kind, len, crc)) = within(idle, read_header(r)).await? else {
            return Err(StreamError::Truncated { chunks, bytes });
        };
        let len_max = match kind {
            KIND_CHUNK => CHUNK_BYTES_MAX,
            KIND_TRAILER => TRAILER_BYTES_MAX,
            _ => 0,
        };
        if len > len_max || (kind == KIND_CHUNK && len == 0) {
            return Err(StreamError::BadFrame { kind, len });
        }
        buf.resize(len, 0);
        match within(idle, r.read_exact(&mut buf)).await {
            Err(StreamError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(StreamError::Truncated { chunks, bytes });
            }
            result => result?,
        };
        if kind == KIND_TRAILER {
            if crc32c::crc32c(&buf) != crc {
                return Err(StreamError::TrailerChecksum);
            }
            break SnapshotTrailer::decode(buf.as_slice()).map_err(|e| StreamError::BadTrailer(e.to_string()))?;
        }
        if crc32c::crc32c(&buf) != crc {
            return Err(StreamError::ChunkChecksum { chunk: chunks, offset: bytes });
        }
        bytes += len as u64;
        if bytes > SNAPSHOT_BYTES_MAX {
            return Err(StreamError::TooLarge);
        }
        file.write_all(&buf).await?;
        chunks += 1;
    };
    drop(buf);
    if (chunks, bytes) != (trailer.chunks, trailer.total_bytes) {
        let (chunks_sent, bytes_sent) = (trailer.chunks, trailer.total_bytes);
        return Err(StreamError::Length { chunks, bytes, chunks_sent, bytes_sent });
    }
    let message = match (trailer.message, trailer.paxos_message) {
        (Some(m), None) => codec::message_from_pb(m).map(PeerMessage::Raft),
        (None, Some(m)) => paxos_codec::paxos_from_pb(m).map(PeerMessage::Paxos),
        _ => None,
    };
    let Some(mut message) = message.filter(|m| m.snapshot().is_some()) else {
        return Err(StreamError::BadTrailer("it holds no snapshot message".into()));
    };
    let sender = message.from();
    if sender != from || message.snapshot().is_some_and(|s| !s.data.is_empty()) {
        let what = format!("its message is from {sender:x} (the connection's peer is {from:x}) or carries data");
        return Err(StreamError::BadTrailer(what));
    }
    file.flush().await?;
    drop(file);
    // Read back what was written: this checks the whole, disk included.
    let data = tokio::fs::read(&partial.path).await?;
    let actual = crc32c::crc32c(&data);
    if data.len() as u64 != bytes || actual != trailer.total_crc32c {
        return Err(StreamError::Checksum { actual, sent: trailer.total_crc32c });
    }
    if let Some(snapshot) = message.snapshot_mut() {
        snapshot.data = Bytes::from(data);
    }
    Ok(message)
}

/// Removes the partial files a crash left in `dir` (no transfer survives a restart).
pub fn remove_partial_files(dir: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(PARTIAL_PREFIX) && name.ends_with(PARTIAL_SUFFIX) {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tally_raft::{ConfState, Message, MessageBody, Snapshot, SnapshotMeta};

    use super::*;

    const IDLE: Duration = Duration::from_secs(5);

    fn snapshot_message(len: usize) -> PeerMessage {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let meta = SnapshotMeta { index: 42, term: 3, conf: ConfState::with_voters([1, 2, 3]) };
        let snapshot = Snapshot { meta, data: Bytes::from(data) };
        PeerMessage::Raft(Message { from: 1, to: 2, term: 3, body: MessageBody::Snapshot { snapshot } })
    }

    async fn encode(m: PeerMessage, chunk_bytes: usize) -> Vec<u8> {
        let mut wire = Vec::new();
        write_snapshot(&mut wire, m, chunk_bytes, IDLE).await.expect("write to memory");
        wire
    }

    /// (offset, kind, payload length) of every frame in an encoded stream.
    fn frames(wire: &[u8]) -> Vec<(usize, u8, usize)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < wire.len() {
            let len = u32::from_be_bytes(wire[at + 1..at + 5].try_into().unwrap()) as usize;
            out.push((at, wire[at], len));
            at += HEADER_BYTES + len;
        }
        out
    }

    fn partial_files(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
    }

    async fn receive(wire: &[u8], dir: &Path) -> Result<PeerMessage, StreamError> {
        let result = read_snapshot(&mut &wire[..], 1, dir, IDLE).await;
        assert_eq!(partial_files(dir), Vec::<String>::new(), "the partial file outlived the transfer");
        result
    }

    #[tokio::test]
    async fn a_snapshot_round_trips_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        for (len, chunk_bytes) in [(0, 16), (1, 16), (16, 16), (17, 16), (1000, 16), (100_000, 4096)] {
            let m = snapshot_message(len);
            let wire = encode(m.clone(), chunk_bytes).await;
            let kinds: Vec<u8> = frames(&wire).iter().map(|f| f.1).collect();
            let mut want = vec![KIND_CHUNK; len.div_ceil(chunk_bytes)];
            want.push(KIND_TRAILER);
            assert_eq!(kinds, want, "{len} bytes in chunks of {chunk_bytes}");
            assert_eq!(receive(&wire, dir.path()).await.expect("a whole stream"), m, "{len} bytes");
        }
    }

    /// Records where the bytes of every write come from.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<(usize, usize)>,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
            self.writes.push((buf.as_ptr() as usize, buf.len()));
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn the_sender_writes_slices_of_the_snapshot_not_copies() {
        let m = snapshot_message(10 * 1024);
        let snapshot = m.snapshot().expect("a snapshot message");
        let (start, len) = (snapshot.data.as_ptr() as usize, snapshot.data.len());
        let mut w = Recorder::default();
        write_snapshot(&mut w, m.clone(), 1024, IDLE).await.unwrap();
        let from_the_snapshot: usize =
            w.writes.iter().filter(|(p, n)| *p >= start && p + n <= start + len).map(|(_, n)| n).sum();
        assert_eq!(from_the_snapshot, len, "every data byte is written straight from the snapshot's buffer");
    }

    #[tokio::test]
    async fn a_corrupted_chunk_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let mut wire = encode(snapshot_message(10_000), 1000).await;
        let (at, _, _) = frames(&wire)[3];
        wire[at + HEADER_BYTES + 10] ^= 0x40;
        let err = receive(&wire, dir.path()).await.expect_err("a flipped bit");
        assert!(matches!(err, StreamError::ChunkChecksum { chunk: 3, offset: 3000 }), "{err}");
        assert_eq!(err.to_string(), "chunk 3 (at byte 3000) fails its checksum");
    }

    #[tokio::test]
    async fn a_truncated_stream_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let wire = encode(snapshot_message(10_000), 1000).await;
        let trailer_at = frames(&wire).last().unwrap().0;
        for cut in [0, 5, HEADER_BYTES + 500, trailer_at, trailer_at + 3, wire.len() - 1] {
            let err = receive(&wire[..cut], dir.path()).await.expect_err("a truncated stream");
            assert!(matches!(err, StreamError::Truncated { .. }), "cut at {cut}: {err}");
        }
        let err = receive(&wire[..trailer_at], dir.path()).await.unwrap_err();
        assert_eq!(err.to_string(), "the stream ended after 10 chunks (10000 bytes) without a trailer");
    }

    #[tokio::test]
    async fn chunks_lost_or_reordered_are_caught_by_the_trailer() {
        let dir = tempfile::tempdir().unwrap();
        let wire = encode(snapshot_message(10_000), 1000).await;
        let f = frames(&wire);
        let frame = |i: usize| &wire[f[i].0..f[i].0 + HEADER_BYTES + f[i].2];
        // Every frame intact, one missing.
        let lost: Vec<u8> = (0..f.len()).filter(|&i| i != 4).flat_map(|i| frame(i).to_vec()).collect();
        let err = receive(&lost, dir.path()).await.expect_err("a lost chunk");
        assert!(matches!(err, StreamError::Length { chunks: 9, bytes: 9000, chunks_sent: 10, bytes_sent: 10000 }));
        // Every frame intact, two swapped.
        let order = [0, 2, 1, 3, 4, 5, 6, 7, 8, 9, 10];
        let swapped: Vec<u8> = order.iter().flat_map(|&i| frame(i).to_vec()).collect();
        let err = receive(&swapped, dir.path()).await.expect_err("swapped chunks");
        assert!(matches!(err, StreamError::Checksum { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_snapshot_only_comes_from_the_connections_peer() {
        let dir = tempfile::tempdir().unwrap();
        let wire = encode(snapshot_message(100), 16).await;
        let err = read_snapshot(&mut &wire[..], 9, dir.path(), IDLE).await.expect_err("another sender");
        assert!(matches!(err, StreamError::BadTrailer(_)), "{err}");
        assert!(partial_files(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn a_stalled_stream_times_out_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let wire = encode(snapshot_message(10_000), 1000).await;
        let (mut tx, mut rx) = tokio::io::duplex(64 << 10);
        // Three chunks, then silence (the connection stays open).
        tx.write_all(&wire[..frames(&wire)[3].0]).await.unwrap();
        let idle = Duration::from_millis(100);
        let err = read_snapshot(&mut rx, 1, dir.path(), idle).await.expect_err("a stall");
        assert!(matches!(err, StreamError::Stalled(_)), "{err}");
        assert!(partial_files(dir.path()).is_empty());
        drop(tx);
    }

    #[tokio::test]
    async fn the_receivers_verdict_reaches_the_sender() {
        let mut wire = Vec::new();
        write_result(&mut wire, &Ok(())).await.unwrap();
        read_result(&mut &wire[..], IDLE).await.expect("taken");
        let mut wire = Vec::new();
        write_result(&mut wire, &Err("chunk 3 (at byte 3000) fails its checksum".into())).await.unwrap();
        let err = read_result(&mut &wire[..], IDLE).await.expect_err("refused");
        assert_eq!(
            err.to_string(),
            "the receiver did not take the snapshot: chunk 3 (at byte 3000) fails its checksum"
        );
        let err = read_result(&mut &[][..], IDLE).await.expect_err("no answer");
        assert!(matches!(err, StreamError::Refused(_)), "{err}");
    }

    #[test]
    fn partial_files_left_by_a_crash_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["incoming-snapshot-0000000000000001-0.part", "incoming-snapshot-00000000000000ff-7.part"] {
            std::fs::write(dir.path().join(name), b"half a snapshot").unwrap();
        }
        for name in ["0000000000000001-0000000000000010.snap", "wal-1.log", "incoming-snapshot-notes.txt"] {
            std::fs::write(dir.path().join(name), b"keep").unwrap();
        }
        assert_eq!(remove_partial_files(dir.path()).unwrap(), 2);
        let mut left = partial_files(dir.path());
        left.sort();
        assert_eq!(left, ["0000000000000001-0000000000000010.snap", "incoming-snapshot-notes.txt", "wal-1.log"]);
    }
}
