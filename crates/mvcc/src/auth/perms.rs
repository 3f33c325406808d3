//! A user's merged key permissions (etcd's `unifiedRangePermissions`), and etcd's two questions
//! of them: does some permission hold a key, and do the permissions together cover a range.

use std::cmp::Ordering;

use tally_proto::authpb::{permission::Type as PermType, Permission, Role};

/// One end of a key interval: a key, or past every key (etcd's empty `BytesAffineComparable`).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Bound {
    Key(Vec<u8>),
    Infinity,
}

impl Ord for Bound {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Bound::Infinity, Bound::Infinity) => Ordering::Equal,
            (Bound::Infinity, _) => Ordering::Greater,
            (_, Bound::Infinity) => Ordering::Less,
            (Bound::Key(a), Bound::Key(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for Bound {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The keys in `[begin, end)`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Interval {
    begin: Bound,
    end: Bound,
}

impl Interval {
    /// The key itself: `[key, key + "\0")`.
    fn point(key: &[u8]) -> Interval {
        let mut next = key.to_vec();
        next.push(0);
        Interval { begin: Bound::Key(key.to_vec()), end: Bound::Key(next) }
    }

    /// A request's range; `"\0"` as the end means every key from `key` on.
    fn range(key: &[u8], range_end: &[u8]) -> Interval {
        let end = if range_end == [0] { Bound::Infinity } else { Bound::Key(range_end.to_vec()) };
        Interval { begin: Bound::Key(key.to_vec()), end }
    }

    /// What a granted permission covers (etcd's `getMergedPerms`).
    fn granted(perm: &Permission) -> Interval {
        match perm.range_end.as_slice() {
            [] => Interval::point(&perm.key),
            end => Interval::range(&perm.key, end),
        }
    }

    fn overlaps(&self, other: &Interval) -> bool {
        self.begin < other.end && self.end > other.begin
    }

    /// etcd's `Interval.Compare(granted) == 0`, which its coverage check visits by: overlap,
    /// except that an empty range touches a permission that holds its key.
    fn touches(&self, granted: &Interval) -> bool {
        (self.begin >= granted.begin || self.end > granted.begin) && self.begin < granted.end
    }
}

/// Permissions of one kind, ordered by where they begin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Intervals(Vec<Interval>);

impl Intervals {
    /// etcd's `IntervalTree.Intersects` with a point.
    fn holds(&self, key: &[u8]) -> bool {
        let point = Interval::point(key);
        self.0.iter().any(|i| i.overlaps(&point))
    }

    /// etcd's `IntervalTree.Contains`: the permissions that overlap `want`, taken in order, leave
    /// no gap and reach from its beginning to its end.
    fn cover(&self, want: &Interval) -> bool {
        let mut overlapping = self.0.iter().filter(|i| want.touches(i));
        let Some(first) = overlapping.next() else { return false };
        let mut reach = &first.end;
        for i in overlapping {
            if *reach < i.begin {
                return false;
            }
            reach = reach.max(&i.end);
        }
        *reach >= want.end && first.begin <= want.begin
    }
}

/// What one user may read and write, merged from all of its roles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct UserPerms {
    read: Intervals,
    write: Intervals,
}

/// Read or write, as a request needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reading keys.
    Read,
    /// Writing or deleting keys.
    Write,
}

impl UserPerms {
    pub(crate) fn merge<'a>(roles: impl Iterator<Item = &'a Role>) -> UserPerms {
        let mut perms = UserPerms::default();
        for perm in roles.flat_map(|r| &r.key_permission) {
            let interval = Interval::granted(perm);
            match PermType::try_from(perm.perm_type) {
                Ok(PermType::Read) => perms.read.0.push(interval),
                Ok(PermType::Write) => perms.write.0.push(interval),
                Ok(PermType::Readwrite) => {
                    perms.read.0.push(interval.clone());
                    perms.write.0.push(interval);
                }
                Err(_) => {}
            }
        }
        for kind in [&mut perms.read, &mut perms.write] {
            kind.0.sort_by(|a, b| a.begin.cmp(&b.begin).then_with(|| a.end.cmp(&b.end)));
        }
        perms
    }

    /// etcd's `isRangeOpPermitted`: a single key (empty `range_end`) needs one permission that
    /// holds it; a range needs permissions that cover all of it.
    pub(crate) fn permits(&self, access: Access, key: &[u8], range_end: &[u8]) -> bool {
        let kind = match access {
            Access::Read => &self.read,
            Access::Write => &self.write,
        };
        if range_end.is_empty() {
            kind.holds(key)
        } else {
            kind.cover(&Interval::range(key, range_end))
        }
    }
}

/// etcd's `isValidPermissionRange`: a key, and an end after it (or none, or `"\0"`).
pub(crate) fn valid_permission_range(key: &[u8], range_end: &[u8]) -> bool {
    !key.is_empty() && (range_end.is_empty() || range_end == [0] || key < range_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(perms: &[(PermType, &str, &str)]) -> Role {
        Role {
            name: b"r".to_vec(),
            key_permission: perms
                .iter()
                .map(|&(t, k, e)| Permission { perm_type: t as i32, key: k.into(), range_end: e.into() })
                .collect(),
        }
    }

    #[test]
    fn a_single_key_needs_a_permission_that_holds_it() {
        let p = UserPerms::merge([role(&[(PermType::Read, "a", ""), (PermType::Write, "b", "d")])].iter());
        assert!(p.permits(Access::Read, b"a", b""));
        assert!(!p.permits(Access::Read, b"a\0", b""));
        assert!(!p.permits(Access::Write, b"a", b""));
        assert!(p.permits(Access::Write, b"c", b""));
        assert!(!p.permits(Access::Write, b"d", b""));
    }

    #[test]
    fn a_range_needs_permissions_that_cover_it_without_gaps() {
        let p = UserPerms::merge(
            [role(&[(PermType::Readwrite, "a", "c"), (PermType::Read, "c", "e"), (PermType::Read, "x", "\0")])].iter(),
        );
        assert!(p.permits(Access::Read, b"a", b"e"));
        assert!(p.permits(Access::Read, b"b", b"d"));
        assert!(!p.permits(Access::Read, b"a", b"f"), "e..f is not granted");
        assert!(!p.permits(Access::Write, b"a", b"d"));
        assert!(p.permits(Access::Read, b"y", b"\0"), "from y on is inside from x on");
        assert!(p.permits(Access::Read, b"x", b"zzz"));
        assert!(!p.permits(Access::Read, b"w", b"\0"));
        // The point permission on "a" alone does not cover the range a..b.
        let q = UserPerms::merge([role(&[(PermType::Read, "a", "")])].iter());
        assert!(!q.permits(Access::Read, b"a", b"b"));
        assert!(q.permits(Access::Read, b"a", b"a\0"));
        // An empty range is covered by any permission that holds its key (etcd's visit).
        assert!(q.permits(Access::Read, b"a", b"a"));
        assert!(!q.permits(Access::Read, b"b", b"b"));
        assert!(p.permits(Access::Read, b"b", b"b"));
    }

    #[test]
    fn permission_ranges_are_validated_as_etcd_does() {
        assert!(valid_permission_range(b"a", b""));
        assert!(valid_permission_range(b"a", b"b"));
        assert!(valid_permission_range(b"a", b"\0"));
        assert!(!valid_permission_range(b"", b""));
        assert!(!valid_permission_range(b"b", b"a"));
        assert!(!valid_permission_range(b"a", b"a"));
    }
}
