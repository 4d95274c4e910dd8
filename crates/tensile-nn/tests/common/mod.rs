//! Shared helpers of the integration tests.

/// Instantiates device-generic test functions `fn name(dev: &Device)` once per device: always
/// on the CPU, and on CUDA in `cuda` builds (printing why when no GPU is present).
#[macro_export]
macro_rules! per_device {
    ($($name:ident),*) => {
        mod cpu {
            $(#[test] fn $name() { super::$name(&candle_core::Device::Cpu) })*
        }
        #[cfg(feature = "cuda")]
        mod cuda {
            $(#[test] fn $name() {
                match candle_core::Device::new_cuda(0) {
                    Ok(dev) => super::$name(&dev),
                    Err(e) => println!("skipped: no CUDA device ({e})"),
                }
            })*
        }
    };
}
