//! MPI as the [`Collective`] of a data-parallel run (cargo feature `mpi`): Open MPI's
//! `mpirun -np N`, or `srun` under Slurm.
//!
//! Only the main thread calls MPI. A rank that stops answering must not leave the others
//! waiting: mpirun ends the job when a process exits with an error, the command line ends
//! every error on a rank with [`Collective::abort`], a panic aborts on its way out
//! (unwinding would otherwise run `MPI_Finalize`, which waits for ranks still in a
//! collective: the job hung), and a watchdog ends a rank that has waited on the others
//! longer than the timeout.

use super::watchdog::Watchdog;
use super::Collective;
use crate::error::{Error, Result};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;
use std::time::Duration;

/// This process's place in the MPI world.
pub struct MpiWorld {
    // Dropped first: aborts the job when unwinding from a panic, before the universe's drop
    // would finalize MPI and wait.
    _panic_guard: PanicGuard,
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    watchdog: Watchdog,
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
        let watchdog = Watchdog::start(rank, timeout);
        Ok(Self { _panic_guard: PanicGuard, world, rank, size, watchdog, _universe: universe })
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
        self.watchdog.watch(|| self.world.all_gather_into(local, &mut out[..]));
        Ok(out)
    }
    fn all_gather_f64(&self, local: &[f64]) -> Result<Vec<f64>> {
        let mut out = vec![0f64; local.len() * self.size];
        self.watchdog.watch(|| self.world.all_gather_into(local, &mut out[..]));
        Ok(out)
    }
    fn engine(&self) -> &'static str {
        "mpi"
    }
    fn abort(&self, code: i32) {
        self.world.abort(code)
    }
}
