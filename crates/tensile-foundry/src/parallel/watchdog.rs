//! Ends a rank stuck in an exchange that cannot time out by itself (an MPI collective, an NCCL
//! kernel waiting for a dead peer): the others are then told by their launcher or by their
//! own timeouts, instead of the job hanging until someone notices.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A thread that aborts the process when one [`Watchdog::watch`]ed call runs longer than the
/// timeout.
pub(crate) struct Watchdog {
    /// Milliseconds since `epoch` when the watched call started; 0 when none runs.
    busy_since: Arc<AtomicU64>,
    epoch: Instant,
}

impl Watchdog {
    /// Starts the watching thread for rank `rank`.
    pub(crate) fn start(rank: usize, timeout: Duration) -> Self {
        let busy_since = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        let watched = busy_since.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(500).min(timeout));
            let since = watched.load(Ordering::Relaxed);
            if since != 0 && epoch.elapsed().as_millis() as u64 > since + timeout.as_millis() as u64 {
                eprintln!("error: rank {rank}: no answer from the other ranks for {timeout:?} (one died or is stuck); stopping");
                std::process::abort();
            }
        });
        Watchdog { busy_since, epoch }
    }

    /// Runs `f` under watch.
    pub(crate) fn watch<T>(&self, f: impl FnOnce() -> T) -> T {
        self.busy_since.store((self.epoch.elapsed().as_millis() as u64).max(1), Ordering::Relaxed);
        let out = f();
        self.busy_since.store(0, Ordering::Relaxed);
        out
    }
}
