//! How this process was started as one rank of several: read from the variables a launcher
//! sets, so that `mpirun`, `srun` and `torchrun --no-python` all start a data-parallel run
//! without flags of tensile's own.

use crate::error::{Error, Result};

/// Which launcher's variables were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// `torchrun --no-python` (or anything else setting PyTorch's `env://` variables:
    /// `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`).
    Torchrun,
    /// Open MPI's `mpirun` (`OMPI_COMM_WORLD_*`), or MPICH and `srun --mpi=pmi2` (`PMI_*`).
    Mpi,
    /// Plain `srun` (`SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`).
    Slurm,
}

/// This process's place among the ranks a launcher started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// Whose variables these are.
    pub launcher: Launcher,
    /// This process's rank, from 0.
    pub rank: usize,
    /// How many ranks the launcher started.
    pub world_size: usize,
    /// The rank among those on this machine, when the launcher says; it picks the GPU.
    pub local_rank: Option<usize>,
    /// `MASTER_ADDR` and `MASTER_PORT`, when set: where rank 0 listens for the others (the
    /// rendezvous of the `tcp` and `nccl` engines).
    pub master: Option<(String, u16)>,
}

impl Launch {
    /// The launch described by this process's environment; `None` when no launcher's
    /// variables are set (one process alone).
    ///
    /// # Errors
    /// A variable that is set but malformed (not a number, a rank outside the world, a port
    /// outside 1–65535): a launch gone wrong must not quietly train alone.
    pub fn from_env() -> Result<Option<Self>> {
        Self::read(|k| std::env::var(k).ok())
    }

    /// [`Launch::from_env`] over any source of variables (for tests).
    ///
    /// The first launcher whose rank and size are both set wins, in the order torchrun, Open
    /// MPI, PMI, Slurm: torchrun and mpirun are often run inside a Slurm allocation, whose
    /// variables then describe the allocation's one batch task, not this process.
    ///
    /// # Errors
    /// As [`Launch::from_env`].
    pub fn read(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let number = |name: &'static str| -> Result<Option<usize>> {
            match var(name) {
                None => Ok(None),
                Some(v) => v.trim().parse().map(Some).map_err(|_| Error::Invalid { field: "launcher", reason: format!("{name} is `{v}`, not a whole number") }),
            }
        };
        let candidates: [(Launcher, &str, &str, &[&str]); 4] = [
            (Launcher::Torchrun, "RANK", "WORLD_SIZE", &["LOCAL_RANK"]),
            (Launcher::Mpi, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", &["OMPI_COMM_WORLD_LOCAL_RANK"]),
            (Launcher::Mpi, "PMI_RANK", "PMI_SIZE", &["MPI_LOCALRANKID", "SLURM_LOCALID"]),
            (Launcher::Slurm, "SLURM_PROCID", "SLURM_NTASKS", &["SLURM_LOCALID"]),
        ];
        for (launcher, rank_var, size_var, local_vars) in candidates {
            let (Some(rank), Some(world_size)) = (number(rank_var)?, number(size_var)?) else { continue };
            if world_size == 0 || rank >= world_size {
                return Err(Error::Invalid { field: "launcher", reason: format!("{rank_var} is {rank} but {size_var} is {world_size}") });
            }
            let mut local_rank = None;
            for name in local_vars {
                if let Some(l) = number(name)? {
                    local_rank = Some(l);
                    break;
                }
            }
            let master = match (var("MASTER_ADDR"), number("MASTER_PORT")?) {
                (Some(host), Some(port)) if !host.trim().is_empty() => match u16::try_from(port) {
                    Ok(p) if p > 0 => Some((host.trim().to_string(), p)),
                    _ => return Err(Error::Invalid { field: "launcher", reason: format!("MASTER_PORT is {port}, not a port (1-65535)") }),
                },
                _ => None,
            };
            return Ok(Some(Launch { launcher, rank, world_size, local_rank, master }));
        }
        Ok(None)
    }

    /// The device this rank trains on when `asked` was: a bare `cuda` becomes `cuda:LOCAL_RANK`,
    /// so that the ranks on one machine each take their own GPU (as torchrun's users expect);
    /// anything else is kept.
    pub fn device_name(&self, asked: &str) -> String {
        match (asked.trim(), self.local_rank) {
            ("cuda", Some(local)) => format!("cuda:{local}"),
            _ => asked.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn each_launcher_is_recognised_by_its_variables() {
        let torch =
            Launch::read(env(&[("RANK", "1"), ("WORLD_SIZE", "4"), ("LOCAL_RANK", "1"), ("MASTER_ADDR", "node7"), ("MASTER_PORT", "29500")])).unwrap().unwrap();
        assert_eq!(torch, Launch { launcher: Launcher::Torchrun, rank: 1, world_size: 4, local_rank: Some(1), master: Some(("node7".into(), 29500)) });
        let ompi = Launch::read(env(&[("OMPI_COMM_WORLD_RANK", "1"), ("OMPI_COMM_WORLD_SIZE", "4"), ("OMPI_COMM_WORLD_LOCAL_RANK", "0")])).unwrap().unwrap();
        assert_eq!((ompi.launcher, ompi.rank, ompi.world_size, ompi.local_rank, ompi.master), (Launcher::Mpi, 1, 4, Some(0), None));
        let pmi = Launch::read(env(&[("PMI_RANK", "0"), ("PMI_SIZE", "2"), ("SLURM_LOCALID", "0")])).unwrap().unwrap();
        assert_eq!((pmi.launcher, pmi.rank, pmi.world_size, pmi.local_rank), (Launcher::Mpi, 0, 2, Some(0)));
        let slurm = Launch::read(env(&[("SLURM_PROCID", "3"), ("SLURM_NTASKS", "8"), ("SLURM_LOCALID", "1")])).unwrap().unwrap();
        assert_eq!((slurm.launcher, slurm.rank, slurm.world_size, slurm.local_rank), (Launcher::Slurm, 3, 8, Some(1)));
        assert_eq!(Launch::read(env(&[])).unwrap(), None);
        // A rank without its size is no launch.
        assert_eq!(Launch::read(env(&[("RANK", "0")])).unwrap(), None);
    }

    #[test]
    fn torchrun_inside_a_slurm_allocation_is_torchrun() {
        let l = Launch::read(env(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "1"), ("RANK", "2"), ("WORLD_SIZE", "3")])).unwrap().unwrap();
        assert_eq!((l.launcher, l.rank, l.world_size), (Launcher::Torchrun, 2, 3));
        let l =
            Launch::read(env(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "1"), ("OMPI_COMM_WORLD_RANK", "1"), ("OMPI_COMM_WORLD_SIZE", "2")])).unwrap().unwrap();
        assert_eq!((l.launcher, l.rank), (Launcher::Mpi, 1));
    }

    #[test]
    fn a_malformed_launch_is_an_error_naming_the_variable() {
        let message = |pairs| Launch::read(env(pairs)).unwrap_err().to_string();
        assert!(message(&[("RANK", "x"), ("WORLD_SIZE", "2")]).contains("RANK is `x`"));
        assert!(message(&[("RANK", "2"), ("WORLD_SIZE", "2")]).contains("RANK is 2 but WORLD_SIZE is 2"));
        assert!(message(&[("RANK", "0"), ("WORLD_SIZE", "0")]).contains("WORLD_SIZE is 0"));
        assert!(message(&[("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "70000")]).contains("MASTER_PORT is 70000"));
        assert!(message(&[("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "0")]).contains("MASTER_PORT is 0"));
        // A master address without a port (or the reverse) is no rendezvous, not an error.
        assert_eq!(Launch::read(env(&[("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h")])).unwrap().unwrap().master, None);
    }

    #[test]
    fn a_bare_cuda_device_takes_the_local_rank() {
        let mut l = Launch { launcher: Launcher::Torchrun, rank: 5, world_size: 8, local_rank: Some(1), master: None };
        assert_eq!(l.device_name("cuda"), "cuda:1");
        assert_eq!(l.device_name("cuda:0"), "cuda:0");
        assert_eq!(l.device_name("cpu"), "cpu");
        l.local_rank = None;
        assert_eq!(l.device_name("cuda"), "cuda");
    }
}
