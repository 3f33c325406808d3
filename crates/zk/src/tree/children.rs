//! Which nodes are whose children: one set of every path but the root's, ordered by the parent's
//! path and then the name, so that a node's children are neighbours, in name order.
//!
//! One set for the whole tree, not one per node: a write after a snapshot's copy then copies a
//! few B-tree nodes of it, whatever the parent's number of children, and a node with few
//! children costs no B-tree node of its own (an `imbl` node holds 64 entries).

use std::cmp::Ordering;

use imbl::OrdSet;

/// A node's path, compared by (parent's path, name); the root's children have "" for a parent.
/// Where the name starts is kept, not searched for at each comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ChildPath {
    path: String,
    /// The index of the last `/`.
    slash: usize,
}

impl ChildPath {
    fn new(path: String) -> ChildPath {
        let slash = path.rfind('/').expect("a child's path has a slash");
        ChildPath { path, slash }
    }

    fn parent_and_name(&self) -> (&str, &str) {
        (&self.path[..self.slash], &self.path[self.slash + 1..])
    }
}

impl Ord for ChildPath {
    fn cmp(&self, other: &ChildPath) -> Ordering {
        self.parent_and_name().cmp(&other.parent_and_name())
    }
}

impl PartialOrd for ChildPath {
    fn partial_cmp(&self, other: &ChildPath) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Every node but the root, by parent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Children(OrdSet<ChildPath>);

impl Children {
    /// False if `path` was there already.
    pub fn insert(&mut self, path: &str) -> bool {
        self.0.insert(ChildPath::new(path.to_string())).is_none()
    }

    /// False if `path` was not there.
    pub fn remove(&mut self, path: &str) -> bool {
        self.0.remove(&ChildPath::new(path.to_string())).is_some()
    }

    /// The names of the children of the node at `path`, in name order.
    pub fn names<'a>(&'a self, path: &str) -> impl Iterator<Item = &'a str> {
        let parent = if path == "/" { String::new() } else { path.to_string() };
        // (parent, "") comes before every child's (parent, name): names are not empty.
        let first = ChildPath::new(format!("{parent}/"));
        self.0
            .range(first..)
            .map(ChildPath::parent_and_name)
            .take_while(move |&(p, _)| p == parent)
            .map(|(_, name)| name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_by_parent_in_name_order() {
        let mut children = Children::default();
        // "/a!" sorts between "/a" and "/a/b" as a path, but is the root's child.
        for path in ["/a/c", "/a", "/b", "/a!", "/a/b", "/a/b/x", "/zookeeper"] {
            assert!(children.insert(path));
        }
        assert!(!children.insert("/a/b"));
        let names = |children: &Children, path| children.names(path).map(str::to_string).collect::<Vec<_>>();
        assert_eq!(names(&children, "/"), ["a", "a!", "b", "zookeeper"]);
        assert_eq!(names(&children, "/a"), ["b", "c"]);
        assert_eq!(names(&children, "/a/b"), ["x"]);
        assert!(names(&children, "/a/c").is_empty());
        assert!(names(&children, "/none").is_empty());
        assert!(children.remove("/a/b/x") && !children.remove("/a/b/x"));
        assert!(names(&children, "/a/b").is_empty());
    }
}
