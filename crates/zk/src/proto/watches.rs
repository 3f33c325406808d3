//! Watch notifications and the requests that manage watches (all served by the server's watch
//! manager, not by the replicated tree).

use super::jute::record;

record! {
    /// A notification, sent with xid -1 (`xid::NOTIFICATION`).
    pub struct WatcherEvent {
        /// An [`EventType`](super::codes::EventType) number.
        pub event_type: i32,
        /// A connection state (`codes::state`).
        pub state: i32,
        pub path: String,
    }
}

record! {
    /// Re-arms a reconnecting client's watches (xid -8); events after `relative_zxid` fire at once.
    pub struct SetWatches {
        pub relative_zxid: i64,
        pub data_watches: Vec<String>,
        pub exist_watches: Vec<String>,
        pub child_watches: Vec<String>,
    }
}

record! {
    /// SetWatches with the persistent watches of addWatch.
    pub struct SetWatches2 {
        pub relative_zxid: i64,
        pub data_watches: Vec<String>,
        pub exist_watches: Vec<String>,
        pub child_watches: Vec<String>,
        pub persistent_watches: Vec<String>,
        pub persistent_recursive_watches: Vec<String>,
    }
}

record! {
    pub struct AddWatchRequest {
        pub path: String,
        /// An `add_watch_mode` number.
        pub mode: i32,
    }
}

record! {
    /// checkWatches and removeWatches.
    pub struct WatchesRequest {
        pub path: String,
        /// A `watcher_type` number.
        pub watcher_type: i32,
    }
}
