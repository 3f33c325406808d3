//! The watchers of key ranges, in an interval tree: a treap ordered by (start, end), each node
//! holding the watchers of one distinct range and the largest end in its subtree, so that the
//! ranges containing a key are found without visiting the subtrees that end before it.
//! Insert and remove cost O(log n) expected; finding the ranges that contain a key costs
//! O(log n) per range found.

use std::cmp::Ordering;

/// A range's exclusive end; `Unbounded` (etcd's range end "\0") sorts after every key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum End {
    Key(Vec<u8>),
    Unbounded,
}

impl End {
    /// Whether a range ending here reaches past `key`.
    fn above(&self, key: &[u8]) -> bool {
        match self {
            End::Key(end) => key < end.as_slice(),
            End::Unbounded => true,
        }
    }
}

type Link = Option<Box<Node>>;

struct Node {
    start: Vec<u8>,
    end: End,
    /// The watchers of exactly this range.
    ids: Vec<u64>,
    /// The largest end in this subtree.
    max_end: End,
    priority: u64,
    left: Link,
    right: Link,
}

impl Node {
    fn cmp_range(&self, start: &[u8], end: &End) -> Ordering {
        (self.start.as_slice(), &self.end).cmp(&(start, end))
    }

    /// Recomputes `max_end` after a child changed.
    fn fix(&mut self) {
        let mut max = &self.end;
        for child in [&self.left, &self.right].into_iter().flatten() {
            max = max.max(&child.max_end);
        }
        self.max_end = max.clone();
    }
}

#[derive(Default)]
pub struct Intervals {
    root: Link,
    /// Draws node priorities (xorshift64); a fixed seed keeps the tree's shape reproducible.
    seed: u64,
}

impl Intervals {
    pub fn insert(&mut self, start: &[u8], end: End, id: u64) {
        if let Some(node) = find_mut(&mut self.root, start, &end) {
            node.ids.push(id);
            return;
        }
        let priority = self.next_priority();
        let node = Box::new(Node {
            start: start.to_vec(),
            max_end: end.clone(),
            end,
            ids: vec![id],
            priority,
            left: None,
            right: None,
        });
        let (below, above) = split(self.root.take(), &|n| n.cmp_range(&node.start, &node.end) == Ordering::Less);
        self.root = merge(merge(below, Some(node)), above);
    }

    /// Removes watcher `id` of the range; false if it was not there.
    pub fn remove(&mut self, start: &[u8], end: &End, id: u64) -> bool {
        let Some(node) = find_mut(&mut self.root, start, end) else { return false };
        let Some(at) = node.ids.iter().position(|&i| i == id) else { return false };
        node.ids.swap_remove(at);
        if node.ids.is_empty() {
            let (below, rest) = split(self.root.take(), &|n| n.cmp_range(start, end) == Ordering::Less);
            let (_range, above) = split(rest, &|n| n.cmp_range(start, end) != Ordering::Greater);
            self.root = merge(below, above);
        }
        true
    }

    /// Adds to `out` the watchers of every range that contains `key`.
    pub fn containing(&self, key: &[u8], out: &mut Vec<u64>) {
        stab(&self.root, key, out);
    }

    fn next_priority(&mut self) -> u64 {
        if self.seed == 0 {
            self.seed = 0x9e37_79b9_7f4a_7c15;
        }
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        self.seed
    }
}

fn find_mut<'a>(mut link: &'a mut Link, start: &[u8], end: &End) -> Option<&'a mut Node> {
    while let Some(node) = link {
        match node.cmp_range(start, end) {
            Ordering::Equal => return Some(node),
            Ordering::Less => link = &mut node.right,
            Ordering::Greater => link = &mut node.left,
        }
    }
    None
}

/// Splits a treap into the nodes for which `goes_left` holds (a prefix of the in-order
/// sequence) and the rest.
fn split(link: Link, goes_left: &dyn Fn(&Node) -> bool) -> (Link, Link) {
    let Some(mut node) = link else { return (None, None) };
    if goes_left(&node) {
        let (mid, right) = split(node.right.take(), goes_left);
        node.right = mid;
        node.fix();
        (Some(node), right)
    } else {
        let (left, mid) = split(node.left.take(), goes_left);
        node.left = mid;
        node.fix();
        (left, Some(node))
    }
}

/// Joins two treaps, every node of `a` ordered before every node of `b`.
fn merge(a: Link, b: Link) -> Link {
    match (a, b) {
        (None, b) => b,
        (a, None) => a,
        (Some(mut a), Some(mut b)) => {
            if a.priority >= b.priority {
                a.right = merge(a.right.take(), Some(b));
                a.fix();
                Some(a)
            } else {
                b.left = merge(Some(a), b.left.take());
                b.fix();
                Some(b)
            }
        }
    }
}

fn stab(link: &Link, key: &[u8], out: &mut Vec<u64>) {
    let Some(node) = link else { return };
    if !node.max_end.above(key) {
        return;
    }
    stab(&node.left, key, out);
    if node.start.as_slice() <= key {
        if node.end.above(key) {
            out.extend_from_slice(&node.ids);
        }
        stab(&node.right, key, out);
    }
}

#[cfg(test)]
impl Intervals {
    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }
}
