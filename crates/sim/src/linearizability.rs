//! Linearizability checker for client histories recorded by the simulator.
//!
//! The checker implements the Wing & Gong search with Lowe's improvements
//! ("WGL", as used by Knossos and Porcupine): operations are arranged in a
//! doubly linked list of call and return entries ordered by time, and a
//! depth-first search linearizes ("lifts") one op at a time, backtracking
//! when it meets the return entry of an op it has not linearized yet. A
//! cache of already-visited configurations (set of linearized ops, model
//! state) prunes the search.
//!
//! # Model
//!
//! Every key is an independent register holding `Option<u64>` (initially
//! `None`). Each operation touches exactly one key, so a history is
//! linearizable iff every key's sub-history is; keys are checked one at a time
//! in ascending order.
//!
//! # Time
//!
//! Intervals are closed: an op that completes at `t` and an op invoked at the
//! same `t` are considered concurrent. Only `a.complete < b.invoke` orders `a`
//! strictly before `b`.
//!
//! # Unknown outcomes
//!
//! An op whose client never learned the result ([`Outcome::Unknown`]) may
//! have taken effect at any point after its invocation, or never. Such ops
//! get no return entry (their completion is at +infinity) and the search
//! succeeds once every op with a known outcome is linearized. Unknown `Get`s
//! are dropped up front since they cannot change the state.
//!
//! Plain WGL is exponential in the number of unknown-outcome writes (each can
//! be placed almost anywhere), so the search adds reductions that keep it
//! complete:
//! - unknown-outcome ops are only tried after all known-outcome candidates;
//! - a configuration whose set of used unknown ops is a superset of an
//!   already visited one (same known ops and state) is pruned (dominance);
//! - only "normal form" linearizations are searched, in which every unknown
//!   op is immediately followed by an op that needs its effect (see
//!   `breaks_normal_form`);
//! - register values that no op ever compares against (not read by a `Get`
//!   nor expected by a `Cas`) are merged into one abstract value, and
//!   unknown ops with identical abstract effects are used in invocation
//!   order (symmetry reduction).
//!
//! Linearizable histories are typically checked in a near-linear number of
//! steps. Proving a history *non*-linearizable requires exhausting the
//! search space before the violation; that stays fast with unique write
//! values, but with many unknown-outcome writes of heavily duplicated values
//! it can exceed the budget ([`CheckResult::Inconclusive`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// Step budget used by [`check`].
pub const DEFAULT_STEPS_MAX: u64 = 10_000_000;

/// The request a client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// Unconditionally set the key to `value`.
    Put { value: u64 },
    /// Read the key.
    Get,
    /// Compare-and-swap: succeeds iff the current value equals `expected`,
    /// in which case the key is set to `Some(new)`.
    Cas { expected: Option<u64>, new: u64 },
}

/// What the client observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A `Put` was acknowledged.
    Put,
    /// A `Get` returned this value.
    Get(Option<u64>),
    /// A `Cas` returned whether it swapped.
    Cas(bool),
    /// The client never learned the result (timeout / gave up). The op may
    /// or may not have taken effect, at any time after its invocation.
    Unknown,
}

/// One client operation of a recorded history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub client: u64,
    pub key: u64,
    pub kind: OpKind,
    /// Virtual time the client first sent the request.
    pub invoke: u64,
    /// Virtual time the client got the response; `None` iff the outcome is
    /// [`Outcome::Unknown`].
    pub complete: Option<u64>,
    pub outcome: Outcome,
}

/// Result of checking a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    /// Every key's sub-history is linearizable.
    Linearizable,
    /// The sub-history of `key` is not linearizable (the smallest such key).
    NotLinearizable { key: u64, explanation: String },
    /// The search for `key` exhausted its step budget and no other key was
    /// found to be non-linearizable.
    Inconclusive { key: u64 },
}

impl CheckResult {
    pub fn is_linearizable(&self) -> bool {
        matches!(self, CheckResult::Linearizable)
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpKind::Put { value } => write!(f, "Put({value})"),
            OpKind::Get => write!(f, "Get"),
            OpKind::Cas { expected, new } => write!(f, "Cas({expected:?} -> {new})"),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Put => write!(f, "ok"),
            Outcome::Get(v) => write!(f, "{v:?}"),
            Outcome::Cas(true) => write!(f, "swapped"),
            Outcome::Cas(false) => write!(f, "not swapped"),
            Outcome::Unknown => write!(f, "unknown"),
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "client {} key {}: {} -> {} [invoke {}, complete ",
            self.client, self.key, self.kind, self.outcome, self.invoke
        )?;
        match self.complete {
            Some(t) => write!(f, "{t}]"),
            None => write!(f, "never]"),
        }
    }
}

/// Checks `history` with the default step budget ([`DEFAULT_STEPS_MAX`] per
/// key).
///
/// # Panics
///
/// Panics if an op is malformed: `complete < invoke`, `complete` is `None`
/// for a known outcome (or `Some` for an unknown one), or the outcome does not
/// match the op kind.
pub fn check(history: &[Operation]) -> CheckResult {
    check_with_budget(history, DEFAULT_STEPS_MAX)
}

/// Checks `history`, spending at most `steps_max` search steps (attempts to
/// linearize an op, plus backtracks) on each key.
///
/// A `NotLinearizable` result for any key takes precedence over an
/// `Inconclusive` result for another key.
///
/// # Panics
///
/// Same as [`check`].
pub fn check_with_budget(history: &[Operation], steps_max: u64) -> CheckResult {
    let mut by_key: BTreeMap<u64, Vec<&Operation>> = BTreeMap::new();
    for op in history {
        validate(op);
        if op.outcome == Outcome::Unknown && op.kind == OpKind::Get {
            continue; // cannot affect the state, and any result is allowed
        }
        by_key.entry(op.key).or_default().push(op);
    }
    let mut inconclusive = None;
    for (key, ops) in by_key {
        match check_key(&ops, steps_max) {
            KeyResult::Ok => {}
            KeyResult::Violation(explanation) => {
                return CheckResult::NotLinearizable { key, explanation };
            }
            KeyResult::OutOfBudget => {
                inconclusive.get_or_insert(key);
            }
        }
    }
    match inconclusive {
        Some(key) => CheckResult::Inconclusive { key },
        None => CheckResult::Linearizable,
    }
}

fn validate(op: &Operation) {
    match op.complete {
        Some(complete) => {
            assert!(
                complete >= op.invoke,
                "linearizability: operation completes before it is invoked ({complete} < {}): {op}",
                op.invoke
            );
            assert!(
                op.outcome != Outcome::Unknown,
                "linearizability: operation with an unknown outcome must have complete = None: {op}"
            );
        }
        None => assert!(
            op.outcome == Outcome::Unknown,
            "linearizability: operation with a known outcome must have a completion time: {op}"
        ),
    }
    let consistent = matches!(
        (op.kind, op.outcome),
        (_, Outcome::Unknown)
            | (OpKind::Put { .. }, Outcome::Put)
            | (OpKind::Get, Outcome::Get(_))
            | (OpKind::Cas { .. }, Outcome::Cas(_))
    );
    assert!(consistent, "linearizability: outcome does not match the operation kind: {op}");
}

/// Applies `op` to a register in state `state`. Returns the new state if the
/// op's observed outcome is possible in that state.
fn step(op: &Operation, state: Option<u64>) -> Option<Option<u64>> {
    match (op.kind, op.outcome) {
        (OpKind::Put { value }, Outcome::Put | Outcome::Unknown) => Some(Some(value)),
        (OpKind::Get, Outcome::Get(read)) => (read == state).then_some(state),
        (OpKind::Cas { expected, new }, Outcome::Cas(true)) => (state == expected).then_some(Some(new)),
        (OpKind::Cas { expected, .. }, Outcome::Cas(false)) => (state != expected).then_some(state),
        (OpKind::Cas { expected, new }, Outcome::Unknown) => Some(if state == expected { Some(new) } else { state }),
        // Unknown gets are filtered out and mismatches rejected by `validate`.
        _ => unreachable!("linearizability: unexpected op {op}"),
    }
}

enum KeyResult {
    Ok,
    Violation(String),
    OutOfBudget,
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

/// A node of the WGL entry list. Node 0 is the head sentinel.
#[derive(Clone, Copy)]
struct Entry {
    /// Index into the key's op list (unused for the sentinel).
    op: usize,
    is_call: bool,
    /// For call entries: the matching return entry, or NIL for ops with an
    /// unknown outcome.
    ret: usize,
    prev: usize,
    next: usize,
}

struct EntryList {
    nodes: Vec<Entry>,
}

impl EntryList {
    fn unlink(&mut self, i: usize) {
        let Entry { prev, next, .. } = self.nodes[i];
        self.nodes[prev].next = next;
        if next != NIL {
            self.nodes[next].prev = prev;
        }
    }

    fn relink(&mut self, i: usize) {
        let Entry { prev, next, .. } = self.nodes[i];
        self.nodes[prev].next = i;
        if next != NIL {
            self.nodes[next].prev = i;
        }
    }

    /// Removes a call entry and its return entry.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        let ret = self.nodes[call].ret;
        if ret != NIL {
            self.unlink(ret);
        }
    }

    /// Undoes `lift` (must be called in LIFO order).
    fn unlift(&mut self, call: usize) {
        let ret = self.nodes[call].ret;
        if ret != NIL {
            self.relink(ret);
        }
        self.relink(call);
    }
}

/// Fixed-size bitset.
#[derive(Clone, PartialEq, Eq)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    fn is_subset_of(&self, other: &Bits) -> bool {
        self.0.iter().zip(&other.0).all(|(a, b)| a & !b == 0)
    }
}

fn state_hash(state: Option<u64>) -> u64 {
    match state {
        None => tally_raft::mix(u64::MAX ^ 0x5555),
        Some(v) => tally_raft::mix(v.rotate_left(17) ^ 0xabcd_ef01),
    }
}

struct CacheEntry {
    known: Bits,
    state: Option<u64>,
    /// Minimal (w.r.t. domination) pairs of (set of linearized
    /// unknown-outcome ops, `after_unknown` restriction) seen with this
    /// (known, state).
    unknown_sets: Vec<(Bits, AfterUnknown)>,
}

/// If the last linearized op had an unknown outcome: the state before it.
/// This restricts which op may come next (see `breaks_normal_form`).
type AfterUnknown = Option<Option<u64>>;

/// Visited configurations, keyed by a Zobrist hash of the linearized set
/// combined with the state hash.
#[derive(Default)]
struct Cache {
    map: HashMap<u64, Vec<CacheEntry>>,
}

impl Cache {
    /// Records the configuration; returns false if it (or a configuration
    /// dominating it) was visited before.
    ///
    /// (K, U, x, r) dominates (K, U', x, r') if U is a subset of U' and r is
    /// no restriction or the same as r': every completion available from the
    /// latter is available from the former.
    fn visit(
        &mut self,
        hash: u64,
        known: &Bits,
        unknown: &Bits,
        state: Option<u64>,
        after_unknown: AfterUnknown,
    ) -> bool {
        let bucket = self.map.entry(hash).or_default();
        if let Some(entry) = bucket.iter_mut().find(|e| e.state == state && e.known == *known) {
            let dominated =
                entry.unknown_sets.iter().any(|(s, r)| (r.is_none() || *r == after_unknown) && s.is_subset_of(unknown));
            if dominated {
                return false;
            }
            entry
                .unknown_sets
                .retain(|(s, r)| !((after_unknown.is_none() || *r == after_unknown) && unknown.is_subset_of(s)));
            entry.unknown_sets.push((unknown.clone(), after_unknown));
            return true;
        }
        bucket.push(CacheEntry { known: known.clone(), state, unknown_sets: vec![(unknown.clone(), after_unknown)] });
        true
    }
}

/// Where the search looks for the next op to linearize.
#[derive(Clone, Copy)]
enum Cursor {
    /// Scanning the list of known-outcome entries at this node.
    Main(usize),
    /// All known-outcome candidates were tried; trying the unused
    /// unknown-outcome op at node `u` of the unknown list (op `u - 1` of
    /// `unknown_nodes`). Only those invoked before node `limit` (the first
    /// remaining return entry) are candidates.
    Unknown { u: usize, limit: usize },
}

/// A linearized op on the search stack, with what is needed to undo it.
struct Frame {
    /// The op's call node.
    node: usize,
    /// For unknown-outcome ops: its node in the unknown list and the cursor
    /// limit in effect when it was linearized.
    unknown: Option<(usize, usize)>,
    state: Option<u64>,
    after_unknown: AfterUnknown,
}

/// Checks the sub-history of one key (unknown `Get`s already removed).
fn check_key(ops: &[&Operation], steps_max: u64) -> KeyResult {
    let n_known = ops.iter().filter(|o| o.complete.is_some()).count();
    if n_known == 0 {
        return KeyResult::Ok;
    }
    Search::new(ops, n_known).run(steps_max)
}

/// The entries of one key's history, in time order.
struct Entries {
    /// The WGL list: call and return entries of the known-outcome ops.
    list: EntryList,
    /// Call nodes of the unknown-outcome ops, in invocation order.
    unknown_nodes: Vec<usize>,
    /// Each op's bit: its index among the known-outcome calls or in `unknown_nodes`.
    bit: Vec<usize>,
}

impl Entries {
    /// Node indices follow event order. Known-outcome ops have a call and a
    /// return entry, linked into the WGL list. Unknown-outcome ops only have a
    /// call node, kept out of the list in `unknown_nodes` (sorted by
    /// invocation): such an op is a candidate iff its call node precedes the
    /// first remaining return entry. Keeping them separate lets the search
    /// try every known-outcome candidate before any unknown one, which makes
    /// the dominance pruning in `Cache::visit` effective.
    fn build(ops: &[&Operation]) -> Entries {
        let events = sorted_events(ops);
        let mut nodes = Vec::with_capacity(events.len() + 1);
        nodes.push(Entry { op: NIL, is_call: false, ret: NIL, prev: NIL, next: NIL });
        let mut call_node = vec![NIL; ops.len()];
        let mut unknown_nodes = Vec::new();
        let mut bit = vec![NIL; ops.len()];
        let mut last = HEAD;
        let mut n_calls = 0;
        for &(_, is_ret, i) in &events {
            let idx = nodes.len();
            nodes.push(Entry { op: i, is_call: !is_ret, ret: NIL, prev: NIL, next: NIL });
            if ops[i].complete.is_none() {
                bit[i] = unknown_nodes.len();
                unknown_nodes.push(idx);
                continue;
            }
            nodes[last].next = idx;
            nodes[idx].prev = last;
            last = idx;
            if is_ret {
                nodes[call_node[i]].ret = idx;
            } else {
                bit[i] = n_calls;
                n_calls += 1;
                call_node[i] = idx;
            }
        }
        Entries { list: EntryList { nodes }, unknown_nodes, bit }
    }
}

/// Calls and returns as (time, is_return, op), sorted by time with calls
/// before returns at equal times (closed intervals).
fn sorted_events(ops: &[&Operation]) -> Vec<(u64, bool, usize)> {
    let mut events = Vec::with_capacity(2 * ops.len());
    for (i, op) in ops.iter().enumerate() {
        events.push((op.invoke, false, i));
        if let Some(c) = op.complete {
            events.push((c, true, i));
        }
    }
    events.sort_unstable();
    events
}

/// State abstraction: ops only ever compare the register against values
/// that are read (`Get`) or expected (`Cas`). Any other value is
/// indistinguishable from any other, so all of them are mapped to one
/// representative `other`. This makes e.g. all timed-out writes of values
/// nobody observed lead to the same state.
struct Canon {
    observable: HashSet<u64>,
    other: u64,
}

impl Canon {
    fn new(ops: &[&Operation]) -> Canon {
        let mut observable: HashSet<u64> = HashSet::new();
        for op in ops {
            match (op.kind, op.outcome) {
                (_, Outcome::Get(Some(v))) | (OpKind::Cas { expected: Some(v), .. }, _) => {
                    observable.insert(v);
                }
                _ => {}
            }
        }
        let other =
            (0..=u64::MAX).rev().find(|v| !observable.contains(v)).expect("at most ops.len() observable values");
        Canon { observable, other }
    }

    fn value(&self, v: u64) -> u64 {
        if self.observable.contains(&v) {
            v
        } else {
            self.other
        }
    }

    /// [`step`] on abstract states.
    fn step(&self, op: &Operation, state: Option<u64>) -> Option<Option<u64>> {
        step(op, state).map(|s| s.map(|v| self.value(v)))
    }
}

/// Symmetry reduction: unknown-outcome ops with the same (abstract) effect
/// are interchangeable once invoked, so only use them in invocation order.
/// Returns, for the j-th unknown op, the previous one of its class (NIL if
/// none): the j-th is a candidate only once that one is linearized.
fn same_effect_predecessors(ops: &[&Operation], entries: &Entries, canon: &Canon) -> Vec<usize> {
    let mut prev_same = vec![NIL; entries.unknown_nodes.len()];
    let mut last_of_class: HashMap<(Option<u64>, u64, bool), usize> = HashMap::new();
    for (j, &node) in entries.unknown_nodes.iter().enumerate() {
        let class = match ops[entries.list.nodes[node].op].kind {
            OpKind::Put { value } => (None, canon.value(value), false),
            OpKind::Cas { expected, new } => (expected, canon.value(new), true),
            OpKind::Get => unreachable!("unknown gets are filtered out"),
        };
        if let Some(prev) = last_of_class.insert(class, j) {
            prev_same[j] = prev;
        }
    }
    prev_same
}

/// The unused unknown-outcome ops (all of them, to start with), as a linked
/// list over `j + 1` (node 0 is the sentinel) in invocation order, so that
/// using one and undoing that are O(1).
fn unused_unknown_list(n: usize) -> EntryList {
    EntryList {
        nodes: (0..=n)
            .map(|u| Entry {
                op: u.wrapping_sub(1),
                is_call: true,
                ret: NIL,
                prev: u.wrapping_sub(1),
                next: if u < n { u + 1 } else { NIL },
            })
            .collect(),
    }
}

/// Whether `op` may not come right after an unknown-outcome op that left the
/// register changed from `s0` (`after_unknown == Some(s0)`).
///
/// Normal form. Any linearization can be rewritten into one where
/// every unknown-outcome op `u` (taking state s0 to s1 != s0) is
/// immediately followed by an op that needs s1:
/// - if `u` does not change the state, drop it;
/// - if `u` is followed by a Put (which overwrites the state
///   regardless), drop it;
/// - if `u` is followed by a known failed Cas whose expected value is
///   not s0, that Cas also fails from s0 (and it was already a
///   candidate before `u`, which has no return), so swap the two.
///
/// (Each rewrite shortens the linearization or moves an unknown op
/// later, so this terminates.) Searching only for normal-form
/// linearizations is therefore complete, and avoids exploring the
/// many ways of placing timed-out writes that nobody observed.
fn breaks_normal_form(op: &Operation, after_unknown: AfterUnknown) -> bool {
    match after_unknown {
        None => false,
        Some(s0) => match (op.kind, op.outcome) {
            (OpKind::Put { .. }, _) => true,
            (OpKind::Cas { expected, .. }, Outcome::Cas(false)) => expected != s0,
            _ => false,
        },
    }
}

/// The longest linearized prefix seen (by number of known ops), for the report.
#[derive(Default)]
struct BestPrefix {
    ops: Vec<usize>,
    known: usize,
    /// The search stack's first `low_water` frames are `ops[..low_water]`, so
    /// a better prefix only copies the frames above.
    low_water: usize,
}

impl BestPrefix {
    /// Keeps `stack` if its `known` known-outcome ops beat the best so far.
    fn offer(&mut self, known: usize, stack: &[Frame], list: &EntryList) {
        if known > self.known {
            self.known = known;
            self.ops.truncate(self.low_water);
            self.ops.extend(stack[self.low_water..].iter().map(|f| list.nodes[f.node].op));
            self.low_water = stack.len();
        }
    }
}

/// What [`Search::next_candidate`] found at a cursor.
enum Next {
    /// Try linearizing the op whose call node is `node`; on failure, continue
    /// at `on_failure`.
    Try { node: usize, on_failure: Cursor },
    /// Nothing to try here; continue at this cursor (not a search step).
    Skip(Cursor),
    /// No candidate left, and an op returned without being linearized.
    Backtrack,
}

/// The depth-first search over one key's history (see the module docs),
/// with everything that backtracking restores.
struct Search<'a> {
    ops: &'a [&'a Operation],
    canon: Canon,
    list: EntryList,
    unknown_nodes: Vec<usize>,
    bit: Vec<usize>,
    prev_same: Vec<usize>,
    ulist: EntryList,
    zobrist: Vec<u64>,
    cache: Cache,
    /// The linearized known-outcome ops (by `bit`).
    known: Bits,
    /// The linearized unknown-outcome ops (by `bit`).
    unknown: Bits,
    /// Zobrist hash of both sets, for the cache.
    set_hash: u64,
    state: Option<u64>,
    /// Set iff the last linearized op has an unknown outcome (see `breaks_normal_form`).
    after_unknown: AfterUnknown,
    stack: Vec<Frame>,
    n_known: usize,
    remaining_known: usize,
    best: BestPrefix,
}

impl<'a> Search<'a> {
    fn new(ops: &'a [&'a Operation], n_known: usize) -> Self {
        let entries = Entries::build(ops);
        let canon = Canon::new(ops);
        let prev_same = same_effect_predecessors(ops, &entries, &canon);
        let Entries { list, unknown_nodes, bit } = entries;
        let known = Bits::new(n_known);
        let unknown = Bits::new(unknown_nodes.len());
        let mut cache = Cache::default();
        // The start: nothing linearized (set hash 0), register unset.
        cache.visit(state_hash(None), &known, &unknown, None, None);
        Search {
            ops,
            canon,
            list,
            ulist: unused_unknown_list(unknown_nodes.len()),
            unknown_nodes,
            bit,
            prev_same,
            zobrist: (0..ops.len()).map(|i| tally_raft::mix(i as u64 + 1)).collect(),
            cache,
            known,
            unknown,
            set_hash: 0,
            state: None,
            after_unknown: None,
            stack: Vec::new(),
            n_known,
            remaining_known: n_known,
            best: BestPrefix::default(),
        }
    }

    /// Searches until every known-outcome op is linearized, the search space
    /// is exhausted (a violation) or `steps_max` steps are spent.
    fn run(mut self, steps_max: u64) -> KeyResult {
        // Steps = linearization attempts + backtracks.
        let mut steps = 0u64;
        let mut cursor = Cursor::Main(self.list.nodes[HEAD].next);
        while self.remaining_known > 0 {
            if steps >= steps_max {
                return KeyResult::OutOfBudget;
            }
            match self.next_candidate(cursor) {
                Next::Skip(next) => cursor = next,
                Next::Try { node, on_failure } => {
                    steps += 1;
                    cursor = if self.try_linearize(node, cursor) {
                        Cursor::Main(self.list.nodes[HEAD].next)
                    } else {
                        on_failure
                    };
                }
                Next::Backtrack => {
                    steps += 1;
                    match self.backtrack() {
                        Some(next) => cursor = next,
                        None => return KeyResult::Violation(explain(self.ops, &self.best.ops)),
                    }
                }
            }
        }
        KeyResult::Ok
    }

    /// Known-outcome calls are tried in list order up to the first remaining
    /// return entry; then the unused unknown-outcome ops invoked before it.
    fn next_candidate(&self, cursor: Cursor) -> Next {
        match cursor {
            Cursor::Main(e) => {
                assert!(e != NIL, "linearizability: entry list ended unexpectedly");
                if self.list.nodes[e].is_call {
                    Next::Try { node: e, on_failure: Cursor::Main(self.list.nodes[e].next) }
                } else {
                    Next::Skip(Cursor::Unknown { u: self.ulist.nodes[HEAD].next, limit: e })
                }
            }
            Cursor::Unknown { u, limit } => {
                if u != NIL && self.unknown_nodes[u - 1] < limit {
                    let j = u - 1;
                    let next = Cursor::Unknown { u: self.ulist.nodes[u].next, limit };
                    if self.prev_same[j] != NIL && !self.unknown.get(self.prev_same[j]) {
                        Next::Skip(next)
                    } else {
                        Next::Try { node: self.unknown_nodes[j], on_failure: next }
                    }
                } else {
                    Next::Backtrack
                }
            }
        }
    }

    /// Linearizes the op at call node `node` (reached at `cursor`) if the
    /// model and normal form allow it and the configuration it leads to is
    /// new. Returns whether it did.
    fn try_linearize(&mut self, node: usize, cursor: Cursor) -> bool {
        let op = self.list.nodes[node].op;
        let is_unknown = self.ops[op].complete.is_none();
        let Some(new_state) = self.state_after(op, is_unknown) else {
            return false;
        };
        if !self.mark_visited(op, is_unknown, new_state) {
            return false;
        }
        self.push(node, cursor, is_unknown, new_state);
        true
    }

    /// The register after linearizing `op` next, or None if that is not
    /// allowed. An unknown-outcome op that leaves the state as it is could
    /// as well not have happened, so it is not tried.
    fn state_after(&self, op: usize, is_unknown: bool) -> Option<Option<u64>> {
        if breaks_normal_form(self.ops[op], self.after_unknown) {
            return None;
        }
        self.canon.step(self.ops[op], self.state).filter(|&new| !(is_unknown && new == self.state))
    }

    /// Adds `op` to the linearized set and records the configuration that
    /// gives with `new_state`; if it was visited before, takes `op` out again
    /// and returns false.
    fn mark_visited(&mut self, op: usize, is_unknown: bool, new_state: Option<u64>) -> bool {
        let bits = if is_unknown { &mut self.unknown } else { &mut self.known };
        bits.set(self.bit[op]);
        let hash = self.set_hash ^ self.zobrist[op] ^ state_hash(new_state);
        let fresh = self.cache.visit(hash, &self.known, &self.unknown, new_state, is_unknown.then_some(self.state));
        if !fresh {
            let bits = if is_unknown { &mut self.unknown } else { &mut self.known };
            bits.clear(self.bit[op]);
        }
        fresh
    }

    /// Commits the linearization of the op at `node` (its bit is already set
    /// by `mark_visited`): pushes what `backtrack` needs to undo it, then takes it
    /// out of the candidates.
    fn push(&mut self, node: usize, cursor: Cursor, is_unknown: bool, new_state: Option<u64>) {
        let op = self.list.nodes[node].op;
        self.stack.push(Frame {
            node,
            unknown: match cursor {
                Cursor::Unknown { u, limit } => Some((u, limit)),
                Cursor::Main(_) => None,
            },
            state: self.state,
            after_unknown: self.after_unknown,
        });
        self.set_hash ^= self.zobrist[op];
        self.after_unknown = is_unknown.then_some(self.state);
        self.state = new_state;
        if is_unknown {
            if let Cursor::Unknown { u, .. } = cursor {
                self.ulist.unlink(u);
            }
        } else {
            self.list.lift(node);
            self.remaining_known -= 1;
            self.best.offer(self.n_known - self.remaining_known, &self.stack, &self.list);
        }
    }

    /// Undoes the last linearized op. Returns the cursor just past it (its
    /// alternatives are still to be tried), or None if nothing is linearized.
    fn backtrack(&mut self) -> Option<Cursor> {
        let frame = self.stack.pop()?;
        self.best.low_water = self.best.low_water.min(self.stack.len());
        let op = self.list.nodes[frame.node].op;
        self.set_hash ^= self.zobrist[op];
        self.state = frame.state;
        self.after_unknown = frame.after_unknown;
        Some(match frame.unknown {
            Some((u, limit)) => {
                self.unknown.clear(u - 1);
                self.ulist.relink(u);
                Cursor::Unknown { u: self.ulist.nodes[u].next, limit }
            }
            None => {
                self.known.clear(self.bit[op]);
                self.list.unlift(frame.node);
                self.remaining_known += 1;
                Cursor::Main(self.list.nodes[frame.node].next)
            }
        })
    }
}

/// Builds a human-readable report from the longest linearizable prefix.
fn explain(ops: &[&Operation], prefix: &[usize]) -> String {
    use std::fmt::Write;
    const SHOW: usize = 20;

    // The search ran on abstracted states; replay the prefix concretely.
    let state = prefix
        .iter()
        .fold(None, |state, &i| step(ops[i], state).expect("linearizability: prefix found by the search must replay"));

    let n_known = ops.iter().filter(|o| o.complete.is_some()).count();
    let n_unknown = ops.len() - n_known;
    let prefix_known = prefix.iter().filter(|&&i| ops[i].complete.is_some()).count();
    let mut s = String::new();
    let _ =
        writeln!(s, "no linearization exists ({n_known} ops with known outcome, {n_unknown} unknown-outcome writes).");
    let _ = writeln!(
        s,
        "Longest linearizable prefix: {} ops ({prefix_known} of {n_known} known-outcome ops){}:",
        prefix.len(),
        if prefix.len() > SHOW { format!(", showing the last {SHOW}") } else { String::new() }
    );
    if prefix.is_empty() {
        let _ = writeln!(s, "  (empty)");
    }
    let skip = prefix.len().saturating_sub(SHOW);
    for (n, &i) in prefix.iter().enumerate().skip(skip) {
        let _ = writeln!(s, "  {:>5}. {}", n + 1, ops[i]);
    }
    let _ = writeln!(s, "Register value after the prefix: {state:?}");

    let mut done = vec![false; ops.len()];
    for &i in prefix {
        done[i] = true;
    }
    let deadline = ops.iter().enumerate().filter(|&(i, _)| !done[i]).filter_map(|(_, o)| o.complete).min();
    let Some(deadline) = deadline else {
        return s;
    };
    let _ = writeln!(
        s,
        "No op can be linearized next. Candidates (not yet linearized, invoked at or before t={deadline}, the earliest completion among them):"
    );
    let written: Vec<u64> = ops
        .iter()
        .filter_map(|o| match o.kind {
            OpKind::Put { value } => Some(value),
            OpKind::Cas { new, .. } => Some(new),
            OpKind::Get => None,
        })
        .collect();
    let candidates: Vec<&Operation> =
        ops.iter().enumerate().filter(|&(i, op)| !done[i] && op.invoke <= deadline).map(|(_, &op)| op).collect();
    let (known_cands, unknown_cands): (Vec<&Operation>, Vec<&Operation>) =
        candidates.iter().partition(|op| op.complete.is_some());
    let describe = |s: &mut String, op: &Operation| {
        let verdict = match step(op, state) {
            Some(_) => "allowed by the model, but no linearization continues from there".to_string(),
            None => {
                let mut v = format!("impossible: the register holds {state:?}");
                if let Outcome::Get(Some(r)) = op.outcome {
                    if !written.contains(&r) {
                        let _ = write!(v, " (and {r} is never written to this key)");
                    }
                }
                v
            }
        };
        let must = if op.complete == Some(deadline) { " [must be linearized by now]" } else { "" };
        let _ = writeln!(s, "  {op}{must}: {verdict}");
    };
    for op in known_cands.iter().take(SHOW) {
        describe(&mut s, op);
    }
    if known_cands.len() > SHOW {
        let _ = writeln!(s, "  ... and {} more", known_cands.len() - SHOW);
    }
    const SHOW_UNKNOWN: usize = 5;
    for op in unknown_cands.iter().take(SHOW_UNKNOWN) {
        describe(&mut s, op);
    }
    if unknown_cands.len() > SHOW_UNKNOWN {
        let _ = writeln!(s, "  ... and {} more unknown-outcome ops", unknown_cands.len() - SHOW_UNKNOWN);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Instant;

    fn put(client: u64, value: u64, invoke: u64, complete: u64) -> Operation {
        Operation {
            client,
            key: 0,
            kind: OpKind::Put { value },
            invoke,
            complete: Some(complete),
            outcome: Outcome::Put,
        }
    }

    fn get(client: u64, read: Option<u64>, invoke: u64, complete: u64) -> Operation {
        Operation { client, key: 0, kind: OpKind::Get, invoke, complete: Some(complete), outcome: Outcome::Get(read) }
    }

    fn cas(client: u64, expected: Option<u64>, new: u64, swapped: bool, invoke: u64, complete: u64) -> Operation {
        Operation {
            client,
            key: 0,
            kind: OpKind::Cas { expected, new },
            invoke,
            complete: Some(complete),
            outcome: Outcome::Cas(swapped),
        }
    }

    fn unknown(client: u64, kind: OpKind, invoke: u64) -> Operation {
        Operation { client, key: 0, kind, invoke, complete: None, outcome: Outcome::Unknown }
    }

    fn with_key(mut op: Operation, key: u64) -> Operation {
        op.key = key;
        op
    }

    fn assert_lin(h: &[Operation]) {
        let r = check(h);
        assert_eq!(r, CheckResult::Linearizable, "history: {h:#?}");
    }

    fn assert_not_lin(h: &[Operation]) -> String {
        match check(h) {
            CheckResult::NotLinearizable { explanation, .. } => explanation,
            other => panic!("expected NotLinearizable, got {other:?} for {h:#?}"),
        }
    }

    #[test]
    fn empty_history_is_linearizable() {
        assert_lin(&[]);
    }

    #[test]
    fn sequential_valid() {
        assert_lin(&[
            get(1, None, 0, 1),
            put(1, 1, 2, 3),
            get(2, Some(1), 4, 5),
            put(2, 2, 6, 7),
            get(1, Some(2), 8, 9),
            get(3, Some(2), 10, 11),
        ]);
    }

    #[test]
    fn sequential_stale_read() {
        let explanation = assert_not_lin(&[put(1, 1, 0, 1), put(1, 2, 2, 3), get(2, Some(1), 4, 5)]);
        assert!(explanation.contains("Get -> Some(1)"), "{explanation}");
        assert!(explanation.contains("holds Some(2)"), "{explanation}");
        assert!(explanation.contains("client 2"), "{explanation}");
    }

    #[test]
    fn read_of_initial_value_after_completed_put() {
        assert_not_lin(&[put(1, 1, 0, 1), get(2, None, 2, 3)]);
    }

    #[test]
    fn read_of_value_never_written() {
        let explanation = assert_not_lin(&[put(1, 1, 0, 1), get(2, Some(9), 2, 3)]);
        assert!(explanation.contains("never written"), "{explanation}");
    }

    #[test]
    fn concurrent_put_get_either_order() {
        assert_lin(&[put(1, 1, 0, 10), get(2, Some(1), 2, 5)]);
        assert_lin(&[put(1, 1, 0, 10), get(2, None, 2, 5)]);
        // Both orders observed by sequential reads during the put: fine.
        assert_lin(&[put(1, 1, 0, 10), get(2, None, 1, 3), get(2, Some(1), 4, 6)]);
        // But once the new value was seen, the old one cannot come back.
        assert_not_lin(&[put(1, 1, 0, 10), get(2, Some(1), 1, 3), get(2, None, 4, 6)]);
    }

    #[test]
    fn touching_intervals_are_concurrent() {
        // Read completes at the same instant the put is invoked.
        assert_lin(&[get(1, Some(1), 0, 5), put(2, 1, 5, 8)]);
        assert_not_lin(&[get(1, Some(1), 0, 4), put(2, 1, 5, 8)]);
    }

    #[test]
    fn two_writes_observed_in_opposite_orders() {
        // Concurrent writes of 1 and 2; during them, non-overlapping reads see
        // 1, 2 (client 3) and then 2, 1 (client 4).
        let mut h = vec![put(1, 1, 0, 100), put(2, 2, 0, 100), get(3, Some(1), 11, 12), get(3, Some(2), 13, 14)];
        assert_lin(&h);
        h.push(get(4, Some(2), 15, 16));
        assert_lin(&h);
        h.push(get(4, Some(1), 17, 18));
        let explanation = assert_not_lin(&h);
        assert!(explanation.contains("client 4"), "{explanation}");
        // Once the first value was seen after both writes completed, the
        // other one cannot show up.
        assert_not_lin(&[put(1, 1, 0, 10), put(2, 2, 0, 10), get(3, Some(1), 11, 12), get(3, Some(2), 13, 14)]);
        // With reads concurrent with each other, both orders are fine.
        assert_lin(&[put(1, 1, 0, 15), put(2, 2, 0, 15), get(3, Some(1), 11, 20), get(4, Some(2), 11, 20)]);
        // ... but not once both writes are complete.
        assert_not_lin(&[put(1, 1, 0, 10), put(2, 2, 0, 10), get(3, Some(1), 11, 20), get(4, Some(2), 11, 20)]);
    }

    #[test]
    fn cas_semantics() {
        // Successful CAS from the initial state.
        assert_lin(&[cas(1, None, 7, true, 0, 1), get(2, Some(7), 2, 3)]);
        // Successful CAS must see the expected value.
        assert_lin(&[put(1, 1, 0, 1), cas(2, Some(1), 2, true, 2, 3), get(3, Some(2), 4, 5)]);
        assert_not_lin(&[put(1, 1, 0, 1), cas(2, Some(5), 3, true, 2, 3)]);
        assert_not_lin(&[cas(1, Some(1), 3, true, 0, 1)]);
        // Failed CAS must see a different value and does not change it.
        assert_lin(&[put(1, 1, 0, 1), cas(2, Some(5), 3, false, 2, 3), get(3, Some(1), 4, 5)]);
        assert_not_lin(&[put(1, 1, 0, 1), cas(2, Some(1), 3, false, 2, 3)]);
        assert_not_lin(&[put(1, 1, 0, 1), cas(2, Some(5), 3, false, 2, 3), get(3, Some(3), 4, 5)]);
        assert_not_lin(&[cas(1, None, 3, false, 0, 1)]);
        // Two concurrent CASes from the same expected value: only one wins.
        assert_not_lin(&[put(1, 1, 0, 1), cas(2, Some(1), 2, true, 2, 10), cas(3, Some(1), 3, true, 2, 10)]);
        assert_lin(&[
            put(1, 1, 0, 1),
            cas(2, Some(1), 2, true, 2, 10),
            cas(3, Some(1), 3, false, 2, 10),
            get(4, Some(2), 11, 12),
        ]);
        assert_not_lin(&[
            put(1, 1, 0, 1),
            cas(2, Some(1), 2, true, 2, 10),
            cas(3, Some(1), 3, false, 2, 10),
            get(4, Some(3), 11, 12),
        ]);
        // A failed CAS concurrent with the write it expects can go first.
        assert_lin(&[put(1, 1, 0, 10), cas(2, Some(1), 2, false, 1, 5), cas(3, Some(1), 3, true, 6, 12)]);
    }

    #[test]
    fn unknown_put_observed_later() {
        assert_lin(&[put(1, 1, 0, 1), unknown(2, OpKind::Put { value: 2 }, 2), get(3, Some(2), 100, 101)]);
    }

    #[test]
    fn unknown_put_never_observed() {
        assert_lin(&[
            put(1, 1, 0, 1),
            unknown(2, OpKind::Put { value: 2 }, 2),
            get(3, Some(1), 100, 101),
            get(3, Some(1), 200, 201),
        ]);
    }

    #[test]
    fn unknown_put_observed_before_invocation() {
        assert_not_lin(&[put(1, 1, 0, 1), get(3, Some(2), 2, 3), unknown(2, OpKind::Put { value: 2 }, 4)]);
    }

    #[test]
    fn unknown_put_takes_effect_once() {
        // Once observed, it cannot un-happen.
        assert_not_lin(&[
            put(1, 1, 0, 1),
            unknown(2, OpKind::Put { value: 2 }, 2),
            get(3, Some(2), 3, 4),
            get(3, Some(1), 5, 6),
        ]);
        // ... unless something else rewrote the old value.
        assert_lin(&[
            put(1, 1, 0, 1),
            unknown(2, OpKind::Put { value: 2 }, 2),
            get(3, Some(2), 3, 4),
            put(4, 1, 5, 6),
            get(3, Some(1), 7, 8),
        ]);
    }

    #[test]
    fn unknown_cas() {
        let c = OpKind::Cas { expected: Some(1), new: 2 };
        assert_lin(&[put(1, 1, 0, 1), unknown(2, c, 2), get(3, Some(2), 5, 6)]);
        assert_lin(&[put(1, 1, 0, 1), unknown(2, c, 2), get(3, Some(1), 5, 6)]);
        // It can only swap if the expected value is there.
        assert_not_lin(&[put(1, 5, 0, 1), unknown(2, c, 2), get(3, Some(2), 5, 6)]);
    }

    #[test]
    fn unknown_gets_are_ignored() {
        assert_lin(&[put(1, 1, 0, 1), unknown(2, OpKind::Get, 2), get(3, Some(1), 5, 6)]);
    }

    #[test]
    fn duplicate_values() {
        assert_lin(&[put(1, 1, 0, 1), put(1, 2, 2, 3), put(1, 1, 4, 5), get(2, Some(1), 6, 7)]);
        assert_lin(&[put(1, 1, 0, 10), put(2, 1, 0, 10), get(3, Some(1), 2, 3), get(3, Some(1), 11, 12)]);
        assert_not_lin(&[put(1, 1, 0, 1), put(1, 2, 2, 3), put(1, 1, 4, 5), get(2, Some(2), 6, 7)]);
    }

    #[test]
    fn keys_are_checked_independently() {
        let h = vec![
            with_key(put(1, 1, 0, 1), 1),
            with_key(put(1, 2, 2, 3), 2),
            // Would be stale if both ops were on the same key.
            with_key(get(2, Some(1), 4, 5), 1),
            with_key(get(2, Some(2), 6, 7), 2),
        ];
        assert_lin(&h);
        let mut bad = h.clone();
        bad.push(with_key(get(3, None, 8, 9), 2));
        bad.push(with_key(get(3, Some(1), 8, 9), 3));
        match check(&bad) {
            CheckResult::NotLinearizable { key, .. } => assert_eq!(key, 2),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn budget_exhaustion_is_inconclusive() {
        let h: Vec<Operation> = (0..50).map(|i| put(i, i, 0, 100)).collect();
        assert_eq!(check_with_budget(&h, 10), CheckResult::Inconclusive { key: 0 });
        assert_eq!(check(&h), CheckResult::Linearizable);
        // A violation on another key wins over an inconclusive one.
        let mut h2 = h.clone();
        h2.push(with_key(put(1, 1, 0, 1), 5));
        h2.push(with_key(get(1, None, 2, 3), 5));
        assert!(matches!(check_with_budget(&h2, 10), CheckResult::NotLinearizable { key: 5, .. }));
    }

    #[test]
    #[should_panic(expected = "completes before it is invoked")]
    fn complete_before_invoke_panics() {
        check(&[put(1, 1, 5, 4)]);
    }

    #[test]
    #[should_panic(expected = "does not match")]
    fn mismatched_outcome_panics() {
        let mut op = put(1, 1, 0, 1);
        op.outcome = Outcome::Get(None);
        check(&[op]);
    }

    #[test]
    #[should_panic(expected = "must have a completion time")]
    fn known_outcome_without_completion_panics() {
        let mut op = put(1, 1, 0, 1);
        op.complete = None;
        check(&[op]);
    }

    #[test]
    fn many_unknown_writes_stay_tractable() {
        // 60 timed-out writes of values nobody reads, interleaved with a
        // sequential put/get chain; then a stale read at the end. Without
        // dominance pruning the search would be exponential in the number of
        // unknown writes.
        let mut h = Vec::new();
        let mut t = 0;
        for i in 0..60u64 {
            h.push(unknown(100 + i, OpKind::Put { value: 1000 + i }, t));
            h.push(put(1, i, t + 1, t + 2));
            h.push(get(2, Some(i), t + 3, t + 4));
            t += 10;
        }
        let start = Instant::now();
        assert_lin(&h);
        h.push(get(2, Some(3), t, t + 1));
        let explanation = assert_not_lin(&h);
        assert!(explanation.contains("Get -> Some(3)"), "{explanation}");
        assert!(start.elapsed().as_secs() < 10, "took {:?}", start.elapsed());
    }

    // ----- randomized tests -----

    /// The core's deterministic generator, for the non-proptest generators.
    struct Rng(tally_raft::SplitMix64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0.next_u64() % n
        }
    }

    /// Applies `kind` to a real register, returning the observed outcome.
    fn apply_real(reg: &mut Option<u64>, kind: OpKind) -> Outcome {
        match kind {
            OpKind::Put { value } => {
                *reg = Some(value);
                Outcome::Put
            }
            OpKind::Get => Outcome::Get(*reg),
            OpKind::Cas { expected, new } => {
                if *reg == expected {
                    *reg = Some(new);
                    Outcome::Cas(true)
                } else {
                    Outcome::Cas(false)
                }
            }
        }
    }

    fn random_kind(rng: &mut Rng, values: u64) -> OpKind {
        match rng.below(10) {
            0..=3 => OpKind::Put { value: rng.below(values) },
            4..=7 => OpKind::Get,
            _ => OpKind::Cas {
                expected: match rng.below(values + 1) {
                    0 => None,
                    v => Some(v - 1),
                },
                new: rng.below(values),
            },
        }
    }

    /// Simulates `clients` clients issuing `n` ops in total against one
    /// atomic register; each op takes effect at a random instant inside its
    /// interval. A fraction of writes time out (outcome Unknown) and of those
    /// some never take effect.
    fn concurrent_history(seed: u64, n: usize, clients: u64, values: u64) -> Vec<Operation> {
        concurrent_history_with(seed, n, clients, values, 50)
    }

    fn concurrent_history_with(seed: u64, n: usize, clients: u64, values: u64, timeout_one_in: u64) -> Vec<Operation> {
        let mut rng = Rng(tally_raft::SplitMix64::new(seed));
        // (linearization point, op) with outcome filled in later.
        let mut ops: Vec<(u64, bool, Operation)> = Vec::with_capacity(n);
        let mut next_free = vec![0u64; clients as usize];
        for _ in 0..n {
            let c = rng.below(clients);
            let invoke = next_free[c as usize] + rng.below(20);
            let len = 1 + rng.below(60);
            let point = invoke + rng.below(len + 1);
            let complete = invoke + len;
            next_free[c as usize] = complete + 1;
            let kind = random_kind(&mut rng, values);
            let timed_out = kind != OpKind::Get && timeout_one_in > 0 && rng.below(timeout_one_in) == 0;
            let applied = !timed_out || rng.below(2) == 0;
            ops.push((
                point,
                applied,
                Operation {
                    client: c,
                    key: 0,
                    kind,
                    invoke,
                    complete: (!timed_out).then_some(complete),
                    outcome: if timed_out { Outcome::Unknown } else { Outcome::Put },
                },
            ));
        }
        ops.sort_by_key(|(p, _, _)| *p);
        let mut reg = None;
        let mut out = Vec::with_capacity(n);
        for (_, applied, mut op) in ops {
            if applied {
                let o = apply_real(&mut reg, op.kind);
                if op.outcome != Outcome::Unknown {
                    op.outcome = o;
                }
            }
            out.push(op);
        }
        out
    }

    #[test]
    fn large_concurrent_history_is_linearizable_and_fast() {
        for (seed, values) in [(1, 1_000_000), (2, 5), (3, 2)] {
            let h = concurrent_history(seed, 2000, 8, values);
            let start = Instant::now();
            let r = check(&h);
            let elapsed = start.elapsed();
            assert_eq!(r, CheckResult::Linearizable, "seed {seed}");
            assert!(elapsed.as_secs() < 5, "seed {seed} took {elapsed:?}");
        }
    }

    #[test]
    fn large_concurrent_history_with_bad_read_is_caught() {
        // (seed, distinct values, one in how many writes times out)
        for (seed, values, timeout_one_in) in [(7, 1_000_000, 50), (9, 1_000_000, 10), (8, 5, 0)] {
            let mut h = concurrent_history_with(seed, 2000, 8, values, timeout_one_in);
            // Corrupt a read late in the history: the search has to exhaust
            // every way of linearizing the ops before it.
            let idx = (0..h.len()).rev().find(|&i| matches!(h[i].outcome, Outcome::Get(_))).unwrap();
            h[idx].outcome = Outcome::Get(Some(123_456_789));
            let start = Instant::now();
            let explanation = assert_not_lin(&h);
            let elapsed = start.elapsed();
            assert!(explanation.contains("never written"), "{explanation}");
            assert!(elapsed.as_secs() < 5, "seed {seed} took {elapsed:?}");
        }
    }

    // ----- proptests -----

    #[derive(Debug, Clone)]
    struct GenOp {
        key: u64,
        kind: OpKind,
        client: u64,
        widen_before: u64,
        widen_after: u64,
        /// 0: normal; 1: timed out but applied; 2: timed out, never applied.
        fate: u8,
    }

    fn gen_kind() -> impl Strategy<Value = OpKind> {
        prop_oneof![
            (0u64..6).prop_map(|value| OpKind::Put { value }),
            Just(OpKind::Get),
            Just(OpKind::Get),
            (proptest::option::of(0u64..6), 0u64..6).prop_map(|(expected, new)| OpKind::Cas { expected, new }),
        ]
    }

    fn gen_op() -> impl Strategy<Value = GenOp> {
        (0u64..3, gen_kind(), 0u64..6, 0u64..40, 0u64..40, prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)])
            .prop_map(|(key, kind, client, widen_before, widen_after, fate)| GenOp {
                key,
                kind,
                client,
                widen_before,
                widen_after,
                fate,
            })
    }

    /// Executes the ops sequentially against real registers, op i taking
    /// effect at time 10 * (i + 1), then widens each interval around its
    /// linearization point (so intervals overlap, but the generating order
    /// remains a valid linearization).
    fn build_history(gen: &[GenOp]) -> Vec<Operation> {
        let mut regs: BTreeMap<u64, Option<u64>> = BTreeMap::new();
        let mut h = Vec::new();
        for (i, g) in gen.iter().enumerate() {
            let point = 10 * (i as u64 + 1);
            let reg = regs.entry(g.key).or_default();
            let fate = if g.kind == OpKind::Get { 0 } else { g.fate };
            let outcome = if fate == 2 {
                Outcome::Unknown
            } else {
                let o = apply_real(reg, g.kind);
                if fate == 1 {
                    Outcome::Unknown
                } else {
                    o
                }
            };
            h.push(Operation {
                client: g.client,
                key: g.key,
                kind: g.kind,
                invoke: point - g.widen_before.min(point),
                complete: (fate == 0).then_some(point + g.widen_after),
                outcome,
            });
        }
        h
    }

    /// Exhaustive reference checker for tiny single-key histories: tries
    /// every order of every subset that contains all known-outcome ops.
    fn brute_force(h: &[Operation]) -> bool {
        fn go(h: &[Operation], used: &mut Vec<bool>, state: Option<u64>) -> bool {
            if h.iter().zip(used.iter()).all(|(o, &u)| u || o.complete.is_none()) {
                return true;
            }
            for i in 0..h.len() {
                if used[i] {
                    continue;
                }
                // i can go next only if no unused op completed before i began.
                let blocked =
                    h.iter().zip(used.iter()).any(|(o, &u)| !u && o.complete.is_some_and(|c| c < h[i].invoke));
                if blocked {
                    continue;
                }
                let next = match (h[i].kind, h[i].outcome) {
                    (OpKind::Get, Outcome::Unknown) => Some(state),
                    _ => step(&h[i], state),
                };
                if let Some(next) = next {
                    used[i] = true;
                    let ok = go(h, used, next);
                    used[i] = false;
                    if ok {
                        return true;
                    }
                }
            }
            false
        }
        go(h, &mut vec![false; h.len()], None)
    }

    fn gen_arbitrary_op() -> impl Strategy<Value = Operation> {
        (gen_kind(), 0u64..20, 0u64..12, any::<bool>(), proptest::option::of(0u64..4), 0u8..8).prop_map(
            |(kind, invoke, len, swapped, read, unknown_roll)| {
                let unknown = unknown_roll == 0;
                let outcome = if unknown {
                    Outcome::Unknown
                } else {
                    match kind {
                        OpKind::Put { .. } => Outcome::Put,
                        OpKind::Get => Outcome::Get(read),
                        OpKind::Cas { .. } => Outcome::Cas(swapped),
                    }
                };
                Operation { client: 0, key: 0, kind, invoke, complete: (!unknown).then_some(invoke + len), outcome }
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn widened_sequential_histories_are_linearizable(
            gen in proptest::collection::vec(gen_op(), 0..60)
        ) {
            let h = build_history(&gen);
            prop_assert_eq!(check(&h), CheckResult::Linearizable);
        }

        #[test]
        fn corrupted_read_is_not_linearizable(
            gen in proptest::collection::vec(gen_op(), 1..60),
            pick in any::<prop::sample::Index>(),
        ) {
            let mut h = build_history(&gen);
            let gets: Vec<usize> = (0..h.len())
                .filter(|&i| matches!(h[i].outcome, Outcome::Get(_)))
                .collect();
            let idx = if gets.is_empty() {
                // Make sure there is a read to corrupt.
                let t = h.iter().filter_map(|o| o.complete).max().unwrap_or(0);
                h.push(get(0, None, t + 1, t + 2));
                h.len() - 1
            } else {
                gets[pick.index(gets.len())]
            };
            let key = h[idx].key;
            h[idx].outcome = Outcome::Get(Some(1_000_000));
            match check(&h) {
                CheckResult::NotLinearizable { key: k, .. } => prop_assert_eq!(k, key),
                other => prop_assert!(false, "expected NotLinearizable, got {:?}", other),
            }
        }

        #[test]
        fn agrees_with_brute_force(
            h in proptest::collection::vec(gen_arbitrary_op(), 0..7)
        ) {
            let expected = brute_force(&h);
            let got = check(&h);
            prop_assert_eq!(
                got.is_linearizable(),
                expected,
                "checker said {:?}",
                got
            );
            prop_assert!(
                !matches!(got, CheckResult::Inconclusive { .. }),
                "inconclusive"
            );
        }
    }
}
