//! Timing on one thread: what the scaling check and the baseline comparison measure, so that
//! a slope or a ratio reflects the module's work rather than how its runs parallelise or how
//! many cores other processes leave free.

use std::sync::OnceLock;

/// Runs `f` on a pool of one thread, so that candle's CPU kernels (which split work over the
/// current rayon pool) run serially, with gemm on its serial path ([`SerialGemm`]). Falls back
/// to the calling thread's pool if a pool cannot be made; the `bool` says whether one was, so
/// the check can say so in a note.
pub(crate) fn on_one_thread<R: Send>(f: impl FnOnce() -> R + Send) -> (R, bool) {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    let serial = || {
        let _serial = SerialGemm::enter();
        f()
    };
    match POOL.get_or_init(|| rayon::ThreadPoolBuilder::new().num_threads(1).thread_name(|_| "tensile-sweep".into()).build().ok()) {
        Some(pool) => (pool.install(serial), true),
        None => (serial(), false),
    }
}

/// While alive, candle's CPU matmuls take gemm's serial code path.
///
/// candle chooses gemm's parallelism on every matmul from `RAYON_NUM_THREADS` (or the core
/// count), whatever rayon pool the call runs on. On a one-thread pool the parallel path still
/// runs, serially, and with another core busy it alternated, for seconds at a time, between
/// 0.65 and 2.2 ms for the same GELU MLP forward at 128 tokens; with the variable at 1, gemm's
/// serial path took a constant 0.86 ms in 100 of 100 passes. The variable is
/// the only switch candle offers; it is set for the sweeps in flight (counted, so concurrent
/// sweeps keep it) and the previous value is restored after the last one. Rust's own reads of
/// the environment, candle's included, are synchronised with this write.
struct SerialGemm;

/// Sweeps in flight, and the variable's value before the first of them.
static SERIAL_GEMM: std::sync::Mutex<(usize, Option<std::ffi::OsString>)> = std::sync::Mutex::new((0, None));

const RAYON_NUM_THREADS: &str = "RAYON_NUM_THREADS";

impl SerialGemm {
    fn enter() -> Self {
        let mut state = SERIAL_GEMM.lock().unwrap_or_else(|p| p.into_inner());
        if state.0 == 0 {
            state.1 = std::env::var_os(RAYON_NUM_THREADS);
            std::env::set_var(RAYON_NUM_THREADS, "1");
        }
        state.0 += 1;
        SerialGemm
    }
}

impl Drop for SerialGemm {
    fn drop(&mut self) {
        let mut state = SERIAL_GEMM.lock().unwrap_or_else(|p| p.into_inner());
        state.0 -= 1;
        if state.0 == 0 {
            match state.1.take() {
                Some(v) => std::env::set_var(RAYON_NUM_THREADS, v),
                None => std::env::remove_var(RAYON_NUM_THREADS),
            }
        }
    }
}
