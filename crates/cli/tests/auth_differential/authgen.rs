//! Seeded random auth sequences over a small pool of users, roles, keys and permissions.
//!
//! A seed starts from a known auth state (its prelude: auth off, the pool's users and roles
//! deleted, root re-made, then users, roles, grants and keys of its own, and auth on in most
//! seeds) and then draws ops. The prelude's answers are compared too. Invariant the prelude
//! relies on: when auth is on, root exists with password `ROOT_PW` (random ops never change it,
//! and etcd refuses to delete root or take its role while auth is on).

use tally_proto::authpb::permission::Type;
use tally_proto::etcdserverpb::{CompactionRequest, DeleteRangeRequest, PutRequest};

use super::gen::Rng;
use super::ops::*;
use super::script::ROOT_PW;

const USERS: [&str; 3] = ["u1", "u2", "u3"];
const ROLES: [&str; 3] = ["r1", "r2", "r3"];
const PASSWORDS: [&str; 2] = ["pwA", "pwB"];
const KEYS: [&str; 5] = ["a", "b", "c/1", "c/2", "d"];

pub struct AuthGen {
    rng: Rng,
    p: String,
    next_lease: i64,
    leases: Vec<i64>,
    /// The run's latest revision (from etcd's answers), for Compact.
    pub revision: i64,
}

impl AuthGen {
    pub fn new(seed: u64) -> AuthGen {
        AuthGen {
            rng: Rng::new(seed ^ 0xa117_0000),
            p: format!("s{seed:05}/"),
            next_lease: 100_000 * (seed as i64 + 1),
            leases: Vec::new(),
            revision: 1,
        }
    }

    fn k(&self, s: &str) -> Vec<u8> {
        format!("{}{s}", self.p).into_bytes()
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.rng.below(xs.len() as u64) as usize]
    }

    /// A user of the pool, now and then root or one that never exists.
    fn some_user(&mut self) -> &'static str {
        match self.rng.below(10) {
            0 => "root",
            1 => "nobody",
            _ => self.pick(&USERS),
        }
    }

    fn some_role(&mut self) -> &'static str {
        match self.rng.below(10) {
            0 => "root",
            1 => "norole",
            _ => self.pick(&ROLES),
        }
    }

    /// A key range: one key, an interval, the prefix `c/`, from a key on (`\0`), or one key
    /// outside the pool.
    fn some_range(&mut self) -> (Vec<u8>, Vec<u8>) {
        let (i, j) = (self.rng.below(5) as usize, self.rng.below(5) as usize);
        match self.rng.below(8) {
            0..=2 => (self.k(KEYS[i]), vec![]),
            3 => (self.k(KEYS[i.min(j)]), self.k(KEYS[i.max(j)])),
            4 => (self.k("c/"), prefix_end(&self.k("c/"))),
            5 => (self.k(KEYS[i]), vec![0]),
            6 => (self.k(""), prefix_end(&self.k(""))),
            _ => (self.k("e"), vec![]),
        }
    }

    fn some_key(&mut self) -> Vec<u8> {
        let i = self.rng.below(5) as usize;
        self.k(KEYS[i])
    }

    fn perm_type(&mut self) -> Type {
        [Type::Read, Type::Write, Type::Readwrite][self.rng.below(3) as usize]
    }

    fn who(&mut self) -> Who {
        match self.rng.below(20) {
            0..=2 => user("root"),
            3..=8 => user("u1"),
            9..=13 => user("u2"),
            14 => user("u3"),
            15..=17 => Who::Anon,
            18 => Who::Bogus("notatoken"),
            _ => Who::Bogus("abcdefghijklmnop.1"),
        }
    }

    /// Admin calls: mostly root, else anyone.
    fn admin(&mut self) -> Who {
        if self.rng.pct(70) {
            user("root")
        } else {
            self.who()
        }
    }

    pub fn prelude(&mut self) -> Vec<Step> {
        let anon = Who::Anon;
        let root = user("root");
        let mut out = Vec::new();
        let mut add = |who: &Who, op: Op| out.push(Step { who: who.clone(), op });
        add(&anon, authenticate("root", ROOT_PW));
        add(&root, Op::AuthDisable);
        for u in USERS {
            add(&anon, user_delete(u));
        }
        for r in ROLES {
            add(&anon, role_delete(r));
        }
        add(&anon, user_add("root", ROOT_PW));
        add(&anon, role_add("root"));
        add(&anon, grant_role("root", "root"));
        for u in USERS {
            if self.rng.pct(20) {
                add(&anon, user_add_no_password(u));
            } else {
                let pw = self.pick(&PASSWORDS);
                add(&anon, user_add(u, pw));
            }
        }
        for r in ROLES {
            add(&anon, role_add(r));
        }
        for _ in 0..self.rng.range(2, 6) {
            let (role, t, (key, end)) = (self.pick(&ROLES), self.perm_type(), self.some_range());
            add(&anon, grant_perm(role, t, &key, &end));
        }
        for _ in 0..self.rng.range(1, 4) {
            let (u, r) = (self.pick(&USERS), self.pick(&ROLES));
            add(&anon, grant_role(u, r));
        }
        for key in KEYS {
            add(&anon, put(&self.k(key), b"init"));
        }
        if self.rng.pct(85) {
            add(&anon, Op::AuthEnable);
        }
        add(&anon, authenticate("root", ROOT_PW));
        for u in USERS {
            let pw = self.pick(&PASSWORDS);
            add(&anon, authenticate(u, pw));
        }
        out
    }

    pub fn next(&mut self) -> Step {
        let n = self.rng.below(100);
        let (who, op) = match n {
            0..=13 => {
                let (key, end) = self.some_range();
                (self.who(), get(&key, &end))
            }
            14..=25 => {
                let key = self.some_key();
                let prev_kv = self.rng.pct(20);
                let lease = if !self.leases.is_empty() && self.rng.pct(25) {
                    self.leases[self.rng.below(self.leases.len() as u64) as usize]
                } else {
                    0
                };
                (self.who(), Op::Put(PutRequest { key, value: b"v".to_vec(), prev_kv, lease, ..Default::default() }))
            }
            26..=30 => {
                let (key, range_end) = self.some_range();
                let prev_kv = self.rng.pct(30);
                (self.who(), Op::Delete(DeleteRangeRequest { key, range_end, prev_kv }))
            }
            31..=38 => {
                let (a, b, c) = (self.some_key(), self.some_key(), self.some_key());
                (self.who(), txn(&a, &b, &c))
            }
            39..=40 => (self.who(), Op::Compact(CompactionRequest { revision: self.revision, physical: false })),
            41..=43 => {
                self.next_lease += 1;
                self.leases.push(self.next_lease);
                (self.who(), lease_grant(self.next_lease))
            }
            44..=46 => {
                let id = self.leases.get(self.rng.below(self.leases.len() as u64 + 1) as usize).copied();
                (self.who(), lease_revoke(id.unwrap_or(1)))
            }
            47..=48 => {
                let id = self.leases.get(self.rng.below(self.leases.len() as u64 + 1) as usize).copied();
                (self.who(), lease_ttl(id.unwrap_or(1)))
            }
            49..=53 => {
                let (key, end) = self.some_range();
                (self.who(), watch(&key, &end))
            }
            54..=57 => {
                let ops =
                    [Op::Status, Op::AlarmList, Op::Hash, Op::HashKv, Op::Defragment, Op::Snapshot, Op::MemberList];
                (self.who(), ops[self.rng.below(ops.len() as u64) as usize].clone())
            }
            58..=64 => {
                let (u, pw) = (self.some_user(), self.pick(&PASSWORDS));
                let pw = if u == "root" { ROOT_PW } else { pw };
                (Who::Anon, authenticate(u, pw))
            }
            65..=66 => (self.who(), Op::AuthStatus),
            67..=68 => (self.admin(), Op::AuthEnable),
            69..=70 => (self.admin(), Op::AuthDisable),
            71..=72 => {
                let (u, pw) = (self.pick(&USERS), self.pick(&PASSWORDS));
                (self.admin(), user_add(u, pw))
            }
            73..=74 => {
                let u = self.some_user();
                (self.who(), user_get(u))
            }
            75 => (self.admin(), Op::UserList),
            76 => {
                // root only when auth is off (then the prelude re-makes it): etcd refuses it
                // while auth is on, and that refusal is compared too.
                let u = self.some_user();
                (self.admin(), user_delete(u))
            }
            77..=78 => {
                let (u, pw) = (self.pick(&USERS), self.pick(&PASSWORDS));
                (self.admin(), user_passwd(u, pw))
            }
            79..=82 => {
                let (u, r) = (self.some_user(), self.some_role());
                (self.admin(), grant_role(u, r))
            }
            83..=85 => {
                // root's own root role too: refused while auth is on, else the prelude re-grants it.
                let (u, r) = (self.some_user(), self.some_role());
                (self.admin(), revoke_role(u, r))
            }
            86 => {
                let r = self.some_role();
                (self.admin(), role_add(r))
            }
            87..=88 => {
                let r = self.some_role();
                (self.who(), role_get(r))
            }
            89 => (self.admin(), Op::RoleList),
            90 => {
                let r = self.pick(&ROLES);
                (self.admin(), role_delete(r))
            }
            91..=95 => {
                let (r, t, (key, end)) = (self.some_role(), self.perm_type(), self.some_range());
                (self.admin(), grant_perm(r, t, &key, &end))
            }
            _ => {
                let (r, (key, end)) = (self.some_role(), self.some_range());
                (self.admin(), revoke_perm(r, &key, &end))
            }
        };
        Step { who, op }
    }
}
