//! Loopback ports for the clusters tests and examples start. They are taken below the kernel's
//! ephemeral range (32768-60999 by default): a port found free by binding port 0 comes from
//! that range, and under load an outgoing connection could take it before the member bound
//! it, so the member exited at startup ("cannot listen").

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

const FIRST: u32 = 20_000;
const COUNT: u32 = 12_000;

static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);

/// A port that is free now and is handed out once per process.
pub fn free_port() -> u16 {
    // Processes that run at the same time start far apart.
    let start = (std::process::id() % 97) * 120;
    let _ = NEXT.compare_exchange(u32::MAX, start, Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..COUNT {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + COUNT);
}
