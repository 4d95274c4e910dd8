//! Peak memory of one closure on a CUDA device.
//!
//! candle allocates device memory through cudarc with `cuMemAllocAsync`, which takes it from
//! the device's default stream-ordered memory pool whenever the driver supports memory pools
//! (every GPU since Pascal with a recent driver, the H100 included). The pool keeps a
//! high-water mark of the bytes in use by allocations, `CU_MEMPOOL_ATTR_USED_MEM_HIGH`,
//! which can be reset to the current use. Resetting it before the closure and reading it after
//! gives the peak of the closure's live allocations above what was allocated before it: the
//! same quantity as PyTorch's `torch.cuda.max_memory_allocated()` delta after
//! `reset_peak_memory_stats()`. Accuracy: exact to the pool's allocation granularity (the
//! driver rounds each allocation up, so many tiny tensors read slightly high); allocations
//! made outside candle (cuBLAS workspaces, which cuBLAS takes once per handle) are not counted,
//! as PyTorch does not count them either.
//!
//! On other devices, and in builds without the `cuda` feature, there is no measurement.

use crate::error::Result;
use candle_core::Device;

/// Runs `f` and returns its result with the peak device bytes it allocated on `device` above
/// what was in use before it, or `None` where this cannot be measured.
pub fn measure_peak<T>(device: &Device, f: impl FnOnce() -> T) -> Result<(T, Option<u64>)> {
    match device {
        #[cfg(feature = "cuda")]
        Device::Cuda(d) => cuda::measure_peak(d, f),
        _ => Ok((f(), None)),
    }
}

/// The device's total memory in bytes, where the driver reports it (CUDA builds); `None`
/// on the CPU, whose budget comes from physical memory instead.
pub fn total_bytes(device: &Device) -> Option<u64> {
    match device {
        #[cfg(feature = "cuda")]
        Device::Cuda(d) => d.cuda_stream().context().total_mem().ok().map(|b| b as u64),
        _ => None,
    }
}

/// Whether [`measure_peak`] can measure on `device` in this build.
pub fn can_measure(device: &Device) -> bool {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(d) = device {
        return d.cuda_stream().context().has_async_alloc();
    }
    let _ = device;
    false
}

#[cfg(feature = "cuda")]
mod cuda {
    use crate::error::{Error, Result};
    use candle_core::cuda_backend::cudarc::driver::{result::mem_pool, sys, DriverError};
    use candle_core::CudaDevice;
    use std::ffi::c_void;

    fn err(what: &str, e: DriverError) -> Error {
        Error::Candle(candle_core::Error::Msg(format!("cuda memory pool: {what}: {e:?}")))
    }

    fn attribute(pool: sys::CUmemoryPool, attr: sys::CUmemPool_attribute) -> Result<u64> {
        let mut v: u64 = 0;
        // SAFETY: the pool is the device's default pool and the USED_MEM attributes are u64.
        unsafe { mem_pool::get_attribute(pool, attr, (&mut v as *mut u64).cast::<c_void>()) }.map_err(|e| err("read attribute", e))?;
        Ok(v)
    }

    pub(super) fn measure_peak<T>(dev: &CudaDevice, f: impl FnOnce() -> T) -> Result<(T, Option<u64>)> {
        let stream = dev.cuda_stream();
        let ctx = stream.context();
        if !ctx.has_async_alloc() {
            return Ok((f(), None));
        }
        ctx.bind_to_thread().map_err(|e| err("bind context", e))?;
        let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
        // SAFETY: `pool` is a valid out-pointer and the device ordinal comes from the context.
        unsafe { sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device()) }.result().map_err(|e| err("default pool", e))?;
        // Frees queued before the closure must land before the baseline is read.
        stream.synchronize().map_err(|e| err("synchronize", e))?;
        let before = attribute(pool, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_CURRENT)?;
        let mut zero: u64 = 0;
        // SAFETY: as above; setting USED_MEM_HIGH to zero resets it to the current use.
        unsafe { mem_pool::set_attribute(pool, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH, (&mut zero as *mut u64).cast::<c_void>()) }
            .map_err(|e| err("reset high-water mark", e))?;
        let out = f();
        stream.synchronize().map_err(|e| err("synchronize", e))?;
        let high = attribute(pool, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH)?;
        Ok((out, Some(high.saturating_sub(before))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_measured_on_the_cpu() {
        let (v, peak) = measure_peak(&Device::Cpu, || 7).unwrap();
        assert_eq!((v, peak), (7, None));
        assert!(!can_measure(&Device::Cpu));
        assert_eq!(total_bytes(&Device::Cpu), None);
    }
}
