//! A state machine built from another store's history, revision for revision (an etcd
//! snapshot's, for a move to Tally), so that clients see the same revisions, versions and
//! leases after the move. It goes through the snapshot format, so the result passes the same
//! checks as any snapshot this member restores.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::apply::StateMachine;
use crate::key_index::{Entry, KeyHistory};
use crate::lease::Lease;
use crate::revision::{Revision, NEVER_COMPACTED};
use crate::snapshot::{write_snapshot, SnapshotError};
use crate::store::{Store, StoreConfig};

/// One change of one key, as the other store kept it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedChange {
    pub key: Vec<u8>,
    pub main: i64,
    pub sub: i64,
    pub create_revision: i64,
    pub version: i64,
    pub lease: i64,
    /// `None`: the key was deleted at this revision.
    pub value: Option<Vec<u8>>,
}

/// Everything a store holds: its changes (any order), leases (id, granted TTL), its current
/// revision and the revision it was compacted at (0 or less: never).
#[derive(Clone, Debug, Default)]
pub struct ImportedHistory {
    pub changes: Vec<ImportedChange>,
    pub leases: Vec<(i64, i64)>,
    pub current_revision: i64,
    pub compact_revision: i64,
}

impl StateMachine {
    /// A state machine holding `history`, as if it had applied log entries up to `applied_index`.
    pub fn import(history: ImportedHistory, applied_index: u64) -> Result<StateMachine, SnapshotError> {
        let mut keys: BTreeMap<Arc<[u8]>, KeyHistory> = BTreeMap::new();
        for c in history.changes {
            if c.key.is_empty() {
                return Err(SnapshotError::Corrupt("empty key"));
            }
            let entry = match c.value {
                Some(value) => Entry {
                    rev: Revision::new(c.main, c.sub),
                    create: c.create_revision,
                    version: c.version,
                    lease: c.lease,
                    value: Some(value.into_boxed_slice()),
                },
                None => Entry { rev: Revision::new(c.main, c.sub), create: 0, version: 0, lease: 0, value: None },
            };
            keys.entry(Arc::from(c.key)).or_insert_with(|| KeyHistory { entries: Vec::new() }).entries.push(entry);
        }
        for h in keys.values_mut() {
            h.entries.sort_by_key(|e| e.rev);
        }
        let mut store = Store::new(StoreConfig::default());
        store.current_rev = history.current_revision.max(1);
        store.compact_rev = if history.compact_revision > 0 { history.compact_revision } else { NEVER_COMPACTED };
        for (id, ttl) in history.leases {
            store.lessor.leases.insert(id, Lease { id, ttl, keys: Default::default() });
        }
        let sm = StateMachine {
            store,
            sessions: Default::default(),
            applied_index,
            alarms: Default::default(),
            auth: Default::default(),
        };
        let mut buf = Vec::new();
        write_snapshot(&sm, keys.len(), keys.iter(), &mut buf);
        StateMachine::restore(&buf)
    }
}

#[cfg(test)]
mod tests {
    use tally_proto::etcdserverpb::RangeRequest;

    use super::*;

    fn change(key: &str, main: i64, create: i64, version: i64, value: Option<&str>) -> ImportedChange {
        ImportedChange {
            key: key.into(),
            main,
            sub: 0,
            create_revision: create,
            version,
            lease: 0,
            value: value.map(Into::into),
        }
    }

    fn get(sm: &StateMachine, key: &str, revision: i64) -> Result<Vec<(String, i64, i64, i64)>, crate::MvccError> {
        let req = RangeRequest { key: key.into(), revision, ..Default::default() };
        let resp = sm.store.range(&req)?;
        Ok(resp
            .kvs
            .iter()
            .map(|kv| (String::from_utf8(kv.value.clone()).unwrap(), kv.create_revision, kv.mod_revision, kv.version))
            .collect())
    }

    #[test]
    fn imported_keys_keep_their_revisions_versions_and_deletes() {
        // a: put at 2, overwritten at 3; b: put at 4, deleted at 5; compacted at 3; current 6.
        let history = ImportedHistory {
            changes: vec![
                change("b", 5, 0, 0, None),
                change("a", 3, 2, 2, Some("a2")),
                change("b", 4, 4, 1, Some("b1")),
                change("a", 6, 2, 3, Some("a3")),
            ],
            leases: vec![],
            current_revision: 6,
            compact_revision: 3,
        };
        let sm = StateMachine::import(history, 1).unwrap();
        assert_eq!(sm.store.revision(), 6);
        assert_eq!(sm.store.compact_revision(), 3);
        assert_eq!(get(&sm, "a", 0).unwrap(), [("a3".to_string(), 2, 6, 3)]);
        assert_eq!(get(&sm, "a", 5).unwrap(), [("a2".to_string(), 2, 3, 2)]);
        assert_eq!(get(&sm, "b", 4).unwrap(), [("b1".to_string(), 4, 4, 1)]);
        assert!(get(&sm, "b", 0).unwrap().is_empty());
        assert_eq!(get(&sm, "a", 2), Err(crate::MvccError::Compacted));
    }

    #[test]
    fn a_key_on_a_lease_the_history_lacks_is_refused() {
        let mut c = change("a", 2, 2, 1, Some("v"));
        c.lease = 7;
        let history =
            ImportedHistory { changes: vec![c.clone()], leases: vec![], current_revision: 2, compact_revision: 0 };
        assert!(StateMachine::import(history, 1).is_err());
        let history =
            ImportedHistory { changes: vec![c], leases: vec![(7, 60)], current_revision: 2, compact_revision: 0 };
        let sm = StateMachine::import(history, 1).unwrap();
        assert_eq!(sm.store.lease(7).map(|l| l.keys.len()), Some(1));
    }

    #[test]
    fn revisions_past_the_current_one_are_refused() {
        let history = ImportedHistory {
            changes: vec![change("a", 9, 9, 1, Some("v"))],
            leases: vec![],
            current_revision: 5,
            compact_revision: 0,
        };
        assert!(StateMachine::import(history, 1).is_err());
    }
}
