//! The two meta pages at the start of a bbolt file (pages 0 and 1). bbolt writes them in turn,
//! so the valid one with the higher transaction id is the last committed state.

use super::error::{BoltError, MetaFault};
use super::le::{u32_at, u64_at};
use super::page::PAGE_HEADER_SIZE;

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
/// The meta struct: magic, version, page size, flags (4 bytes each), root bucket (root pgid and
/// sequence), freelist pgid, high-water pgid, txid, then the checksum of everything before it.
const CHECKSUMMED_LEN: usize = 56;
const META_LEN: usize = CHECKSUMMED_LEN + 8;
/// Page sizes bbolt probes for when the first meta page is damaged.
const PROBED_PAGE_SIZES: std::ops::RangeInclusive<u32> = 10..=24;
const MIN_PAGE_SIZE: u32 = (PAGE_HEADER_SIZE + META_LEN) as u32;
const MAX_PAGE_SIZE: u32 = 1 << 24;

/// bbolt's freelist pgid when the freelist is not stored (etcd runs with NoFreelistSync).
pub(crate) const NO_FREELIST: u64 = u64::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub page_size: u32,
    /// Root page of the root bucket, whose entries are the top-level buckets.
    pub root: u64,
    pub freelist: u64,
    /// One past the last page in use: no page at or above it belongs to the database.
    pub high_water: u64,
    pub txid: u64,
}

/// FNV-1a, 64 bits: bbolt's meta checksum.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Parses and validates the meta page that starts at `page_start`.
fn meta_at(data: &[u8], page_start: usize) -> Result<Meta, MetaFault> {
    let start = page_start.checked_add(PAGE_HEADER_SIZE).ok_or(MetaFault::Truncated)?;
    let raw = data.get(start..start.checked_add(META_LEN).ok_or(MetaFault::Truncated)?).ok_or(MetaFault::Truncated)?;
    let field = |off| u64_at(raw, off).ok_or(MetaFault::Truncated);
    let magic = u32_at(raw, 0).ok_or(MetaFault::Truncated)?;
    if magic != MAGIC {
        return Err(MetaFault::BadMagic(magic));
    }
    let version = u32_at(raw, 4).ok_or(MetaFault::Truncated)?;
    if version != VERSION {
        return Err(MetaFault::BadVersion(version));
    }
    if field(CHECKSUMMED_LEN)? != fnv1a64(&raw[..CHECKSUMMED_LEN]) {
        return Err(MetaFault::BadChecksum);
    }
    let page_size = u32_at(raw, 8).ok_or(MetaFault::Truncated)?;
    if !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(MetaFault::BadPageSize(page_size));
    }
    // Offset 24 holds the root bucket's sequence, which a reader has no use for.
    Ok(Meta { page_size, root: field(16)?, freelist: field(32)?, high_water: field(40)?, txid: field(48)? })
}

/// The page size: from meta page 0, or, when that one is damaged, from meta page 1 found by
/// probing the offsets where it would start for each power-of-two page size, as bbolt does.
fn page_size(data: &[u8]) -> Result<u32, (MetaFault, MetaFault)> {
    let first = match meta_at(data, 0) {
        Ok(meta) => return Ok(meta.page_size),
        Err(fault) => fault,
    };
    PROBED_PAGE_SIZES
        .map(|shift| 1u32 << shift)
        .find(|&size| meta_at(data, size as usize).is_ok_and(|meta| meta.page_size == size))
        .ok_or((first, MetaFault::NotFound))
}

/// The meta page to read the database from: the valid one with the higher txid.
pub(crate) fn current_meta(data: &[u8]) -> Result<Meta, BoltError> {
    let size = page_size(data).map_err(|(first, second)| BoltError::NoValidMeta { first, second })?;
    let read = |index: usize| {
        let meta = meta_at(data, index * size as usize)?;
        // A meta page that disagrees about the page size cannot describe this file's layout.
        if meta.page_size != size {
            return Err(MetaFault::BadPageSize(meta.page_size));
        }
        Ok(meta)
    };
    let meta = match (read(0), read(1)) {
        (Ok(a), Ok(b)) => {
            if b.txid > a.txid {
                b
            } else {
                a
            }
        }
        (Ok(m), Err(_)) | (Err(_), Ok(m)) => m,
        (Err(first), Err(second)) => return Err(BoltError::NoValidMeta { first, second }),
    };
    check_layout(&meta, data.len())?;
    Ok(meta)
}

/// Checks what the checksum cannot: that the meta page points inside the file it came with.
fn check_layout(meta: &Meta, len: usize) -> Result<(), BoltError> {
    let bad = |reason| Err(BoltError::BadMeta { txid: meta.txid, reason });
    // Pages 0 and 1 are the meta pages; the root bucket's page comes after them.
    if meta.high_water < 3 {
        return bad("fewer than three pages in use");
    }
    if meta.root < 2 || meta.root >= meta.high_water {
        return bad("root page outside the pages in use");
    }
    if meta.freelist != NO_FREELIST && (meta.freelist < 2 || meta.freelist >= meta.high_water) {
        return bad("freelist page outside the pages in use");
    }
    let needed = u128::from(meta.high_water) * u128::from(meta.page_size);
    if needed > len as u128 {
        return Err(BoltError::Truncated { needed: u64::try_from(needed).unwrap_or(u64::MAX), len: len as u64 });
    }
    Ok(())
}
