//! The driver's inbox: the channel other threads hand it inputs through, and the peer
//! connections it reads itself (`peer::direct`), waited on in one epoll so that either wakes
//! the driver's thread directly.

use std::io;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use mio::{Events, Poll, Registry, Token, Waker};

use super::Input;

/// The waker's token; the peer connections take the others.
const WAKER: Token = Token(0);
/// Readiness events taken per wait.
const EVENTS_MAX: usize = 64;

/// How another thread hands the driver an input.
#[derive(Clone)]
pub struct InputSender {
    tx: Sender<Input>,
    wake: Arc<Wake>,
}

struct Wake {
    waker: Waker,
    /// The driver waits, or is about to: the next input must wake it.
    parked: AtomicBool,
}

impl InputSender {
    /// Queues `input`, waking the driver if it waits. Fails once the driver stopped.
    pub fn send(&self, input: Input) -> Result<(), Disconnected> {
        self.tx.send(input).map_err(|_| Disconnected)?;
        // Pairs with the driver's fence: it sees the input, or this sees it parked.
        fence(Ordering::SeqCst);
        // Only the first input after the driver parked pays for the wake-up's syscall.
        if self.wake.parked.load(Ordering::Relaxed) && self.wake.parked.swap(false, Ordering::Relaxed) {
            // Fails only when the driver's epoll is gone, with the driver.
            let _ = self.wake.waker.wake();
        }
        Ok(())
    }

    /// Queues `input` without waking the driver: it is taken in the driver's next turn,
    /// whatever wakes it. Fails once the driver stopped.
    pub fn queue(&self, input: Input) -> Result<(), Disconnected> {
        self.tx.send(input).map_err(|_| Disconnected)
    }
}

/// The driver's side.
pub struct Inbox {
    rx: Receiver<Input>,
    wake: Arc<Wake>,
    poll: Poll,
    events: Events,
    /// An input taken while checking for one before waiting.
    early: Option<Input>,
}

/// The driver stopped, or (to the driver) every sender is gone: the process is stopping.
#[derive(Debug)]
pub struct Disconnected;

pub fn inbox() -> io::Result<(InputSender, Inbox)> {
    let (tx, rx) = mpsc::channel();
    let poll = Poll::new()?;
    let wake = Arc::new(Wake { waker: Waker::new(poll.registry(), WAKER)?, parked: AtomicBool::new(false) });
    let inbox = Inbox { rx, wake: wake.clone(), poll, events: Events::with_capacity(EVENTS_MAX), early: None };
    Ok((InputSender { tx, wake }, inbox))
}

impl Inbox {
    /// Where the peer connections register.
    pub fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// Waits until an input is queued, a registered connection is readable, or `timeout`
    /// passes (it never blocks with an input queued). The readable connections' tokens are
    /// added to `readable`.
    pub fn wait(&mut self, timeout: Duration, readable: &mut Vec<Token>) -> Result<(), Disconnected> {
        self.wake.parked.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        // An input sent before `parked` was set woke nobody: look for one first.
        let timeout = match self.rx.try_recv() {
            Ok(input) => {
                self.early = Some(input);
                Duration::ZERO
            }
            Err(TryRecvError::Empty) => timeout,
            Err(TryRecvError::Disconnected) => return Err(Disconnected),
        };
        let polled = self.poll.poll(&mut self.events, Some(timeout));
        self.wake.parked.store(false, Ordering::Relaxed);
        match polled {
            Ok(()) => readable.extend(self.events.iter().map(|e| e.token()).filter(|t| *t != WAKER)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("waiting on the driver's epoll: {e}"),
        }
        Ok(())
    }

    /// The oldest input queued, if any.
    pub fn next_input(&mut self) -> Option<Input> {
        self.early.take().or_else(|| self.rx.try_recv().ok())
    }
}
