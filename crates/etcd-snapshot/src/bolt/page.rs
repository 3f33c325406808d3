//! Branch and leaf pages: a 16-byte header (id, flags, element count, overflow page count),
//! then `count` 16-byte elements, each locating its key (and a leaf's value) by an offset from
//! the element itself. Every read is bounds-checked against the page's bytes.

use super::error::{BoltError, PageAt};
use super::le::{u16_at, u32_at, u64_at};

pub(crate) const PAGE_HEADER_SIZE: usize = 16;
const ELEMENT_SIZE: usize = 16;
pub(crate) const BRANCH_FLAG: u16 = 0x01;
const LEAF_FLAG: u16 = 0x02;
/// A leaf element's flag for "the value is a nested bucket".
const BUCKET_LEAF_FLAG: u32 = 0x01;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub id: u64,
    pub flags: u16,
    pub count: u16,
    /// Pages that follow this one and belong to it (for nodes larger than a page).
    pub overflow: u32,
}

/// The header at the start of `bytes`, if they are long enough to hold one.
pub(crate) fn header(bytes: &[u8]) -> Option<Header> {
    Some(Header {
        id: u64_at(bytes, 0)?,
        flags: u16_at(bytes, 8)?,
        count: u16_at(bytes, 10)?,
        overflow: u32_at(bytes, 12)?,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Branch,
    Leaf,
}

/// A leaf element: a key with either a plain value or a nested bucket's header (and inline page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeafElement<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub is_bucket: bool,
}

/// A branch or leaf page, whose `bytes` span the page and its overflow pages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Page<'a> {
    pub at: PageAt,
    pub kind: Kind,
    pub count: usize,
    bytes: &'a [u8],
}

impl<'a> Page<'a> {
    /// Reads the header of the branch or leaf page held in `bytes`.
    pub fn parse(bytes: &'a [u8], at: PageAt) -> Result<Page<'a>, BoltError> {
        let h = header(bytes).ok_or(BoltError::ShortPage { at, len: bytes.len() })?;
        let kind = match h.flags {
            BRANCH_FLAG => Kind::Branch,
            LEAF_FLAG => Kind::Leaf,
            flags => return Err(BoltError::UnexpectedPageType { at, flags }),
        };
        let count = usize::from(h.count);
        if PAGE_HEADER_SIZE + count * ELEMENT_SIZE > bytes.len() {
            return Err(BoltError::TooManyElements { at, count });
        }
        if kind == Kind::Branch && count == 0 {
            return Err(BoltError::EmptyBranch { at });
        }
        Ok(Page { at, kind, count, bytes })
    }

    /// A branch element: the first key under a child page, and that page's id.
    pub fn branch(&self, index: usize) -> Result<(&'a [u8], u64), BoltError> {
        let (el, pos, ksize) = self.element(index)?;
        let child = u64_at(self.bytes, el + 8).ok_or_else(|| self.out_of_bounds(index))?;
        let key = self.slice(el, pos, 0, ksize).ok_or_else(|| self.out_of_bounds(index))?;
        Ok((key, child))
    }

    pub fn leaf(&self, index: usize) -> Result<LeafElement<'a>, BoltError> {
        let (el, pos, ksize) = self.element(index)?;
        let oob = || self.out_of_bounds(index);
        let flags = u32_at(self.bytes, el).ok_or_else(oob)?;
        let vsize = u32_at(self.bytes, el + 12).ok_or_else(oob)?;
        let key = self.slice(el, pos, 0, ksize).ok_or_else(oob)?;
        let value = self.slice(el, pos, ksize, vsize).ok_or_else(oob)?;
        Ok(LeafElement { key, value, is_bucket: flags & BUCKET_LEAF_FLAG != 0 })
    }

    /// Element `index`'s offset in the page, and its key's position (relative to the element)
    /// and size. Branch and leaf elements keep these at different offsets.
    fn element(&self, index: usize) -> Result<(usize, u32, u32), BoltError> {
        let el = PAGE_HEADER_SIZE + index * ELEMENT_SIZE;
        let pos_at = if self.kind == Kind::Leaf { el + 4 } else { el };
        let pos = u32_at(self.bytes, pos_at).ok_or_else(|| self.out_of_bounds(index))?;
        let ksize = u32_at(self.bytes, pos_at + 4).ok_or_else(|| self.out_of_bounds(index))?;
        Ok((el, pos, ksize))
    }

    /// `len` bytes starting `pos + skip` bytes after the element at `el`.
    fn slice(&self, el: usize, pos: u32, skip: u32, len: u32) -> Option<&'a [u8]> {
        let start = el.checked_add(usize::try_from(pos).ok()?)?.checked_add(usize::try_from(skip).ok()?)?;
        self.bytes.get(start..start.checked_add(usize::try_from(len).ok()?)?)
    }

    fn out_of_bounds(&self, index: usize) -> BoltError {
        BoltError::ElementOutOfBounds { at: self.at, index }
    }
}
