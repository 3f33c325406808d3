//! Buckets: B+trees of pages whose leaves hold sorted keys, each with a value or a nested
//! bucket. A small bucket is stored inline: its single leaf page follows its header in the
//! parent's value instead of having a page of its own.

use std::collections::HashSet;

use super::error::{BoltError, PageAt};
use super::le::u64_at;
use super::page::{Kind, Page, BRANCH_FLAG};
use super::Db;

/// A nested bucket's value starts with its root page id and a sequence number.
const BUCKET_HEADER_SIZE: usize = 16;

#[derive(Debug, Clone, Copy)]
enum Root<'a> {
    Page(u64),
    Inline(&'a [u8]),
}

/// A bucket of a [`Db`]; cheap to copy.
#[derive(Debug, Clone, Copy)]
pub struct Bucket<'a> {
    db: Db<'a>,
    root: Root<'a>,
}

/// One key of a bucket with what it holds.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub key: &'a [u8],
    pub value: Value<'a>,
}

#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Data(&'a [u8]),
    Bucket(Bucket<'a>),
}

impl<'a> Bucket<'a> {
    pub(crate) fn at_page(db: Db<'a>, id: u64) -> Bucket<'a> {
        Bucket { db, root: Root::Page(id) }
    }

    /// Opens a nested bucket from its value in a leaf of the page `at`.
    fn from_value(db: Db<'a>, value: &'a [u8], at: PageAt) -> Result<Bucket<'a>, BoltError> {
        let root = u64_at(value, 0).filter(|_| value.len() >= BUCKET_HEADER_SIZE);
        match root {
            None => Err(BoltError::ShortBucketValue { at, len: value.len() }),
            Some(0) => Ok(Bucket { db, root: Root::Inline(&value[BUCKET_HEADER_SIZE..]) }),
            Some(id) => Ok(Bucket::at_page(db, id)),
        }
    }

    /// Every entry, in ascending key order.
    pub fn entries(&self) -> Entries<'a> {
        Entries { db: self.db, root: Some(self.root), stack: Vec::new(), visited: HashSet::new(), last_key: None }
    }

    /// What `key` holds, if it is present.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value<'a>>, BoltError> {
        for entry in self.entries() {
            let entry = entry?;
            match entry.key.cmp(key) {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Equal => return Ok(Some(entry.value)),
                std::cmp::Ordering::Greater => break,
            }
        }
        Ok(None)
    }

    /// The nested bucket `name`, if present; an error if `name` holds a plain value.
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Bucket<'a>>, BoltError> {
        match self.get(name)? {
            None => Ok(None),
            Some(Value::Bucket(bucket)) => Ok(Some(bucket)),
            Some(Value::Data(_)) => Err(BoltError::NotABucket { name: String::from_utf8_lossy(name).into_owned() }),
        }
    }
}

/// An in-order walk over a bucket's tree, with an explicit stack instead of recursion. It
/// stops after the first error.
pub struct Entries<'a> {
    db: Db<'a>,
    /// The bucket's root, until the first call to `next` loads it.
    root: Option<Root<'a>>,
    /// The pages from the root down to the current leaf, each with its next element's index.
    stack: Vec<(Page<'a>, usize)>,
    /// Pages already entered: a page reached twice means a corrupt tree, which could loop.
    visited: HashSet<u64>,
    last_key: Option<&'a [u8]>,
}

impl<'a> Entries<'a> {
    fn enter(&mut self, root: Root<'a>) -> Result<(), BoltError> {
        let page = match root {
            Root::Page(id) => self.page(id)?,
            Root::Inline(bytes) => {
                let page = Page::parse(bytes, PageAt::Inline)?;
                // bbolt inlines only buckets that fit in one leaf; a branch here would send the
                // walk to pages the inline value does not own.
                if page.kind != Kind::Leaf {
                    return Err(BoltError::UnexpectedPageType { at: PageAt::Inline, flags: BRANCH_FLAG });
                }
                page
            }
        };
        self.stack.push((page, 0));
        Ok(())
    }

    fn page(&mut self, id: u64) -> Result<Page<'a>, BoltError> {
        if !self.visited.insert(id) {
            return Err(BoltError::PageReachedTwice { at: PageAt::Id(id) });
        }
        self.db.page(id)
    }

    /// Takes one step: descends into a branch's child, or yields a leaf's entry.
    fn step(&mut self, page: Page<'a>, index: usize) -> Result<Option<Entry<'a>>, BoltError> {
        match page.kind {
            Kind::Branch => {
                let (_, child) = page.branch(index)?;
                self.enter(Root::Page(child))?;
                Ok(None)
            }
            Kind::Leaf => {
                let leaf = page.leaf(index)?;
                if self.last_key.is_some_and(|last| last >= leaf.key) {
                    return Err(BoltError::KeysOutOfOrder { at: page.at });
                }
                self.last_key = Some(leaf.key);
                let value = if leaf.is_bucket {
                    Value::Bucket(Bucket::from_value(self.db, leaf.value, page.at)?)
                } else {
                    Value::Data(leaf.value)
                };
                Ok(Some(Entry { key: leaf.key, value }))
            }
        }
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, BoltError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(root) = self.root.take() {
            if let Err(e) = self.enter(root) {
                return Some(Err(e));
            }
        }
        loop {
            let (page, next) = self.stack.last_mut()?;
            let (page, index) = (*page, *next);
            if index >= page.count {
                self.stack.pop();
                continue;
            }
            *next += 1;
            match self.step(page, index) {
                Ok(None) => continue,
                Ok(Some(entry)) => return Some(Ok(entry)),
                Err(e) => {
                    self.stack.clear();
                    return Some(Err(e));
                }
            }
        }
    }
}
