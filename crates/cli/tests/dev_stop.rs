//! `tally dev` stops its members on SIGTERM, what `kill`, `timeout`, supervisors and test
//! harnesses send, not only on Ctrl-C, and when it is killed outright: before, `kill <pid of
//! tally dev>` left every member running and holding its ports.

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// A client port P below 5535 (`tally dev`'s range) with P and P+1 free; each call (the tests
/// run in parallel) starts its search elsewhere.
fn free_low_port() -> u16 {
    static CALLS: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() as u16).wrapping_add(CALLS.fetch_add(1, Ordering::Relaxed).wrapping_mul(1231));
    (0..2000u16)
        .map(|i| 3000 + (seed.wrapping_add(i * 7) % 2500))
        .find(|&p| [p, p + 1, p - 198].iter().all(|&port| TcpListener::bind(("127.0.0.1", port)).is_ok()))
        .expect("a free pair of ports between 3000 and 5500")
}

fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A one-member `tally dev` in `dir`, once its member serves: (the process, its client port).
fn start_dev(dir: &std::path::Path) -> (std::process::Child, u16) {
    let port = free_low_port();
    let dev = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["dev", "--nodes", "1", "--client-port", &port.to_string()])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tally dev");
    wait_until("the member serves its client port", Duration::from_secs(20), || accepts(port));
    (dev, port)
}

#[test]
fn sigterm_stops_tally_dev_and_its_members() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut dev, port) = start_dev(dir.path());

    let status = Command::new("kill").args(["-TERM", &dev.id().to_string()]).status().expect("run kill");
    assert!(status.success());
    wait_until("tally dev exits", Duration::from_secs(10), || dev.try_wait().expect("try_wait").is_some());
    wait_until("the member is stopped (its port closed)", Duration::from_secs(10), || !accepts(port));
}

#[test]
fn members_stop_when_tally_dev_is_killed_outright() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut dev, port) = start_dev(dir.path());
    dev.kill().expect("SIGKILL tally dev"); // no handler can run
    dev.wait().expect("reap tally dev");
    wait_until("the member is stopped (its port closed)", Duration::from_secs(10), || !accepts(port));
}
