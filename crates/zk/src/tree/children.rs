//! Which nodes are whose children: one set of every path but the root's, ordered by the parent's
//! path and then the name, so that a node's children are neighbours, in name order.
//!
//! One set for the whole tree, not one per node: a write after a snapshot's copy then copies a
//! few B-tree nodes of it, whatever the parent's number of children, and a node with few
//! children costs no B-tree node of its own (an `imbl` node holds 64 entries).

use imbl::OrdSet;

/// A child's path with its last `/` made a NUL. Paths hold no NUL, which sorts below every
/// other character, so the keys' plain string order is (parent's path, name) order, compared in
/// one pass. The root's children have "" for a parent.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ChildKey(String);

impl ChildKey {
    fn new(path: &str) -> ChildKey {
        assert!(!path.contains('\0'), "a path holds no NUL: {path:?}");
        let (parent, name) = path.rsplit_once('/').expect("a child's path has a slash");
        ChildKey::of(parent, name)
    }

    fn of(parent: &str, name: &str) -> ChildKey {
        let mut key = String::with_capacity(parent.len() + 1 + name.len());
        key.push_str(parent);
        key.push('\0');
        key.push_str(name);
        ChildKey(key)
    }
}

/// Every node but the root, by parent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Children(OrdSet<ChildKey>);

impl Children {
    /// False if `path` was there already.
    pub fn insert(&mut self, path: &str) -> bool {
        self.0.insert(ChildKey::new(path)).is_none()
    }

    /// False if `path` was not there.
    pub fn remove(&mut self, path: &str) -> bool {
        self.0.remove(&ChildKey::new(path)).is_some()
    }

    /// The names of the children of the node at `path`, in name order.
    pub fn names<'a>(&'a self, path: &str) -> impl Iterator<Item = &'a str> {
        // The key of (parent, ""), which no child has, comes before all of the parent's.
        let first = ChildKey::of(if path == "/" { "" } else { path }, "");
        let prefix_len = first.0.len();
        self.0
            .range(first.clone()..)
            .take_while(move |key| key.0.starts_with(&first.0))
            .map(move |key| &key.0[prefix_len..])
    }

    /// Number of descendants of the node at `path` (not the root), at any depth: its
    /// children's keys begin with `path` and a NUL, and every deeper descendant's with `path`
    /// and a slash, so each is one run of neighbours.
    pub fn descendant_count(&self, path: &str) -> usize {
        assert_ne!(path, "/", "the root's descendants are every node but it");
        [format!("{path}\0"), format!("{path}/")]
            .into_iter()
            .map(|prefix| self.0.range(ChildKey(prefix.clone())..).take_while(|key| key.0.starts_with(&prefix)).count())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_as_parent_then_name() {
        let paths = ["/a", "/a b", "/a!", "/a/b", "/a/ b", "/ab", "/a/b/c", "/b", "/\u{e9}", "/a/\u{e9}", "/a!/b"];
        let mut by_key = paths.to_vec();
        by_key.sort_by_key(|p| ChildKey::new(p));
        let mut by_pair = paths.to_vec();
        by_pair.sort_by_key(|p| p.rsplit_once('/').unwrap());
        assert_eq!(by_key, by_pair);
    }

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
        assert_eq!([children.descendant_count("/a"), children.descendant_count("/a/b")], [3, 1]);
        assert_eq!([children.descendant_count("/a!"), children.descendant_count("/none")], [0, 0]);
        assert!(children.remove("/a/b/x") && !children.remove("/a/b/x"));
        assert!(names(&children, "/a/b").is_empty());
    }
}
