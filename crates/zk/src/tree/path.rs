//! Znode paths: ZooKeeper's validation (`PathUtils.validatePath`) and the parent of a path.
//!
//! ZooKeeper checks characters as Java sees them, in UTF-16: every character outside the Basic
//! Multilingual Plane is a surrogate pair there and so invalid, as are controls, the private use
//! area and U+FFF0..U+FFFF (which includes U+FFFD, what undecodable bytes became on the wire).

/// Whether a path is one ZooKeeper accepts: `/`, or `/`-separated non-empty names, none of them `.`
/// or `..`, no trailing `/`, and no invalid character.
pub fn is_valid(path: &str) -> bool {
    let chars: Vec<char> = path.chars().collect();
    if chars.first() != Some(&'/') {
        return false;
    }
    if chars.len() == 1 {
        return true;
    }
    if chars.last() == Some(&'/') {
        return false;
    }
    chars.split(|&c| c == '/').skip(1).all(is_valid_name)
}

fn is_valid_name(name: &[char]) -> bool {
    !name.is_empty() && name != ['.'] && name != ['.', '.'] && name.iter().all(|&c| !is_invalid_char(c))
}

fn is_invalid_char(c: char) -> bool {
    matches!(c as u32, 0x0000..=0x001f | 0x007f..=0x009f | 0xd800..=0xf8ff | 0xfff0..=0xffff | 0x10000..)
}

/// The parent's path and the node's name, for a path that has a `/`: what ZooKeeper splits at the
/// last `/`. The parent of a top-level node is the root.
pub fn split(path: &str) -> Option<(&str, &str)> {
    let slash = path.rfind('/')?;
    let parent = if slash == 0 { "/" } else { &path[..slash] };
    Some((parent, &path[slash + 1..]))
}

/// ZooKeeper's own nodes, which no client may delete.
pub fn is_special(path: &str) -> bool {
    matches!(path, "/" | "/zookeeper" | "/zookeeper/quota" | "/zookeeper/config")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_paths() {
        for path in ["/", "/a", "/a/b", "/a.b", "/...", "/a/.b", "/a/b..", "/é", "/a b", "/\u{ffef}"] {
            assert!(is_valid(path), "{path:?} should be valid");
        }
    }

    #[test]
    fn invalid_paths() {
        for path in [
            "",
            "a",
            "a/b",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/..",
            "/a/./b",
            "/a/../b",
            "/a/.",
            "/a\0b",
            "/a\u{1}",
            "/a\u{7f}",
            "/a\u{9f}",
            "/\u{e000}",
            "/\u{fffd}",
            "/\u{ffff}",
            "/\u{1f600}",
        ] {
            assert!(!is_valid(path), "{path:?} should be invalid");
        }
    }

    #[test]
    fn split_at_the_last_slash() {
        assert_eq!(split("/a"), Some(("/", "a")));
        assert_eq!(split("/a/b/c"), Some(("/a/b", "c")));
        assert_eq!(split("/a/"), Some(("/a", "")));
        assert_eq!(split("/"), Some(("/", "")));
        assert_eq!(split("a"), None);
    }
}
