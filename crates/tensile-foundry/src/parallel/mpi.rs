//! MPI as the [`Collective`] of a data-parallel run (cargo feature `mpi`): Open MPI's
//! `mpirun -np N`, or `srun` under Slurm.
//!
//! Only the main thread calls MPI. A rank that stops answering must not leave the others
//! waiting: mpirun ends the job when a process exits with an error, the command line ends
//! every error on a rank with [`Collective::abort`], a panic aborts on its way out (unwinding would otherwise run
//! `MPI_Finalize`, which waits for ranks still in a collective: the job hung), and a watchdog
//! ends a rank that has waited on the others longer than the timeout.

use super::Collective;
use crate::error::{Error, Result};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// This process's place in the MPI world.
pub struct MpiWorld {
    // Dropped first: aborts the job when unwinding from a panic, before the universe's drop
    // would finalize MPI and wait.
    _panic_guard: PanicGuard,
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    /// Milliseconds since `epoch` when the current collective started; 0 when none runs.
    busy_since: Arc<AtomicU64>,
    epoch: Instant,
    _universe: mpi::environment::Universe,
}

struct PanicGuard;

impl Drop for PanicGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("a rank panicked; aborting the job");
            SimpleCommunicator::world().abort(101);
        }
    }
}

impl MpiWorld {
    /// Initialises MPI, and starts a watchdog that ends this process (and with it, through
    /// the launcher, the job) after `timeout` in one collective.
    ///
    /// # Errors
    /// MPI already initialised, or not available.
    pub fn init(timeout: Duration) -> Result<Self> {
        let universe = mpi::initialize().ok_or_else(|| Error::Collective { rank: 0, reason: "MPI could not be initialised (or was already)".into() })?;
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
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
        Ok(Self { _panic_guard: PanicGuard, world, rank, size, busy_since, epoch, _universe: universe })
    }

    fn watched<T>(&self, f: impl FnOnce() -> T) -> T {
        self.busy_since.store((self.epoch.elapsed().as_millis() as u64).max(1), Ordering::Relaxed);
        let out = f();
        self.busy_since.store(0, Ordering::Relaxed);
        out
    }
}

impl Collective for MpiWorld {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.size
    }
    fn all_gather_f32(&self, local: &[f32]) -> Result<Vec<f32>> {
        let mut out = vec![0f32; local.len() * self.size];
        self.watched(|| self.world.all_gather_into(local, &mut out[..]));
        Ok(out)
    }
    fn all_gather_f64(&self, local: &[f64]) -> Result<Vec<f64>> {
        let mut out = vec![0f64; local.len() * self.size];
        self.watched(|| self.world.all_gather_into(local, &mut out[..]));
        Ok(out)
    }
    fn engine(&self) -> &'static str {
        "mpi"
    }
    fn abort(&self, code: i32) {
        self.world.abort(code)
    }
}
