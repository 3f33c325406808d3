//! Loopback ports for etcd. They are taken below the kernel's ephemeral range (32768 and up):
//! a port found free there could be taken by an outgoing connection before etcd binds it.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

const FIRST: u32 = 20_000;
const COUNT: u32 = 12_000;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A port that is free now; each is handed out once per process, and processes running at
/// the same time start far apart.
pub fn free_port() -> u16 {
    let start = (std::process::id() % 97) * 120 + 60;
    for _ in 0..COUNT {
        let port = (FIRST + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + COUNT);
}
