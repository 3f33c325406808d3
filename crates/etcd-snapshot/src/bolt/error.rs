use std::fmt;

/// Where a page lives: a page of the file, or a bucket's page stored inline in its parent's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageAt {
    Id(u64),
    Inline,
}

impl fmt::Display for PageAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageAt::Id(id) => write!(f, "page {id}"),
            PageAt::Inline => f.write_str("an inline bucket page"),
        }
    }
}

/// Why a meta page was not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MetaFault {
    #[error("the file ends before it")]
    Truncated,
    #[error("bad magic {0:#010x}")]
    BadMagic(u32),
    #[error("unsupported version {0}")]
    BadVersion(u32),
    #[error("checksum mismatch")]
    BadChecksum,
    #[error("unusable page size {0}")]
    BadPageSize(u32),
    #[error("no valid meta page at any page size")]
    NotFound,
}

/// A bbolt file that cannot be read. Every malformed input ends here, never in a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoltError {
    #[error("not a usable bbolt file: first meta page: {first}; second meta page: {second}")]
    NoValidMeta { first: MetaFault, second: MetaFault },
    #[error("meta page (txid {txid}) is inconsistent: {reason}")]
    BadMeta { txid: u64, reason: &'static str },
    #[error("file is truncated: its meta page says it holds {needed} bytes of pages, but it has {len}")]
    Truncated { needed: u64, len: u64 },
    #[error("{at} is past the last page {high_water} the meta page allows")]
    PageOutOfRange { at: PageAt, high_water: u64 },
    #[error("{at} says it is page {found}")]
    PageIdMismatch { at: PageAt, found: u64 },
    #[error("{at} has flags {flags:#06x} where a branch or leaf page was expected")]
    UnexpectedPageType { at: PageAt, flags: u16 },
    #[error("{at} is {len} bytes, shorter than a page header")]
    ShortPage { at: PageAt, len: usize },
    #[error("{at} claims {count} elements, more than fit in it")]
    TooManyElements { at: PageAt, count: usize },
    #[error("{at}: element {index} lies outside the page")]
    ElementOutOfBounds { at: PageAt, index: usize },
    #[error("{at} is a branch page without elements")]
    EmptyBranch { at: PageAt },
    #[error("{at} is reached twice in one bucket: the tree has a cycle or shared pages")]
    PageReachedTwice { at: PageAt },
    #[error("{at}: keys are not in ascending order")]
    KeysOutOfOrder { at: PageAt },
    #[error("{at}: a bucket value of {len} bytes is shorter than a bucket header")]
    ShortBucketValue { at: PageAt, len: usize },
    #[error("entry {name:?} is a plain value, not a bucket")]
    NotABucket { name: String },
}
