//! The counting allocator and the memory check, in a binary of their own: the counters are
//! process-wide, so this file holds a single test that runs its parts in sequence.

use candle_core::{DType, Device};
use std::sync::Arc;
use tensile::spec::{memory_mb, Spec};
use tensile::{Check, ModuleTest, NnModule, Plan, Settings};
use tensile_nn::init::SeededInit;

tensile::install_counting_allocator!();

#[test]
fn counting_allocator_and_memory_check() {
    // A 10 MiB buffer inside the closure is the peak; what lived before does not count.
    let before = vec![0u8; 4 << 20];
    let (len, peak) = tensile::alloc::measure_peak(|| {
        let v = vec![1u8; 10 << 20];
        v.len()
    });
    let peak = peak.expect("installed");
    assert_eq!(len, 10 << 20);
    assert!((10 << 20..11 << 20).contains(&peak), "peak {peak}");
    drop(before);
    // Two buffers live at once count together.
    let (_, peak) = tensile::alloc::measure_peak(|| {
        let a = vec![1u8; 3 << 20];
        let b = vec![1u8; 5 << 20];
        a.len() + b.len()
    });
    let peak = peak.expect("installed");
    assert!((8 << 20..9 << 20).contains(&peak), "peak {peak}");

    // Nested measurements: the inner one sees only its own allocations, and the outer one
    // keeps the high-water mark it reached before the inner call (a 10 MiB buffer, freed
    // again), which the inner call's reset of the peak must not erase.
    let ((inner, held), outer) = tensile::alloc::measure_peak(|| {
        drop(std::hint::black_box(vec![1u8; 10 << 20]));
        let held = vec![1u8; 4 << 20];
        let (_, inner) = tensile::alloc::measure_peak(|| std::hint::black_box(vec![1u8; 2 << 20]).len());
        (inner.expect("installed"), held.len())
    });
    let outer = outer.expect("installed");
    assert_eq!(held, 4 << 20);
    assert!((2 << 20..3 << 20).contains(&inner), "inner peak {inner}");
    assert!((10 << 20..11 << 20).contains(&outer), "outer peak {outer}");
    // Without an earlier, larger peak the outer measurement is the inner peak on top of what
    // the outer closure holds.
    let (_, outer) = tensile::alloc::measure_peak(|| {
        let held = vec![1u8; 4 << 20];
        let (_, inner) = tensile::alloc::measure_peak(|| std::hint::black_box(vec![1u8; 3 << 20]).len());
        (held.len(), inner)
    });
    let outer = outer.expect("installed");
    assert!((7 << 20..8 << 20).contains(&outer), "held 4 MiB plus the inner 3 MiB: {outer}");

    // The memory check reports the forward's peak against the target.
    let mlp = tensile_nn::SwiGlu::new(256, 1024, false, tensile_nn::Activation::Silu, SeededInit::var_builder(0, DType::F32, &Device::Cpu)).unwrap();
    let module: Arc<dyn tensile::ModuleUnderTest> = Arc::new(NnModule::new(mlp));
    let spec = |mb: f64| Spec { input_shape: Some(vec![1, 256, 256]), checks: vec![Check::Memory], targets: memory_mb(mb), ..Spec::default() };
    let tests =
        vec![ModuleTest { name: "roomy".into(), module: module.clone(), spec: spec(64.0) }, ModuleTest { name: "tight".into(), module, spec: spec(0.5) }];
    let summary = tensile::runner::run(&Plan::new(&tests, &Settings::default()).unwrap(), &mut []);
    let roomy = &summary.cases[0].checks[0].outcome;
    let tight = &summary.cases[1].checks[0].outcome;
    // Two (256, 1024) f32 intermediates are 1 MiB each; the output is 0.25 MiB.
    let peak_mb = roomy.metrics["peak_mb"];
    assert!(roomy.passed && peak_mb > 1.0 && peak_mb < 8.0, "{:?}", roomy.metrics);
    assert!((roomy.metrics["param_mb"] - 3.0).abs() < 1e-9, "3 · 256 · 1024 · 4 bytes = 3 MiB");
    assert!(!tight.passed && tight.errors[0].contains("> target 0.500 MB"), "{:?}", tight.errors);
}
