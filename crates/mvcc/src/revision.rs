//! Revisions: a main revision (one per write transaction) and a sub-revision (the n-th change within it).

/// A point in the store's history. Ordered by `main`, then `sub`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision {
    /// The main revision: bumped once per write transaction.
    pub main: i64,
    /// The index of the change within its write transaction.
    pub sub: i64,
}

impl Revision {
    /// A revision from its parts.
    pub fn new(main: i64, sub: i64) -> Revision {
        Revision { main, sub }
    }
}

/// An empty store's revision (etcd's first write gets revision 2).
pub const INITIAL_REVISION: i64 = 1;

/// The compacted revision of a store that was never compacted (etcd's `compactMainRev` starts at -1).
pub const NEVER_COMPACTED: i64 = -1;
