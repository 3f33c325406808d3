//! The thread that writes the member's log while the driver goes on (see `tally_node`'s
//! `log_writes`): it takes every write queued by the time it starts, makes them durable with
//! one fsync, and nudges the driver to take the results.

use std::sync::mpsc::{self, Receiver, Sender};

use tally_node::{LogWrite, LogWritten};
use tally_storage::fs::RealFs;

use super::inbox::Nudge;

pub struct LogWriter {
    queue: Sender<LogWrite<RealFs>>,
    written: Receiver<LogWritten>,
    /// Writes handed over whose results were not taken yet.
    in_flight: usize,
}

impl LogWriter {
    /// Starts the writer thread; it ends when the `LogWriter` is dropped.
    pub fn spawn(nudge: Nudge) -> std::io::Result<Self> {
        let (queue, queued) = mpsc::channel::<LogWrite<RealFs>>();
        let (done, written) = mpsc::channel();
        std::thread::Builder::new().name("wal-writer".into()).spawn(move || {
            while let Ok(first) = queued.recv() {
                let batch: Vec<_> = std::iter::once(first).chain(queued.try_iter()).collect();
                for result in LogWrite::run_all(batch) {
                    if done.send(result).is_err() {
                        return;
                    }
                }
                nudge.nudge();
            }
        })?;
        Ok(Self { queue, written, in_flight: 0 })
    }

    pub fn write(&mut self, write: LogWrite<RealFs>) {
        // The thread ends only with this handle, or by a panic the process ends with.
        self.queue.send(write).expect("the log writer runs");
        self.in_flight += 1;
    }

    /// The results written so far, in order.
    pub fn take_written(&mut self) -> Vec<LogWritten> {
        let taken: Vec<LogWritten> = self.written.try_iter().collect();
        self.in_flight -= taken.len();
        taken
    }

    /// Waits for every write handed over; returns their results, in order.
    pub fn finish(&mut self) -> Vec<LogWritten> {
        let finished: Vec<LogWritten> =
            (0..self.in_flight).map(|_| self.written.recv().expect("the log writer runs")).collect();
        self.in_flight = 0;
        finished
    }
}
