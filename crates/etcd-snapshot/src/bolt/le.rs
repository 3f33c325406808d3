//! Bounds-checked little-endian reads. bbolt writes its structs in the machine's byte order:
//! little-endian on amd64, arm64 and ppc64le. Files from big-endian s390x are not supported.

/// `N` bytes at `off`, or `None` when they do not all lie inside `buf`.
fn array<const N: usize>(buf: &[u8], off: usize) -> Option<[u8; N]> {
    buf.get(off..off.checked_add(N)?)?.try_into().ok()
}

pub(crate) fn u16_at(buf: &[u8], off: usize) -> Option<u16> {
    array(buf, off).map(u16::from_le_bytes)
}

pub(crate) fn u32_at(buf: &[u8], off: usize) -> Option<u32> {
    array(buf, off).map(u32::from_le_bytes)
}

pub(crate) fn u64_at(buf: &[u8], off: usize) -> Option<u64> {
    array(buf, off).map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_inside_and_refuses_outside() {
        let buf = [1, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(u16_at(&buf, 0), Some(1));
        assert_eq!(u32_at(&buf, 2), Some(2));
        assert_eq!(u64_at(&buf, 6), Some(3));
        assert_eq!(u64_at(&buf, 7), None);
        assert_eq!(u16_at(&buf, usize::MAX), None);
    }
}
