//! NCCL between CUDA GPUs as the [`Collective`] of a data-parallel run (cargo feature `nccl`),
//! through cudarc's bindings, the ones candle's own multi-GPU examples use.
//!
//! The ranks first meet over TCP at `MASTER_ADDR:MASTER_PORT` ([`TcpGroup`], as torchrun's
//! `env://` rendezvous): rank 0 makes NCCL's unique id and hands it to the others there. The
//! same connections carry the small exchanges (each step's status and losses, a few numbers);
//! the gradients go through NCCL's all-gather on the GPU and never leave it.
//!
//! NCCL waits for a dead peer forever (its kernels spin on the GPU), so every exchange is
//! watched: after the timeout the rank aborts, and the TCP connections it held tell the others.

use super::watchdog::Watchdog;
use super::{Collective, TcpGroup};
use crate::error::{Error, Result};
use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::nccl::safe::{Comm, Id};
use candle_core::{CudaStorage, CustomOp1, Device, Layout, Shape, Tensor};
use std::time::Duration;

/// This process's place among GPUs joined by NCCL.
pub struct NcclGroup {
    comm: Comm,
    control: TcpGroup,
    device: Device,
    watchdog: Watchdog,
}

impl NcclGroup {
    /// Joins rank `rank` of `world` on `device` (a CUDA device; one GPU per rank), meeting the
    /// others at `master`.
    ///
    /// # Errors
    /// `device` is not a CUDA device, the rendezvous fails (see [`TcpGroup::join`]), or NCCL
    /// cannot form the communicator (two ranks on one GPU, NCCL's library missing).
    pub fn init(rank: usize, world: usize, master: (&str, u16), device: &Device, timeout: Duration) -> Result<Self> {
        let fail = |reason: String| Error::Collective { rank, reason };
        let Device::Cuda(cuda) = device else { return Err(fail("the NCCL engine needs a CUDA device".into())) };
        let control = TcpGroup::join(rank, world, master.0, master.1, timeout)?;
        // Rank 0's id is the one that counts; the others send zeros of the same length.
        let mine: Vec<u8> = if rank == 0 {
            Id::new().map_err(|e| fail(format!("NCCL could not make a unique id: {e:?}")))?.internal().iter().map(|&c| c as u8).collect()
        } else {
            vec![0; 128]
        };
        let all = control.all_gather_bytes(&mine)?;
        let mut internal = [0 as std::ffi::c_char; 128];
        for (to, from) in internal.iter_mut().zip(&all[..128]) {
            *to = *from as std::ffi::c_char;
        }
        let watchdog = Watchdog::start(rank, timeout);
        let comm = watchdog
            .watch(|| Comm::from_rank(cuda.cuda_stream(), rank, world, Id::uninit(internal)))
            .map_err(|e| fail(format!("NCCL could not form the group (one GPU per rank; is libnccl installed?): {e:?}")))?;
        Ok(NcclGroup { comm, control, device: device.clone(), watchdog })
    }
}

impl Collective for NcclGroup {
    fn rank(&self) -> usize {
        self.control.rank()
    }
    fn world_size(&self) -> usize {
        self.control.world_size()
    }
    fn all_gather_f32(&self, local: &[f32]) -> Result<Vec<f32>> {
        self.control.all_gather_f32(local)
    }
    fn all_gather_f64(&self, local: &[f64]) -> Result<Vec<f64>> {
        self.control.all_gather_f64(local)
    }
    fn all_gather_tensor(&self, local: &Tensor) -> Result<Tensor> {
        let local = local.to_dtype(candle_core::DType::F32)?.flatten_all()?.contiguous()?;
        self.watchdog.watch(|| -> Result<Tensor> {
            let all = local.apply_op1_no_bwd(&AllGather { comm: &self.comm })?;
            // NCCL runs on the device's stream; waiting for it here keeps the watchdog on the
            // exchange itself rather than on whatever reads the result later.
            self.device.synchronize()?;
            Ok(all)
        })
    }
    fn engine(&self) -> &'static str {
        "nccl"
    }
    fn abort(&self, code: i32) {
        self.control.abort(code)
    }
}

/// NCCL's all-gather as a candle op: the input's elements from every rank, in rank order.
struct AllGather<'a> {
    comm: &'a Comm,
}

// SAFETY: candle asks ops to be Send + Sync for use across threads; this one lives only for
// one call on the thread that owns the communicator, as NCCL requires.
unsafe impl Send for AllGather<'_> {}
unsafe impl Sync for AllGather<'_> {}

impl CustomOp1 for AllGather<'_> {
    fn name(&self) -> &'static str {
        "nccl-all-gather"
    }

    fn cpu_fwd(&self, _: &candle_core::CpuStorage, _: &Layout) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        candle_core::bail!("the NCCL all-gather needs a CUDA tensor")
    }

    fn cuda_fwd(&self, storage: &CudaStorage, layout: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else { candle_core::bail!("the NCCL all-gather needs a contiguous tensor") };
        let src = storage.as_cuda_slice::<f32>()?.slice(start..end);
        let device = storage.device().clone();
        let count = (end - start) * self.comm.world_size();
        // SAFETY: NCCL writes every element of the buffer before anything reads it.
        let mut dst = unsafe { device.alloc::<f32>(count)? };
        self.comm.all_gather(&src, &mut dst).map_err(|e| candle_core::Error::Msg(format!("NCCL all-gather failed: {e:?}")))?;
        Ok((CudaStorage::wrap_cuda_slice(dst, device), Shape::from(count)))
    }
}
