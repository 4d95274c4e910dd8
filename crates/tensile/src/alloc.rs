//! A counting global allocator: candle has no memory statistics on the CPU, so tensile
//! counts heap bytes itself.
//!
//! Install it in a binary or test target with [`crate::install_counting_allocator!`]. The
//! counters are process-wide: a measurement counts every thread's allocations, so run it
//! without concurrent work. What [`measure_peak`] reports is the largest number of heap bytes
//! live at once during the closure beyond those live when it started: for a forward pass, the
//! activations, intermediates and output that candle's CPU backend allocates, excluding the
//! parameters and the input that already existed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The system allocator with byte counters. It never allocates itself.
pub struct CountingAllocator;

/// Records that this allocator serves the process. The flag is read before it is written so
/// that the hot path does not write a shared cache line on every allocation.
fn mark_installed() {
    if !INSTALLED.load(Ordering::Relaxed) {
        INSTALLED.store(true, Ordering::Relaxed);
    }
}

/// Counts `size` new live bytes and raises the peak if they set a new high-water mark.
fn added(size: usize) {
    let now = CURRENT.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to `System`; the counters are plain atomics.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        mark_installed();
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            added(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        mark_installed();
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            added(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
            added(new_size);
        }
        p
    }
}

/// Whether the counting allocator serves this process.
pub fn is_installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// Heap bytes live now (0 when not installed).
pub fn current_bytes() -> usize {
    CURRENT.load(Ordering::Relaxed)
}

/// Runs `f` and returns its result with the peak of live heap bytes during `f` above the
/// level when it started; `None` when the counting allocator is not installed.
///
/// Measurements nest: an inner `measure_peak` reports its own peak, and the enclosing one
/// still sees the larger of its peak before the inner call and the inner call's peak.
pub fn measure_peak<T>(f: impl FnOnce() -> T) -> (T, Option<usize>) {
    if !is_installed() {
        return (f(), None);
    }
    let base = CURRENT.load(Ordering::SeqCst);
    // The enclosing measurement's peak so far is set aside rather than lost, and merged back
    // below, so that nesting never hides an earlier high-water mark from the outer caller.
    let outer_peak = PEAK.swap(base, Ordering::SeqCst);
    let out = f();
    let peak = PEAK.fetch_max(outer_peak, Ordering::SeqCst);
    (out, Some(peak.saturating_sub(base)))
}

/// Installs [`CountingAllocator`] as the global allocator of the current binary.
#[macro_export]
macro_rules! install_counting_allocator {
    () => {
        #[global_allocator]
        static TENSILE_ALLOCATOR: $crate::alloc::CountingAllocator = $crate::alloc::CountingAllocator;
    };
}
