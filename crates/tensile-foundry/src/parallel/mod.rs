//! Data parallelism: several processes (ranks) train one model, each on its slice of every
//! global batch, and average their gradients.
//!
//! - [`Collective`] is what the trainer needs from a communication engine: each rank's rank
//!   and the world size, an all-gather and an agreement on a number. [`Solo`] is the
//!   one-process world; [`LocalGroup`] runs ranks as threads of one process (for tests and
//!   for checking a split on one machine); [`TcpGroup`] is ranks meeting at
//!   `MASTER_ADDR:MASTER_PORT` (`torchrun --no-python`, or `srun` with those set); `MpiWorld`
//!   (cargo feature `mpi`) is Open MPI or any MPI, launched with `mpirun -np N` or `srun`;
//!   `NcclGroup` (cargo feature `nccl`) is NCCL between CUDA GPUs.
//! - [`Launch`] reads which launcher started this process, and [`Group::join`] picks the
//!   engine from it and the device.
//! - [`tree`] fixes the order of every sum: the micro-batches of a step are the leaves of one
//!   binary tree whatever the world size, each rank sums whole subtrees, and the ranks' sums
//!   are combined by the same tree. So the gradients, and with them the whole run, are bitwise
//!   the same for every world size, as long as each rank's kernels split their own work alike
//!   (the same threads per rank; docs/foundry.md).

mod launch;
mod local;
#[cfg(feature = "mpi")]
pub mod mpi;
#[cfg(feature = "nccl")]
pub mod nccl;
mod tcp;
pub mod tree;
#[cfg(any(feature = "mpi", feature = "nccl"))]
mod watchdog;

pub use launch::{Launch, Launcher};
pub use local::{LocalGroup, LocalRank};
pub use tcp::TcpGroup;

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
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
    /// Every rank's `local` (one-dimensional f32, all of one length), concatenated in rank
    /// order, on `local`'s device. The default goes through host memory; an engine that can
    /// exchange device memory directly (NCCL) keeps the gradients on the GPU.
    fn all_gather_tensor(&self, local: &Tensor) -> Result<Tensor> {
        let host = local.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let all = self.all_gather_f32(&host)?;
        let n = all.len();
        Ok(Tensor::from_vec(all, n, local.device())?)
    }
    /// The largest of the ranks' `value`s, on every rank.
    fn max_u64(&self, value: u64) -> Result<u64> {
        let all = self.all_gather_f64(&[value as f64])?;
        Ok(all.into_iter().fold(0.0, f64::max) as u64)
    }
    /// The engine, for messages (`solo`, `local`, `tcp`, `mpi`, `nccl`).
    fn engine(&self) -> &'static str;
    /// Stops the run on every rank at once after an error on this one, so that the others do
    /// not wait for it: MPI ends every process with `code`; the TCP and NCCL engines close
    /// their connections, so that the others' waits end with an error at once. The
    /// one-process engines do nothing.
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
    /// The group `launch` describes, training on `device`; one process alone without a launch
    /// (or with a world of one). The engine follows from the two:
    ///
    /// | device | launched by | engine |
    /// |---|---|---|
    /// | CUDA | any, with `MASTER_ADDR`/`MASTER_PORT` | NCCL (feature `nccl`) |
    /// | CPU | `mpirun`, or `srun` without `MASTER_ADDR` | MPI (feature `mpi`) |
    /// | CPU | `torchrun`, or `srun` with `MASTER_ADDR`/`MASTER_PORT` | TCP |
    ///
    /// A rank waits at most `timeout` for the others to join, and then in one exchange.
    ///
    /// # Errors
    /// The engine needs a feature this build lacks, a rendezvous address is missing, or the
    /// engine fails to start (the others did not join in time, the port is taken).
    pub fn join(launch: Option<&Launch>, device: &Device, timeout: Duration) -> Result<Self> {
        let Some(launch) = launch.filter(|l| l.world_size > 1) else { return Ok(Self::default()) };
        if device.is_cuda() {
            return Self::nccl(launch, device, timeout);
        }
        match (launch.launcher, &launch.master) {
            (Launcher::Mpi, _) | (Launcher::Slurm, None) => Self::mpi(launch.world_size, timeout),
            (_, Some((host, port))) => Ok(Group(Arc::new(TcpGroup::join(launch.rank, launch.world_size, host, *port, timeout)?))),
            (Launcher::Torchrun, None) => Err(rendezvous_missing(launch)),
        }
    }

    #[cfg(feature = "mpi")]
    fn mpi(_size: usize, timeout: Duration) -> Result<Self> {
        Ok(Group(Arc::new(mpi::MpiWorld::init(timeout)?)))
    }

    #[cfg(not(feature = "mpi"))]
    fn mpi(size: usize, _timeout: Duration) -> Result<Self> {
        Err(Error::Invalid {
            field: "launcher",
            reason: format!(
                "launched by MPI or srun as one of {size} ranks, but this tensile was built without MPI; build it with `cargo build --release -p tensile-cli --features mpi`, or launch with torchrun (or set MASTER_ADDR and MASTER_PORT for srun)"
            ),
        })
    }

    // NCCL's communicator is neither Send nor Sync; the group stays on the thread that made
    // it, and Arc keeps `Group` one type for every engine.
    #[cfg(feature = "nccl")]
    #[allow(clippy::arc_with_non_send_sync)]
    fn nccl(launch: &Launch, device: &Device, timeout: Duration) -> Result<Self> {
        let Some((host, port)) = &launch.master else { return Err(rendezvous_missing(launch)) };
        Ok(Group(Arc::new(nccl::NcclGroup::init(launch.rank, launch.world_size, (host, *port), device, timeout)?)))
    }

    #[cfg(not(feature = "nccl"))]
    fn nccl(launch: &Launch, _device: &Device, _timeout: Duration) -> Result<Self> {
        Err(Error::Invalid {
            field: "launcher",
            reason: format!(
                "launched as one of {} ranks on a CUDA device, but this tensile was built without NCCL; build it with `cargo build --release -p tensile-cli --features nccl`",
                launch.world_size
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

fn rendezvous_missing(launch: &Launch) -> Error {
    Error::Invalid {
        field: "launcher",
        reason: format!(
            "launched as rank {} of {}, but MASTER_ADDR and MASTER_PORT (where rank 0 listens for the others) are not both set",
            launch.rank, launch.world_size
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solo_is_one_process() {
        let solo = Solo;
        assert_eq!((solo.rank(), solo.world_size(), solo.max_u64(7).unwrap(), solo.engine()), (0, 1, 7, "solo"));
        assert_eq!(solo.all_gather_f32(&[1.0, 2.0]).unwrap(), vec![1.0, 2.0]);
        let t = Tensor::new(&[1f32, 2.0], &Device::Cpu).unwrap();
        assert_eq!(solo.all_gather_tensor(&t).unwrap().to_vec1::<f32>().unwrap(), vec![1.0, 2.0]);
    }

    fn launch(launcher: Launcher, master: Option<(&str, u16)>) -> Launch {
        Launch { launcher, rank: 1, world_size: 2, local_rank: Some(0), master: master.map(|(h, p)| (h.to_string(), p)) }
    }

    #[test]
    fn the_engine_follows_from_the_launcher_and_the_device() {
        let t = Duration::from_millis(200);
        assert_eq!(Group::join(None, &Device::Cpu, t).unwrap().0.engine(), "solo");
        let one = Launch { world_size: 1, rank: 0, ..launch(Launcher::Torchrun, None) };
        assert_eq!(Group::join(Some(&one), &Device::Cpu, t).unwrap().0.engine(), "solo");
        let message = Group::join(Some(&launch(Launcher::Torchrun, None)), &Device::Cpu, t).err().unwrap().to_string();
        assert!(message.contains("MASTER_ADDR and MASTER_PORT"), "{message}");
        // torchrun (or srun with a rendezvous) on CPU is the TCP engine: rank 1 looks for rank 0
        // there (and, nobody listening, gives up after the timeout).
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        for l in [launch(Launcher::Torchrun, Some(("127.0.0.1", free))), launch(Launcher::Slurm, Some(("127.0.0.1", free)))] {
            let message = Group::join(Some(&l), &Device::Cpu, t).err().unwrap().to_string();
            assert!(message.contains("rank 1: rank 0 did not answer"), "{message}");
        }
        #[cfg(not(feature = "mpi"))]
        for l in [launch(Launcher::Mpi, None), launch(Launcher::Slurm, None)] {
            let message = Group::join(Some(&l), &Device::Cpu, t).err().unwrap().to_string();
            assert!(message.contains("--features mpi"), "{message}");
        }
    }
}
