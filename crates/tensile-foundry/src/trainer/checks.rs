//! The module tests run before the first step: the first layer and each of its parts, at a
//! tiny shape, checked for correctness against the float64 twin and for gradients, with the
//! testing framework of this repository.

use crate::error::{Error, Result};
use crate::model::Net;
use tensile::Check;

/// Layer 0 and its parts in every family's naming (`model.layers.0…`, `bert.encoder.layer.0…`).
const PATTERNS: [&str; 2] = ["*layers.0*", "*layer.0*"];

/// Runs the module tests of `net`; returns how many modules passed, or the first failure
/// naming the module and the check.
pub fn module_tests(net: &Net, name: &str) -> Result<usize> {
    match net {
        Net::Llama(m) => run_on(m, name),
        Net::Masked(m) => run_on(m, name),
    }
}

fn run_on<B: tensile_nn::Block>(block: &B, name: &str) -> Result<usize> {
    let mut suite = tensile::Suite::new(block).name(name).batch_size(1).seq_len(8);
    let framework = |e: tensile::Error| Error::ModuleTest { module: name.to_string(), check: "setup".into(), reason: e.to_string() };
    for p in PATTERNS {
        let paths: Vec<String> = block.named_modules().into_iter().map(|(n, _)| n).filter(|n| glob::Pattern::new(p).is_ok_and(|g| g.matches(n))).collect();
        if !paths.is_empty() {
            suite.test_all_modules().matching(p).map_err(framework)?.each(|s| {
                s.checks([Check::Correctness, Check::Gradients]);
            });
            break;
        }
    }
    let results = suite.run().map_err(framework)?;
    for r in &results {
        if !r.passed {
            let first = r.errors.first().cloned().unwrap_or_else(|| "failed".into());
            let (check, reason) = first.split_once(": ").map_or(("unknown".to_string(), first.clone()), |(c, m)| (c.to_string(), m.to_string()));
            return Err(Error::ModuleTest { module: r.module_name.clone(), check, reason });
        }
    }
    Ok(results.len())
}
