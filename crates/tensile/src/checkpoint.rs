//! The checkpoint front-end: module tests derived from a model on disk (a Hugging Face
//! directory or a GGUF file), with its own config and its real weights, no code written.
//!
//! One test per distinct module of the selected layers (the layer, its attention, MLP and
//! norms), plus the embeddings, the final norm and the head where the model has them. Layer 0
//! is tested by default; testing every layer (or a list) finds a single corrupted one.

use crate::error::{Error, Result};
pub use crate::layer_path::layer_index;
use crate::module::{ModuleUnderTest, NnModule};
use crate::spec::{Check, ModuleTest};
use crate::suite::Suite;
use candle_core::{DType, Device};
use std::path::Path;
use std::sync::Arc;
use tensile_nn::Block;

/// Which decoder or encoder layers to test.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Layers {
    /// Layer 0.
    #[default]
    First,
    /// Every layer.
    All,
    /// These layers.
    List(Vec<usize>),
}

impl std::str::FromStr for Layers {
    type Err = String;
    /// `all`, or a comma-separated list of indices such as `0,15,31`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s.trim() == "all" {
            return Ok(Layers::All);
        }
        let list = s
            .split(',')
            .map(|p| p.trim().parse::<usize>().map_err(|_| format!("`{p}` is not a layer index (give `all` or a list such as 0,15,31)")))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Layers::List(list))
    }
}

/// A model loaded from disk, as a block.
pub struct LoadedModel {
    /// The model.
    pub block: Box<dyn Block>,
    /// `directory PATH` or `GGUF file PATH`, for messages.
    pub description: String,
    /// A short name for test names: the folder's or file's stem.
    pub name: String,
    /// Layers in the model.
    pub layers: usize,
}

/// Whether `path` names a model this front-end loads (a directory with `config.json`, or a
/// `.gguf` file), as opposed to a preset name.
pub fn is_model_path(path: &str) -> bool {
    let p = Path::new(path);
    p.join("config.json").is_file() || (p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")))
}

/// Loads the model at `path` in f32 on the CPU.
///
/// # Errors
/// A path that is neither a model directory nor a GGUF file (naming what was tried), an
/// unsupported architecture (naming `model_type` and the supported values), damaged weights.
pub fn load_model(path: &Path) -> Result<LoadedModel> {
    load(path, false)
}

/// The model at `path` with every parameter a zero broadcast to its shape (no storage),
/// from `config.json` and the safetensors header, or from the GGUF header: enough to list its
/// module tests, at any size, without reading a weight.
///
/// # Errors
/// As [`load_model`].
pub fn load_model_shapes(path: &Path) -> Result<LoadedModel> {
    load(path, true)
}

/// [`load_model`], or with `shapes_only` [`load_model_shapes`].
fn load(path: &Path, shapes_only: bool) -> Result<LoadedModel> {
    let name = path.file_stem().map_or_else(|| "model".to_string(), |s| s.to_string_lossy().into_owned());
    let verb = if shapes_only { "read" } else { "load" };
    let block_err = |source| Error::Block { context: format!("failed to {verb} {}", path.display()), source };
    let (block, description): (Box<dyn Block>, String) = if path.join("config.json").is_file() {
        let m = if shapes_only { tensile_nn::load_pretrained_shapes(path) } else { tensile_nn::load_pretrained(path, DType::F32, &Device::Cpu) };
        // An owned copy of the model (its tensors shared), as a box of the block trait.
        (NnModule::from_dyn(m.map_err(block_err)?.block())?.0, format!("directory {}", path.display()))
    } else if is_model_path(&path.to_string_lossy()) {
        let model = if shapes_only { tensile_nn::gguf::load_gguf_shapes(path) } else { tensile_nn::gguf::load_gguf(path, &Device::Cpu).map(|m| m.model) };
        (Box::new(model.map_err(block_err)?), format!("GGUF file {}", path.display()))
    } else {
        return Err(Error::Input { path: path.to_path_buf(), reason: "not a model directory (no config.json there), and not a .gguf file".into() });
    };
    let layers = block.named_modules().iter().filter_map(|(n, _)| layer_index(n)).map(|i| i + 1).max().unwrap_or(0);
    Ok(LoadedModel { block, description, name, layers })
}

/// The checks of a real-weight module: those of the presets but dtype parity, gradients only
/// where the float64 reference stays cheap (width up to 1024).
///
/// Dtype parity is left out by default: its per-element tolerance (bf16: 0.05 + 0.05·|y|) is
/// calibrated for the presets' unit-scale weights, and a healthy checkpoint written by
/// transformers (weights of std 0.2, outputs of a few units) fails it in bf16 and f16 through
/// cancellation near zero. `--checks` still runs it on request.
fn checks(width: usize) -> Vec<Check> {
    let mut c = vec![Check::Correctness, Check::Determinism, Check::BatchInvariance, Check::Performance, Check::Memory];
    if width <= 1024 {
        c.insert(1, Check::Gradients);
    }
    c
}

/// The module tests of `model`: the selected layers and their parts, then the embeddings,
/// the final norm and the head (the model's parts outside its layers), each with its real
/// weights, at `batch` × `seq`.
///
/// # Errors
/// A layer index past the model's layers.
pub fn module_tests(model: &LoadedModel, layers: &Layers, batch: usize, seq: usize) -> Result<Vec<ModuleTest>> {
    let wanted: Vec<usize> = match layers {
        Layers::First => vec![0],
        Layers::All => (0..model.layers).collect(),
        Layers::List(l) => l.clone(),
    };
    if let Some(bad) = wanted.iter().find(|&&i| i >= model.layers) {
        return Err(Error::Setting {
            name: "--layers".into(),
            reason: format!("layer {bad} is past the model's {} layers (0..{})", model.layers, model.layers),
        });
    }
    let block = model.block.as_ref();
    let width = block.dims().iter().find(|(k, _)| *k == "hidden_size").map_or(0, |(_, v)| *v);
    let mut suite = Suite::standalone(model.name.clone()).batch_size(batch).seq_len(seq);
    for (path, module) in block.named_modules() {
        if layer_index(&path).is_some_and(|i| wanted.contains(&i)) {
            let m = NnModule::from_dyn(module)?;
            suite.test_module(path, Arc::new(m) as Arc<dyn ModuleUnderTest>).checks(checks(width));
        }
    }
    for (prefix, part) in outside_layers(block) {
        let m = NnModule::from_dyn(part)?;
        suite.test_module(prefix, Arc::new(m) as Arc<dyn ModuleUnderTest>).checks(checks(width));
    }
    suite.module_tests()
}

/// The model's parts that are not layers (embeddings, final norm, head), by checkpoint
/// prefix, looking one level into an encoder that a head wraps.
fn outside_layers(block: &dyn Block) -> Vec<(String, &dyn Block)> {
    let mut out = Vec::new();
    for child in block.children() {
        let is_layer = child.path.as_deref().is_some_and(|p| layer_index(p).is_some());
        if is_layer {
            continue;
        }
        let inner: Vec<_> = child.block.children().into_iter().filter(|c| c.path.as_deref().is_some_and(|p| layer_index(p).is_some())).collect();
        if inner.is_empty() {
            // A head whose weights sit at the top level (`classifier.weight`, next to `bert.`)
            // has no prefix of its own: it is named for what it is.
            let name = if child.prefix.is_empty() { "head".to_string() } else { child.prefix.clone() };
            out.push((name, child.block));
        } else {
            // An encoder (`bert.`, `model.`): its own embeddings and norms.
            for c in child.block.children() {
                if !c.path.as_deref().is_some_and(|p| layer_index(p).is_some()) {
                    out.push((format!("{}.{}", child.prefix, c.prefix), c.block));
                }
            }
        }
    }
    out
}

/// Makes every test of `quantized` compare against the same module of `original` on the same
/// input (the per-module quantization report), at the quantized module's format tolerance
/// ([`crate::presets::quant_tolerance`]). A module without a quantized weight of its own (an
/// embedding table a GGUF file stored quantized and the loader expanded) takes the model's
/// format; norms, kept in f32, pass under it as they equal the original.
///
/// # Errors
/// Models of different kinds, or a tensor missing from the original or of another shape
/// there, naming the first.
pub fn compare_with(tests: &mut [ModuleTest], quantized: &LoadedModel, original: &LoadedModel) -> Result<()> {
    let (q, o) = (quantized.block.as_ref(), original.block.as_ref());
    let mismatch = |reason: String| Error::Setting { name: "--compare-with".into(), reason };
    if q.kind() != o.kind() {
        return Err(mismatch(format!("{} is a {} and {} a {}", quantized.description, q.kind().name(), original.description, o.kind().name())));
    }
    let theirs: std::collections::HashMap<String, Vec<usize>> = o.parameters().into_iter().map(|(n, t)| (n, t.dims().to_vec())).collect();
    for (name, t) in q.parameters() {
        match theirs.get(&name) {
            None => return Err(mismatch(format!("tensor `{name}` of {} is not in {}", quantized.description, original.description))),
            Some(shape) if shape.as_slice() != t.dims() => {
                return Err(mismatch(format!(
                    "tensor `{name}` has shape {:?} in {} and {shape:?} in {}",
                    t.dims(),
                    quantized.description,
                    original.description
                )))
            }
            Some(_) => {}
        }
    }
    let mut modules: std::collections::HashMap<String, &dyn Block> = o.named_modules().into_iter().collect();
    modules.extend(outside_layers(o));
    let mut quantized_modules: std::collections::HashMap<String, &dyn Block> = q.named_modules().into_iter().collect();
    quantized_modules.extend(outside_layers(q));
    let model_format = tensile_nn::linears(q).into_iter().find_map(|(_, l)| l.quant_format());
    let prefix = format!("{}::", quantized.name);
    for t in tests.iter_mut() {
        let path = t.name.strip_prefix(&prefix).unwrap_or(&t.name).to_string();
        let Some(reference) = modules.get(&path) else { continue };
        t.spec.compare_with_module(Arc::new(NnModule::from_dyn(*reference)?) as Arc<dyn ModuleUnderTest>);
        let own = quantized_modules.get(&path).and_then(|m| tensile_nn::linears(*m).into_iter().find_map(|(_, l)| l.quant_format()));
        if let Some(f) = own.or(model_format) {
            t.spec.tolerance = Some(crate::presets::quant_tolerance(f));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_lists_parse_and_paths_give_their_layer() {
        assert_eq!("all".parse::<Layers>(), Ok(Layers::All));
        assert_eq!("0, 15,31".parse::<Layers>(), Ok(Layers::List(vec![0, 15, 31])));
        assert!("0,x".parse::<Layers>().unwrap_err().contains("`x` is not a layer index"));
        assert!(!is_model_path("tiny-llama"), "a preset name is not a path");
    }
}
