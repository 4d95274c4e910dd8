//! The registry front-end: functions marked `#[tensile::model_tests("name")]` are collected
//! at link time (with `inventory`) and listed by [`discover`].

use crate::error::{Error, Result};
use crate::spec::ModuleTest;

/// One registered function.
#[derive(Debug, Clone, Copy)]
pub struct Registration {
    /// The model name given to the attribute.
    pub model: &'static str,
    /// The function returning the model's module tests.
    pub tests: fn() -> Vec<ModuleTest>,
    /// Source file of the registration.
    pub file: &'static str,
}

inventory::collect!(Registration);

/// Every registration linked into this binary, sorted by model name.
pub fn discover() -> Vec<Registration> {
    let mut all: Vec<Registration> = inventory::iter::<Registration>.into_iter().copied().collect();
    all.sort_by_key(|r| (r.model, r.file));
    all
}

/// The module tests of every registered model whose name matches `filter` (a glob; all when
/// `None`), named `model::test`.
pub fn module_tests(filter: Option<&str>) -> Result<Vec<ModuleTest>> {
    let pattern = match filter {
        Some(f) => {
            Some(glob::Pattern::new(f).map_err(|e| Error::Spec { spec: "registry".into(), field: "filter".into(), reason: format!("bad glob `{f}`: {e}") })?)
        }
        None => None,
    };
    Ok(discover()
        .into_iter()
        .filter(|r| pattern.as_ref().is_none_or(|p| p.matches(r.model)))
        .flat_map(|r| {
            (r.tests)().into_iter().map(move |mut t| {
                t.name = format!("{}::{}", r.model, t.name);
                t
            })
        })
        .collect())
}
