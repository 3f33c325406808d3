//! The live view of Raft in a real browser: runs `tests/ui/run.sh` with this build's `tally`
//! binary. The script starts `tally dev`, drives its page in headless Chromium through
//! Playwright (kill the leader, partition a follower, partition the leader, ...), checks what
//! the page shows after each click, and saves a screenshot per scenario in
//! `target/ui-screenshots`. It installs Chromium and playwright-core when they are missing.

mod support;

#[test]
fn live_view_in_chromium() {
    support::run_client_suite("tests/ui/run.sh");
}
