//! Every committed reference case, through the library, in every dtype (every block kind is
//! covered by at least one case); and every way a case file can be wrong, each giving its own
//! error (or a failed result), never a panic.

use candle_core::{DType, Device};
use safetensors::{Dtype, SafeTensors};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use tensile::golden::{GoldenCase, GoldenResult, CASE_METADATA_KEY};
use tensile::Error;
use tensile_nn::BlockKind;

fn golden_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tensile-nn/tests/golden"))
}

/// The committed case files, sorted.
fn committed_cases() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(golden_dir()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().and_then(|e| e.to_str()) == Some("safetensors")).collect();
    files.sort();
    files
}

#[test]
fn every_committed_case_passes_in_every_dtype() {
    let files = committed_cases();
    assert!(files.len() >= 10, "only {} committed cases", files.len());
    let mut kinds = HashSet::new();
    for path in &files {
        let case = GoldenCase::load(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        kinds.insert(case.kind);
        assert_eq!(case.input.rank(), 3);
        let pooling = case.kind.name().starts_with("pooling.");
        let head = matches!(case.kind, BlockKind::HeadSequenceClassification | BlockKind::HeadTokenClassification);
        if pooling {
            // One vector per sequence: (batch, hidden).
            assert_eq!(case.output.dims(), [case.input.dims()[0], case.input.dims()[2]], "{}", path.display());
        } else if head {
            // Logits: (batch, labels) per sequence, (batch, seq, labels) per token.
            let want = if case.kind == BlockKind::HeadTokenClassification { 3 } else { 2 };
            assert_eq!((case.output.rank(), case.output.dims()[0]), (want, case.input.dims()[0]), "{}", path.display());
        } else if matches!(case.kind, BlockKind::LoraLinear | BlockKind::QuantizedLinear) {
            // A linear layer changes the width: (…, in) → (…, out).
            let (i, o) = (case.input.dims(), case.output.dims());
            assert_eq!((&i[..2], i[2]), (&o[..2], case.config["in_features"].as_u64().unwrap() as usize), "{}", path.display());
        } else {
            assert_eq!(case.input.dims(), case.output.dims());
        }
        assert_eq!(case.output.dtype(), DType::F64, "the reference is float64");
        // Every case carries weights except the weightless poolings.
        assert_eq!(
            case.weights().is_empty(),
            matches!(case.kind, BlockKind::PoolingCls | BlockKind::PoolingMean | BlockKind::PoolingMax),
            "{}",
            path.display()
        );
        assert!(!case.weights().contains_key("input") && !case.weights().contains_key("output"));
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let r: GoldenResult = case.check(&Device::Cpu, dtype, None).unwrap_or_else(|e| panic!("{} in {dtype:?}: {e}", path.display()));
            let c = &r.comparison;
            println!(
                "{:<40} {:<20} {:<5} max_abs {:.3e} max_rel {:.3e} pcc {:.9} cosine {:.9} max_ulp {}",
                path.file_name().unwrap().to_string_lossy(),
                r.module,
                r.dtype,
                c.max_abs,
                c.max_rel,
                c.pcc,
                c.cosine,
                c.max_ulp
            );
            assert!(r.passed && r.failures.is_empty(), "{} in {dtype:?}: {:?}", r.file, r.failures);
            assert_eq!(r.module, case.kind.name());
            assert_eq!(r.shape, case.input.dims());
            assert_eq!(r.device, "cpu");
            // Blocks on quantized GGUF kernels, which round activations, get those kernels' default.
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            let ggml = file.contains("_q");
            let want = if ggml { tensile::Tolerance::for_quantized_kernels(dtype) } else { tensile::Tolerance::for_dtype(dtype) };
            assert_eq!(r.tolerance, want, "{}", path.display());
            assert!(c.all_finite);
            assert_eq!(c.numel, case.output.elem_count());
        }
    }
    let all: HashSet<BlockKind> = BlockKind::BUILDABLE.into_iter().collect();
    let missing: Vec<&str> = all.difference(&kinds).map(|k| k.name()).collect();
    assert!(missing.is_empty(), "no committed case for {missing:?}");
}

/// A case file held in memory, to be edited and written out again.
struct CaseFile {
    tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
    metadata: Option<HashMap<String, String>>,
}

impl CaseFile {
    fn read(name: &str) -> Self {
        let bytes = std::fs::read(golden_dir().join(name)).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let mut tensors: Vec<_> = st.tensors().into_iter().map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        Self { tensors, metadata: header.metadata().clone() }
    }

    fn write(&self, path: &Path) {
        let views = self.tensors.iter().map(|(n, d, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()));
        safetensors::serialize_to_file(views, self.metadata.clone(), path).unwrap();
    }

    fn remove(&mut self, name: &str) {
        let before = self.tensors.len();
        self.tensors.retain(|t| t.0 != name);
        assert_eq!(self.tensors.len(), before - 1, "{name} is not in the case");
    }

    fn tensor_mut(&mut self, name: &str) -> &mut (String, Dtype, Vec<usize>, Vec<u8>) {
        self.tensors.iter_mut().find(|t| t.0 == name).unwrap_or_else(|| panic!("{name} is not in the case"))
    }

    /// The stored float64 `output`, as values.
    fn output_mut(&mut self) -> Vec<f64> {
        let (_, dtype, _, data) = self.tensor_mut("output");
        assert_eq!(*dtype, Dtype::F64);
        data.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect()
    }

    fn set_output(&mut self, values: &[f64]) {
        self.tensor_mut("output").3 = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    }

    fn case_meta(&self) -> serde_json::Value {
        serde_json::from_str(&self.metadata.as_ref().unwrap()[CASE_METADATA_KEY]).unwrap()
    }

    fn set_case_meta(&mut self, v: &serde_json::Value) {
        self.metadata.as_mut().unwrap().insert(CASE_METADATA_KEY.into(), v.to_string());
    }

    /// Writes the edited case into `dir` and loads and checks it in f32.
    fn load_and_check(&self, dir: &Path, file: &str) -> tensile::Result<GoldenResult> {
        let path = dir.join(file);
        self.write(&path);
        GoldenCase::load(&path).and_then(|c| c.check(&Device::Cpu, DType::F32, None))
    }
}

#[test]
fn the_editing_helper_round_trips_a_case_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let r = CaseFile::read("llama_mlp.safetensors").load_and_check(dir.path(), "copy.safetensors").unwrap();
    assert!(r.passed, "{:?}", r.failures);
}

#[test]
fn a_missing_weight_is_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut case = CaseFile::read("llama_decoder_layer.safetensors");
    case.remove("self_attn.q_proj.weight");
    let err = case.load_and_check(dir.path(), "no_q.safetensors").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(&err, Error::MissingTensor { name, path } if name == "self_attn.q_proj.weight" && path.ends_with("no_q.safetensors")), "{err:?}");
    assert!(msg.contains("self_attn.q_proj.weight") && msg.contains("no_q.safetensors"), "{msg}");
    assert_eq!(msg.lines().count(), 1, "{msg}");
}

#[test]
fn a_missing_output_is_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut case = CaseFile::read("llama_rms_norm.safetensors");
    case.remove("output");
    let path = dir.path().join("no_output.safetensors");
    case.write(&path);
    let err = GoldenCase::load(&path).unwrap_err();
    assert!(matches!(&err, Error::MissingTensor { name, .. } if name == "output"), "{err:?}");
    assert!(err.to_string().contains("`output`"), "{err}");
    // Same for `input`.
    let mut case = CaseFile::read("llama_rms_norm.safetensors");
    case.remove("input");
    let err = case.load_and_check(dir.path(), "no_input.safetensors").unwrap_err();
    assert!(matches!(&err, Error::MissingTensor { name, .. } if name == "input"), "{err:?}");
}

#[test]
fn an_unknown_kind_lists_the_known_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let mut case = CaseFile::read("llama_attention_gqa.safetensors");
    let mut meta = case.case_meta();
    meta["module"] = "llama.attn".into();
    case.set_case_meta(&meta);
    let err = case.load_and_check(dir.path(), "attn.safetensors").unwrap_err();
    assert!(matches!(&err, Error::UnknownKind { source, .. } if source.0 == "llama.attn"), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("`llama.attn`") && msg.contains("attn.safetensors"), "{msg}");
    for kind in BlockKind::ALL {
        assert!(msg.contains(kind.name()), "`{msg}` should list {}", kind.name());
    }
}

#[test]
fn missing_or_malformed_metadata_is_an_invalid_case() {
    let dir = tempfile::tempdir().unwrap();
    // The key is gone but other metadata remains.
    let mut case = CaseFile::read("llama_mlp.safetensors");
    assert!(case.metadata.as_mut().unwrap().remove(CASE_METADATA_KEY).is_some());
    assert!(!case.metadata.as_ref().unwrap().is_empty(), "version metadata is kept");
    let err = case.load_and_check(dir.path(), "no_key.safetensors").unwrap_err();
    assert!(matches!(&err, Error::InvalidCase { reason, .. } if reason.contains(CASE_METADATA_KEY)), "{err:?}");
    // No metadata at all.
    case.metadata = None;
    let err = case.load_and_check(dir.path(), "no_metadata.safetensors").unwrap_err();
    assert!(matches!(&err, Error::InvalidCase { reason, .. } if reason.contains(CASE_METADATA_KEY)), "{err:?}");
    // The key is there but is not the expected JSON.
    let mut case = CaseFile::read("llama_mlp.safetensors");
    case.metadata.as_mut().unwrap().insert(CASE_METADATA_KEY.into(), "{\"module\": 3}".into());
    let err = case.load_and_check(dir.path(), "bad_json.safetensors").unwrap_err();
    assert!(matches!(&err, Error::InvalidCase { .. }), "{err:?}");
}

#[test]
fn a_file_that_is_not_safetensors_is_an_invalid_case() {
    let dir = tempfile::tempdir().unwrap();
    // Deterministic pseudo-random bytes (64-bit LCG).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect();
    for (file, contents) in [("random.safetensors", &bytes[..]), ("empty.safetensors", &[][..]), ("text.safetensors", b"not a tensor file")] {
        let path = dir.path().join(file);
        std::fs::write(&path, contents).unwrap();
        let err = GoldenCase::load(&path).unwrap_err();
        assert!(matches!(&err, Error::InvalidCase { reason, .. } if reason.contains("not a safetensors file")), "{file}: {err:?}");
        assert!(err.to_string().contains(file), "{err}");
    }
    // A valid header whose data section is cut short.
    let mut truncated = std::fs::read(golden_dir().join("llama_mlp.safetensors")).unwrap();
    truncated.truncate(truncated.len() - 100);
    let path = dir.path().join("truncated.safetensors");
    std::fs::write(&path, truncated).unwrap();
    assert!(matches!(GoldenCase::load(&path), Err(Error::InvalidCase { .. })));
}

#[test]
fn a_nonexistent_file_is_an_io_error() {
    let path = Path::new("/nonexistent/dir/case.safetensors");
    let err = GoldenCase::load(path).unwrap_err();
    assert!(matches!(&err, Error::Io { path: p, source } if p == path && source.kind() == std::io::ErrorKind::NotFound), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/dir/case.safetensors"), "{err}");
    // A directory is refused before it is opened, saying what it is.
    let err = GoldenCase::load(&golden_dir()).unwrap_err();
    assert!(matches!(&err, Error::Input { .. }) && err.to_string().contains("is a directory"), "{err:?}");
}

#[test]
fn a_perturbed_output_fails_without_an_error() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["llama_mlp.safetensors", "bert_layer.safetensors"] {
        // One element off by 1.0: only the elementwise check can notice.
        let mut case = CaseFile::read(name);
        let mut out = case.output_mut();
        out[5] += 1.0;
        case.set_output(&out);
        let path = dir.path().join(format!("plus_one_{name}"));
        case.write(&path);
        let loaded = GoldenCase::load(&path).unwrap();
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let r = loaded.check(&Device::Cpu, dtype, None).unwrap();
            assert!(!r.passed, "{name} {dtype:?}");
            assert!(r.failures.iter().any(|f| f.starts_with("element 5:")), "{name} {dtype:?}: {:?}", r.failures);
            assert!((r.comparison.max_abs - 1.0).abs() < 0.1, "{}", r.comparison.max_abs);
        }
        // Every sign flipped: the correlation and the cosine are -1.
        let mut case = CaseFile::read(name);
        let out: Vec<f64> = case.output_mut().iter().map(|v| -v).collect();
        case.set_output(&out);
        let r = case.load_and_check(dir.path(), &format!("negated_{name}")).unwrap();
        assert!(!r.passed);
        assert!(r.comparison.pcc < -0.9999 && r.comparison.cosine < -0.9999, "{:?}", r.comparison);
        assert_eq!(r.failures.len(), 3, "elementwise, pcc and cosine: {:?}", r.failures);
        // A NaN in the reference.
        let mut case = CaseFile::read(name);
        let mut out = case.output_mut();
        out[0] = f64::NAN;
        case.set_output(&out);
        let r = case.load_and_check(dir.path(), &format!("nan_{name}")).unwrap();
        assert!(!r.passed && !r.comparison.all_finite);
        assert!(r.failures.iter().any(|f| f.contains("NaN")), "{:?}", r.failures);
    }
}

#[test]
fn tight_tolerances_fail_a_real_case() {
    let case = GoldenCase::load(&golden_dir().join("llama_attention_gqa.safetensors")).unwrap();
    let exact = tensile::Tolerance::new(0.0, 0.0, 0.0);
    let r = case.check(&Device::Cpu, DType::F32, Some(exact)).unwrap();
    assert!(!r.passed && r.comparison.max_abs > 0.0, "f32 cannot match a float64 reference exactly");
    assert_eq!(r.tolerance, exact);
}

#[test]
fn a_config_hidden_size_that_disagrees_with_the_input_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    for path in committed_cases() {
        let name = path.file_name().unwrap().to_str().unwrap();
        let mut case = CaseFile::read(name);
        let mut meta = case.case_meta();
        // A linear layer's width is `in_features`, every other block's `hidden_size`.
        let field = if meta["config"].get("in_features").is_some() { "in_features" } else { "hidden_size" };
        let hidden = meta["config"][field].as_u64().unwrap();
        meta["config"][field] = (hidden * 2).into();
        case.set_case_meta(&meta);
        let outcome = std::panic::catch_unwind(|| case.load_and_check(dir.path(), name));
        let err = outcome.unwrap_or_else(|_| panic!("{name}: panicked")).unwrap_err();
        assert!(matches!(&err, Error::InvalidCase { reason, .. } if reason.contains("hidden size")), "{name}: {err:?}");
        // A config that cannot be parsed at all is an error too.
        let mut case = CaseFile::read(name);
        let mut meta = case.case_meta();
        meta["config"] = serde_json::json!({});
        case.set_case_meta(&meta);
        let outcome = std::panic::catch_unwind(|| case.load_and_check(dir.path(), name));
        assert!(outcome.unwrap_or_else(|_| panic!("{name}: panicked")).is_err(), "{name}: empty config accepted");
    }
}

#[test]
fn a_weight_of_the_wrong_shape_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (mut tried, mut transposed) = (0, 0);
    for path in committed_cases() {
        let name = path.file_name().unwrap().to_str().unwrap();
        let weights: Vec<String> = CaseFile::read(name).tensors.iter().map(|t| t.0.clone()).filter(|n| n != "input" && n != "output").collect();
        for weight in weights {
            // Drop the last row (or, for a vector, the last element).
            let mut case = CaseFile::read(name);
            let (_, dtype, shape, data) = case.tensor_mut(&weight);
            assert_eq!(*dtype, Dtype::F32);
            let row_bytes = 4 * shape[1..].iter().product::<usize>();
            shape[0] -= 1;
            data.truncate(data.len() - row_bytes);
            let outcome = std::panic::catch_unwind(|| case.load_and_check(dir.path(), name));
            let result = outcome.unwrap_or_else(|_| panic!("{name}: {weight} with one row fewer panicked"));
            let err = result.err().unwrap_or_else(|| panic!("{name}: {weight} with one row fewer was accepted"));
            assert!(!matches!(err, Error::Panicked { .. }), "{name}: {weight}: {err}");
            let msg = err.to_string();
            assert!(msg.contains(&weight) && msg.contains("shape mismatch"), "{name}: {weight}: the error should name the weight: {msg}");
            assert_eq!(msg.lines().count(), 1, "{msg}");
            tried += 1;
            // Same number of elements, dimensions swapped: must not be silently reshaped.
            let mut case = CaseFile::read(name);
            let (_, _, shape, _) = case.tensor_mut(&weight);
            if shape.len() == 2 && shape[0] != shape[1] {
                shape.swap(0, 1);
                let outcome = std::panic::catch_unwind(|| case.load_and_check(dir.path(), name));
                let result = outcome.unwrap_or_else(|_| panic!("{name}: transposed {weight} panicked"));
                let err = result.err().unwrap_or_else(|| panic!("{name}: transposed {weight} was accepted"));
                assert!(err.to_string().contains(&weight), "{err}");
                transposed += 1;
            }
        }
    }
    assert!(tried >= 50, "{tried} weights");
    assert!(transposed >= 10, "{transposed} transposed weights");
}

/// A spec file in `dir` with one test of `module` on `shape` whose reference is `reference`,
/// planned with the default settings.
fn plan_with_reference(dir: &Path, module: &str, config: &str, shape: &str, reference: &str) -> tensile::Result<tensile::Plan> {
    let spec = dir.join("spec.toml");
    let text = format!(
        "[[test]]\nname = \"golden\"\nmodule = \"{module}\"\nconfig = {config}\ninput_shape = {shape}\nreference = \"{reference}\"\nchecks = [\"correctness\"]\n"
    );
    std::fs::write(&spec, &text).unwrap();
    let tests = tensile::specfile::parse(&text, &spec)?;
    tensile::Plan::new(&tests, &tensile::Settings::default())
}

#[test]
fn a_reference_case_must_fit_the_test_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let norm = golden_dir().join("llama_rms_norm.safetensors");
    let norm = norm.to_str().unwrap();
    let cfg = "{ hidden_size = 64 }";
    // The committed case is (2, 7, 64): the same shape plans, another is refused naming both.
    let plan = plan_with_reference(dir.path(), "llama.rms_norm", cfg, "[2, 7, 64]", norm).unwrap();
    assert_eq!(plan.cases.len(), 1);
    let e = plan_with_reference(dir.path(), "llama.rms_norm", cfg, "[1, 3, 64]", norm).err().unwrap().to_string();
    assert!(e.contains("field `reference`") && e.contains(norm) && e.contains("[2, 7, 64]") && e.contains("[1, 3, 64]"), "{e}");
    // A case of another kind names the file and both kinds, not a missing weight.
    let mlp = golden_dir().join("llama_mlp.safetensors");
    let mlp = mlp.to_str().unwrap();
    let e = plan_with_reference(dir.path(), "llama.attention", "{ hidden_size = 64, num_attention_heads = 4 }", "[2, 5, 64]", mlp).err().unwrap().to_string();
    assert!(e.contains(&format!("reference case {mlp} is for llama.mlp, the test's module is llama.attention")), "{e}");
    // A folder is called a folder, and a missing file missing.
    let e = plan_with_reference(dir.path(), "llama.rms_norm", cfg, "[2, 7, 64]", ".").err().unwrap().to_string();
    assert!(e.contains("field `reference`") && e.contains("is a directory"), "{e}");
    let e = plan_with_reference(dir.path(), "llama.rms_norm", cfg, "[2, 7, 64]", "missing.safetensors").err().unwrap().to_string();
    assert!(e.contains("missing.safetensors") && e.contains("No such file"), "{e}");
    // A file that is not a case is refused by its header, naming it.
    std::fs::write(dir.path().join("junk.safetensors"), b"junk").unwrap();
    let e = plan_with_reference(dir.path(), "llama.rms_norm", cfg, "[2, 7, 64]", "junk.safetensors").err().unwrap().to_string();
    assert!(e.contains("junk.safetensors") && e.contains("not a safetensors file"), "{e}");
}

#[test]
fn the_header_agrees_with_the_full_load_for_every_committed_case() {
    for path in committed_cases() {
        let header = tensile::golden::CaseHeader::read(&path).unwrap();
        let case = GoldenCase::load(&path).unwrap();
        assert_eq!((header.kind, header.input_shape.as_slice(), &header.config), (case.kind, case.input.dims(), &case.config), "{}", path.display());
    }
}
