//! Every committed reference case, through the library, in every dtype; every block kind is
//! covered by at least one case.

use candle_core::{DType, Device};
use std::collections::HashSet;
use tensile::golden::GoldenCase;
use tensile_nn::BlockKind;

#[test]
fn every_committed_case_passes_in_every_dtype() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tensile-nn/tests/golden");
    let mut kinds = HashSet::new();
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("safetensors") {
            continue;
        }
        let case = GoldenCase::load(&path).unwrap();
        kinds.insert(case.kind);
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let r = case.check(&Device::Cpu, dtype, None).unwrap();
            println!("{} {dtype:?} max_abs {:.3e} pcc {:.9}", r.file, r.comparison.max_abs, r.comparison.pcc);
            assert!(r.passed, "{} in {dtype:?}: {:?}", r.file, r.failures);
        }
        n += 1;
    }
    assert!(n >= 10, "{n} cases");
    assert_eq!(kinds, BlockKind::ALL.into_iter().collect::<HashSet<_>>(), "every kind has a case");
}
