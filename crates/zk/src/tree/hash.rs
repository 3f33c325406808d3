//! A digest of the whole state, for the simulator to compare replicas: FNV-1a (64-bit) over the
//! snapshot body, which lists everything in a fixed order. Stable across runs and builds; it
//! changes only with the snapshot format.

use super::state::ZkState;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

impl ZkState {
    /// Equal for replicas in equal states.
    pub fn hash(&self) -> u64 {
        fnv1a(&self.encode_body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn a_fresh_trees_hash_is_stable() {
        assert_eq!(ZkState::new().hash(), ZkState::new().hash());
    }
}
