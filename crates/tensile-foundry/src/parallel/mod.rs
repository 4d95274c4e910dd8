//! Data parallelism: several processes (ranks) train one model, each on its slice of every
//! global batch, and average their gradients.
//!
//! - [`Collective`] is what the trainer needs from a communication engine: each rank's rank
//!   and the world size, an all-gather and an agreement on a number. [`Solo`] is the
//!   one-process world; [`LocalGroup`] runs ranks as threads of one process (for tests and
//!   for checking a split on one machine); `MpiWorld` (cargo feature `mpi`) is Open MPI or any
//!   MPI, launched with `mpirun -np N` or `srun`.
//! - [`tree`] fixes the order of every sum: the micro-batches of a step are the leaves of one
//!   binary tree whatever the world size, each rank sums whole subtrees, and the ranks' sums
//!   are combined by the same tree. So the gradients, and with them the whole run, are bitwise
//!   the same for every world size, as long as each rank's kernels split their own work alike
//!   (the same threads per rank; docs/foundry.md).

mod local;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod tree;

pub use local::{LocalGroup, LocalRank};

use crate::error::Result;
use std::sync::Arc;
use std::time::Duration;

/// What the trainer needs from a communication engine. Every rank calls the same operations
/// in the same order; a rank that stops calling them (dead, or stuck) must not leave the
/// others waiting forever: engines give up after a timeout, with an error.
pub trait Collective {
    /// This process's rank, from 0.
    fn rank(&self) -> usize;
    /// How many ranks train together.
    fn world_size(&self) -> usize;
    /// Every rank's `local` (all of one length), concatenated in rank order, on every rank.
    fn all_gather_f32(&self, local: &[f32]) -> Result<Vec<f32>>;
    /// [`Collective::all_gather_f32`] for f64 values.
    fn all_gather_f64(&self, local: &[f64]) -> Result<Vec<f64>>;
    /// The largest of the ranks' `value`s, on every rank.
    fn max_u64(&self, value: u64) -> Result<u64> {
        let all = self.all_gather_f64(&[value as f64])?;
        Ok(all.into_iter().fold(0.0, f64::max) as u64)
    }
    /// The engine, for messages (`solo`, `local`, `mpi`).
    fn engine(&self) -> &'static str;
    /// Ends every rank's process at once with `code` (after an error on one rank, so that the
    /// others do not wait for it). The one-process engines do nothing.
    fn abort(&self, _code: i32) {}
}

/// The ranks of a run, as the trainer holds them.
#[derive(Clone)]
pub struct Group(pub Arc<dyn Collective>);

impl Default for Group {
    fn default() -> Self {
        Group(Arc::new(Solo))
    }
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} rank {} of {}", self.0.engine(), self.0.rank(), self.0.world_size())
    }
}

impl Group {
    /// The group this process was launched into: MPI when an MPI or Slurm launcher started
    /// several ranks ([`launched_as`]), else one process alone. A rank waits at most `timeout`
    /// for the others in one exchange.
    ///
    /// # Errors
    /// Several ranks launched but this build has no `mpi` feature, or MPI fails to start.
    pub fn from_environment(timeout: Duration) -> Result<Self> {
        match launched_as(|k| std::env::var(k).ok()) {
            Some((_, size)) if size > 1 => Self::mpi(size, timeout),
            _ => Ok(Self::default()),
        }
    }

    #[cfg(feature = "mpi")]
    fn mpi(_size: usize, timeout: Duration) -> Result<Self> {
        Ok(Group(Arc::new(mpi::MpiWorld::init(timeout)?)))
    }

    #[cfg(not(feature = "mpi"))]
    fn mpi(size: usize, _timeout: Duration) -> Result<Self> {
        Err(crate::error::Error::Invalid {
            field: "launcher",
            reason: format!(
                "launched as one of {size} ranks, but this tensile was built without data parallelism; build it with `cargo build --release -p tensile-cli --features mpi`"
            ),
        })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.0.rank()
    }

    /// How many ranks train together.
    pub fn world_size(&self) -> usize {
        self.0.world_size()
    }
}

/// One process alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct Solo;

impl Collective for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn all_gather_f32(&self, local: &[f32]) -> Result<Vec<f32>> {
        Ok(local.to_vec())
    }
    fn all_gather_f64(&self, local: &[f64]) -> Result<Vec<f64>> {
        Ok(local.to_vec())
    }
    fn engine(&self) -> &'static str {
        "solo"
    }
}

/// The rank and world size an MPI or Slurm launcher gave this process, when one did:
/// `OMPI_COMM_WORLD_RANK`/`_SIZE` (Open MPI's mpirun), `PMI_RANK`/`PMI_SIZE` (MPICH, srun
/// with PMI-2), or `SLURM_PROCID`/`SLURM_NTASKS` (srun).
pub fn launched_as(var: impl Fn(&str) -> Option<String>) -> Option<(usize, usize)> {
    let pair = |r: &str, s: &str| Some((var(r)?.trim().parse().ok()?, var(s)?.trim().parse().ok()?));
    pair("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE").or_else(|| pair("PMI_RANK", "PMI_SIZE")).or_else(|| pair("SLURM_PROCID", "SLURM_NTASKS"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launchers_are_recognised_by_their_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        assert_eq!(launched_as(env(&[("OMPI_COMM_WORLD_RANK", "1"), ("OMPI_COMM_WORLD_SIZE", "4")])), Some((1, 4)));
        assert_eq!(launched_as(env(&[("PMI_RANK", "0"), ("PMI_SIZE", "2")])), Some((0, 2)));
        assert_eq!(launched_as(env(&[("SLURM_PROCID", "3"), ("SLURM_NTASKS", "8")])), Some((3, 8)));
        assert_eq!(launched_as(env(&[("SLURM_PROCID", "x"), ("SLURM_NTASKS", "8")])), None);
        assert_eq!(launched_as(env(&[])), None);
        let solo = Solo;
        assert_eq!((solo.rank(), solo.world_size(), solo.max_u64(7).unwrap()), (0, 1, 7));
        assert_eq!(solo.all_gather_f32(&[1.0, 2.0]).unwrap(), vec![1.0, 2.0]);
    }
}
