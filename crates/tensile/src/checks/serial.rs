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
struct SerialGemm {
    state: &'static Gate,
    var: &'static str,
}

/// Sweeps in flight, and the variable's value before the first of them.
type Gate = std::sync::Mutex<(usize, Option<std::ffi::OsString>)>;

static SERIAL_GEMM: Gate = std::sync::Mutex::new((0, None));

const RAYON_NUM_THREADS: &str = "RAYON_NUM_THREADS";

impl SerialGemm {
    fn enter() -> Self {
        Self::enter_with(&SERIAL_GEMM, RAYON_NUM_THREADS)
    }

    /// Sets `var` to 1 for as long as any guard of `state` lives (tests use a variable of
    /// their own, which no kernel reads and no other test sets).
    fn enter_with(state: &'static Gate, var: &'static str) -> Self {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        if s.0 == 0 {
            s.1 = std::env::var_os(var);
            std::env::set_var(var, "1");
        }
        s.0 += 1;
        SerialGemm { state, var }
    }
}

impl Drop for SerialGemm {
    fn drop(&mut self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.0 -= 1;
        if s.0 == 0 {
            match s.1.take() {
                Some(v) => std::env::set_var(self.var, v),
                None => std::env::remove_var(self.var),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_is_one_while_any_guard_lives_and_then_restored() {
        static GATE: Gate = std::sync::Mutex::new((0, None));
        const VAR: &str = "TENSILE_SERIAL_GEMM_UNIT_TEST";
        let value = || std::env::var_os(VAR).map(|v| v.to_string_lossy().into_owned());
        std::env::set_var(VAR, "7");
        {
            let _outer = SerialGemm::enter_with(&GATE, VAR);
            assert_eq!(value().as_deref(), Some("1"));
            drop(SerialGemm::enter_with(&GATE, VAR));
            assert_eq!(value().as_deref(), Some("1"), "an inner guard leaves it to the outer one");
        }
        assert_eq!(value().as_deref(), Some("7"), "the previous value comes back");
        std::env::remove_var(VAR);
        drop(SerialGemm::enter_with(&GATE, VAR));
        assert_eq!(value(), None, "an unset variable is unset again");
    }
}
