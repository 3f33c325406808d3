//! The live view of Raft (`/ui`, with `--enable-ui`): a page showing every member's role, term,
//! log and messages as they happen, fed by each member's own event stream.
//!
//! Served on the client URLs (HTTP/1.1, beside gRPC):
//! - `GET /ui` and `/ui/assets/*`: the page, built by Vite from `crates/server/ui` and embedded
//!   in the binary (`assets.rs`), so no Node.js is needed at run time.
//! - `GET /ui/cluster`: `{"controls":false,"members":[{"name","id","client_url"}]}`, the members
//!   the page should connect to. `tally dev` serves the same page with `"controls":true` and its
//!   process controls (see `crates/cli/src/dev`).
//! - `GET /ui/events`: Server-Sent Events, one JSON object per `data:` line, each with a `type`
//!   and `t` (milliseconds since the Unix epoch); ids are 16-digit hex strings. Allowed from any
//!   origin, so one page can follow every member. Types:
//!   - `hello` `{id, name}`: first.
//!   - `view` `{id, role, term, vote, leader, commit, applied, first_index, last_index,
//!     snapshot_index, log: [[index, term]...] (the last entries, oldest first), voters,
//!     learners, progress: [{id, match, next, state, active}] (the leader's view of each other
//!     member, else empty), heard: [{id, ms}] (since each peer last sent us anything)}`: on
//!     connect, then every 200 ms.
//!   - `role` `{role, term, leader}`; `term` `{term, vote}`.
//!   - `msg` `{to, kind, term, ...}`: a message this member sent. `kind` and its fields:
//!     `append {prev_index, prev_term, entries, commit}`, `append-resp {index, reject}`,
//!     `heartbeat {commit}`, `heartbeat-resp`, `pre-vote`/`vote {last_index, last_term}`,
//!     `pre-vote-resp`/`vote-resp {granted, reason}` (reason of a refusal: `stale-log`,
//!     `already-voted`, `leader-lease`, `stale-term`, `better-claim`), `snapshot {index,
//!     snapshot_term}`, `timeout-now`, `read-index`, `read-index-resp`, `leader-durable {index}`.
//!   - `log` `{from, to, runs: [[first, last, term]...]}`: entries `from..=to` written to our
//!     log, replacing any at or after `from`.
//!   - `commit` `{commit, applied}`.
//!   - `snapshot` `{what: "taken"|"installed", index, term}`.
//!   - `members` `{voters, learners}`.
//!   - `peer-lost` `{peer, campaign}`: a peer's connection reset (again only after we heard
//!     from it since); `campaign` when it was our leader's and we stood for election at once
//!     (the fast failover).
//!   - `dropped` `{count}`: events this stream lost because its reader fell behind.
//!   - `sampled` `{count}`: `msg` events left out in the last second (at most 100 a second are
//!     sent, so the page stays smooth under heavy load).

pub mod assets;
pub mod events;
pub mod http;
mod json;
