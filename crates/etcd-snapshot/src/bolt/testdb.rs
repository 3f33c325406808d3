//! Builds small bbolt files by hand for the parser's tests, byte by byte as bbolt lays them out.

use super::meta::{fnv1a64, NO_FREELIST};

pub(crate) const PAGE_SIZE: usize = 1024;
const BRANCH: u16 = 0x01;
const LEAF: u16 = 0x02;
const META: u16 = 0x04;

/// A leaf entry: key, value, and whether the value is a nested bucket.
pub(crate) type LeafEntry<'a> = (&'a [u8], Vec<u8>, bool);

fn header(id: u64, flags: u16, count: usize, overflow: u32) -> Vec<u8> {
    let mut page = id.to_le_bytes().to_vec();
    page.extend(flags.to_le_bytes());
    page.extend(u16::try_from(count).expect("count fits a u16").to_le_bytes());
    page.extend(overflow.to_le_bytes());
    page
}

/// Pads `page` to whole pages and records how many extra pages it took in its header.
fn pad(mut page: Vec<u8>) -> Vec<u8> {
    let pages = page.len().div_ceil(PAGE_SIZE).max(1);
    page[12..16].copy_from_slice(&u32::try_from(pages - 1).expect("overflow fits").to_le_bytes());
    page.resize(pages * PAGE_SIZE, 0);
    page
}

/// A leaf page's bytes, unpadded (the form an inline bucket stores).
pub(crate) fn leaf_bytes(id: u64, entries: &[LeafEntry]) -> Vec<u8> {
    let mut page = header(id, LEAF, entries.len(), 0);
    let mut data = Vec::new();
    for (i, (key, value, is_bucket)) in entries.iter().enumerate() {
        let element = 16 + i * 16;
        let pos = 16 + entries.len() * 16 + data.len() - element;
        for field in [u32::from(*is_bucket), pos as u32, key.len() as u32, value.len() as u32] {
            page.extend(field.to_le_bytes());
        }
        data.extend_from_slice(key);
        data.extend_from_slice(value);
    }
    page.extend(data);
    page
}

pub(crate) fn leaf(id: u64, entries: &[LeafEntry]) -> Vec<u8> {
    pad(leaf_bytes(id, entries))
}

pub(crate) fn branch(id: u64, children: &[(&[u8], u64)]) -> Vec<u8> {
    let mut page = header(id, BRANCH, children.len(), 0);
    let mut keys = Vec::new();
    for (i, (key, child)) in children.iter().enumerate() {
        let pos = 16 + children.len() * 16 + keys.len() - (16 + i * 16);
        page.extend((pos as u32).to_le_bytes());
        page.extend((key.len() as u32).to_le_bytes());
        page.extend(child.to_le_bytes());
        keys.extend_from_slice(key);
    }
    page.extend(keys);
    pad(page)
}

/// A nested bucket's value that points at its root page.
pub(crate) fn bucket_at(root: u64) -> Vec<u8> {
    [root.to_le_bytes(), 0u64.to_le_bytes()].concat()
}

/// A nested bucket's value that holds its only leaf inline.
pub(crate) fn inline_bucket(entries: &[LeafEntry]) -> Vec<u8> {
    [bucket_at(0), leaf_bytes(0, entries)].concat()
}

pub(crate) fn meta(id: u64, root: u64, high_water: u64, txid: u64) -> Vec<u8> {
    let mut page = header(id, META, 0, 0);
    let mut meta = Vec::new();
    for field in [0xED0C_DAEDu32, 2, PAGE_SIZE as u32, 0] {
        meta.extend(field.to_le_bytes());
    }
    for field in [root, 0, NO_FREELIST, high_water, txid] {
        meta.extend(field.to_le_bytes());
    }
    meta.extend(fnv1a64(&meta).to_le_bytes());
    page.extend(meta);
    pad(page)
}

/// A file of two meta pages (txids 1 and 2, both naming `root`) followed by `pages`, which
/// must start at page 2.
pub(crate) fn file(root: u64, pages: &[Vec<u8>]) -> Vec<u8> {
    let high_water = 2 + pages.iter().map(|p| (p.len() / PAGE_SIZE) as u64).sum::<u64>();
    let mut file = [meta(0, root, high_water, 1), meta(1, root, high_water, 2)].concat();
    for page in pages {
        file.extend_from_slice(page);
    }
    file
}
