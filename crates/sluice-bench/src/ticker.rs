//! A precise wake-up for open-loop producers. Tokio's timers round up to whole milliseconds,
//! which at 10,000 records/s would add up to a millisecond of client-made latency to every
//! record; a thread waiting on a condition variable wakes within tens of microseconds.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

pub struct Ticker {
    state: Mutex<TickerState>,
    changed: Condvar,
    pub fired: Notify,
}

struct TickerState {
    wake_at: Option<Instant>,
    stopped: bool,
}

impl Ticker {
    pub fn start() -> TickerHandle {
        let ticker = Arc::new(Ticker {
            state: Mutex::new(TickerState {
                wake_at: None,
                stopped: false,
            }),
            changed: Condvar::new(),
            fired: Notify::new(),
        });
        let thread_ticker = ticker.clone();
        std::thread::Builder::new()
            .name("bench-ticker".into())
            .spawn(move || thread_ticker.run())
            .expect("spawn ticker thread");
        TickerHandle(ticker)
    }

    /// Fires `fired` at `at` (replacing any earlier request).
    pub fn wake_at(&self, at: Instant) {
        self.state.lock().unwrap().wake_at = Some(at);
        self.changed.notify_one();
    }

    fn stop(&self) {
        self.state.lock().unwrap().stopped = true;
        self.changed.notify_one();
    }

    fn run(&self) {
        let mut state = self.state.lock().unwrap();
        loop {
            if state.stopped {
                return;
            }
            match state.wake_at {
                None => state = self.changed.wait(state).unwrap(),
                Some(at) => {
                    let now = Instant::now();
                    if now >= at {
                        state.wake_at = None;
                        self.fired.notify_one();
                    } else {
                        state = self.changed.wait_timeout(state, at - now).unwrap().0;
                    }
                }
            }
        }
    }
}

/// The producer's handle; dropping it ends the thread.
pub struct TickerHandle(Arc<Ticker>);

impl std::ops::Deref for TickerHandle {
    type Target = Ticker;
    fn deref(&self) -> &Ticker {
        &self.0
    }
}

impl Drop for TickerHandle {
    fn drop(&mut self) {
        self.0.stop();
    }
}
