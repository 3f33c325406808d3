//! A small read-only reader of bbolt database files (etcd's backend).
//!
//! The whole file is held in memory as a byte slice; nothing is memory-mapped and there is no
//! unsafe code. A damaged or truncated file gives a [`BoltError`], never a panic, and a
//! traversal visits each page at most once, so a corrupt tree cannot make it loop.

mod bucket;
mod error;
mod le;
mod meta;
mod page;

pub use bucket::{Bucket, Entries, Entry, Value};
pub use error::{BoltError, MetaFault, PageAt};

use meta::Meta;
use page::Page;

/// An open bbolt file: its bytes and the meta page of its last committed transaction.
#[derive(Debug, Clone, Copy)]
pub struct Db<'a> {
    data: &'a [u8],
    meta: Meta,
}

impl<'a> Db<'a> {
    /// Reads the meta pages of the bbolt file in `data` and picks the current one.
    pub fn open(data: &'a [u8]) -> Result<Db<'a>, BoltError> {
        Ok(Db { data, meta: meta::current_meta(data)? })
    }

    pub fn page_size(&self) -> usize {
        self.meta.page_size as usize
    }

    /// The id of the last committed write transaction.
    pub fn txid(&self) -> u64 {
        self.meta.txid
    }

    /// The root bucket, whose entries are the top-level buckets.
    pub fn root(&self) -> Bucket<'a> {
        Bucket::at_page(*self, self.meta.root)
    }

    /// The top-level bucket `name`, if there is one.
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Bucket<'a>>, BoltError> {
        self.root().bucket(name)
    }

    /// Page `id` with its overflow pages, as a branch or leaf page.
    fn page(&self, id: u64) -> Result<Page<'a>, BoltError> {
        let at = PageAt::Id(id);
        let high_water = self.meta.high_water;
        let out_of_range = || BoltError::PageOutOfRange { at, high_water };
        let first = self.pages(id, 1).ok_or_else(out_of_range)?;
        let header = page::header(first).ok_or_else(out_of_range)?;
        if header.id != id {
            return Err(BoltError::PageIdMismatch { at, found: header.id });
        }
        let bytes = self.pages(id, u64::from(header.overflow) + 1).ok_or_else(out_of_range)?;
        Page::parse(bytes, at)
    }

    /// The bytes of `count` pages from page `id` on, if they all lie below the high-water mark
    /// (which the meta page's check guarantees lie inside the file).
    fn pages(&self, id: u64, count: u64) -> Option<&'a [u8]> {
        let end = id.checked_add(count).filter(|&end| end <= self.meta.high_water)?;
        let size = u64::from(self.meta.page_size);
        let byte = |page: u64| usize::try_from(page.checked_mul(size)?).ok();
        self.data.get(byte(id)?..byte(end)?)
    }
}

#[cfg(test)]
mod testdb;
#[cfg(test)]
mod tests;
