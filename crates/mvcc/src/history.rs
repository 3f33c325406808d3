//! Past events, rebuilt from the key histories: what a watcher that starts in the past, or fell
//! behind, must receive. Each event looks exactly as the live write emitted it.

use tally_proto::mvccpb::event::EventType;
use tally_proto::mvccpb::{Event, KeyValue};

use crate::error::MvccError;
use crate::revision::Revision;
use crate::store::{entry_to_kv, KeyRange, Store};

impl Store {
    /// Events on keys in `[key, range_end)` (etcd's range forms) with main revision in
    /// `from..=to`, in revision order, with `prev_kv` set where the previous value is still
    /// in history. `Err(Compacted)` when `from` is below the compacted revision: some of those
    /// events are gone.
    pub fn events(&self, key: &[u8], range_end: &[u8], from: i64, to: i64) -> Result<Vec<Event>, MvccError> {
        if from < self.compact_rev {
            return Err(MvccError::Compacted);
        }
        let mut found: Vec<(Revision, Event)> = Vec::new();
        self.visit(KeyRange::new(key, range_end), |k, h| {
            let start = h.entries.partition_point(|e| e.rev.main < from);
            for i in start..h.entries.len() {
                let e = &h.entries[i];
                if e.rev.main > to {
                    break;
                }
                let prev_kv = h.watch_prev(e.rev.main, e.create == e.rev.main).map(|p| entry_to_kv(k, p));
                let event = if e.is_tombstone() {
                    let kv = KeyValue { key: k.to_vec(), mod_revision: e.rev.main, ..Default::default() };
                    Event { r#type: EventType::Delete as i32, kv: Some(kv), prev_kv }
                } else {
                    Event { r#type: EventType::Put as i32, kv: Some(entry_to_kv(k, e)), prev_kv }
                };
                found.push((e.rev, event));
            }
            true
        });
        found.sort_by_key(|(rev, _)| (rev.main, rev.sub));
        Ok(found.into_iter().map(|(_, e)| e).collect())
    }
}

#[cfg(test)]
mod tests {
    use tally_proto::etcdserverpb::{DeleteRangeRequest, PutRequest};

    use super::*;

    fn put(s: &mut Store, k: &str, v: &str) -> Vec<Event> {
        let req = PutRequest { key: k.into(), value: v.into(), ..Default::default() };
        s.put(&req).unwrap().1
    }

    #[test]
    fn replayed_events_equal_the_live_ones() {
        let mut s = Store::default();
        let mut live = Vec::new();
        live.extend(put(&mut s, "a", "1"));
        live.extend(put(&mut s, "b", "1"));
        live.extend(put(&mut s, "a", "2"));
        let del = DeleteRangeRequest { key: "a".into(), range_end: "c".into(), ..Default::default() };
        live.extend(s.delete_range(&del).unwrap().1);
        live.extend(put(&mut s, "a", "3"));
        assert_eq!(s.events(b"a", b"c", 2, s.revision()).unwrap(), live);
        assert_eq!(
            s.events(b"a", b"", 4, 5).unwrap(),
            live[2..4].iter().filter(|e| e.kv.as_ref().unwrap().key == b"a").cloned().collect::<Vec<_>>()
        );
        assert!(s.events(b"z", b"", 1, 9).unwrap().is_empty());
    }

    #[test]
    fn compacted_history_is_refused() {
        let mut s = Store::default();
        for v in ["1", "2", "3"] {
            put(&mut s, "k", v);
        }
        s.compact(3).unwrap();
        assert_eq!(s.events(b"k", b"", 2, 4), Err(MvccError::Compacted));
        let tail = s.events(b"k", b"", 3, 4).unwrap();
        assert_eq!(tail.len(), 2, "the revision kept at the compaction point and the one after");
    }
}
