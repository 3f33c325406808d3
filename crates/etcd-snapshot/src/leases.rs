//! etcd's `lease` bucket: 8-byte big-endian lease id -> `leasepb.Lease`.

use prost::Message;

use crate::buckets::Pairs;
use crate::error::{hex, SnapshotError};
use crate::records::Lease;

pub(crate) fn read_leases(pairs: &Pairs) -> Result<Vec<Lease>, SnapshotError> {
    pairs.iter().map(|&(key, value)| read_lease(key, value)).collect()
}

fn read_lease(key: &[u8], value: &[u8]) -> Result<Lease, SnapshotError> {
    let bad = |reason: String| SnapshotError::BadLease { key: hex(key), reason };
    let id = i64::from_be_bytes(key.try_into().map_err(|_| bad(format!("key of {} bytes, not 8", key.len())))?);
    let lease = Lease::decode(value).map_err(|e| bad(format!("not a leasepb.Lease: {e}")))?;
    if lease.id != id {
        return Err(bad(format!("holds lease {:016x}", lease.id)));
    }
    Ok(lease)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_leases_and_checks_their_keys() {
        let lease = Lease { id: 0x390da23b48e0b307, ttl: 60, remaining_ttl: 0 };
        let (key, value) = (lease.id.to_be_bytes(), lease.encode_to_vec());
        assert_eq!(read_leases(&vec![(&key[..], &value[..])]).unwrap(), vec![lease]);
        let other = 5i64.to_be_bytes();
        assert!(matches!(read_leases(&vec![(&other[..], &value[..])]), Err(SnapshotError::BadLease { .. })));
        assert!(matches!(read_leases(&vec![(&key[..4], &value[..])]), Err(SnapshotError::BadLease { .. })));
    }
}
