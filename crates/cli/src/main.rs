//! The `tally` binary. For now it only names what is coming: the server, `tally dev` and the
//! client commands arrive with the node (issue 4). The simulator is `tally-sim`.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "tally {}: the server and client commands are not built yet.\n\
         Run the consensus simulator instead: cargo run --release -p tally-sim -- --seeds 1000",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(2)
}
