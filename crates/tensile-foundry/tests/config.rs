//! The experiment config: the documented example loads, every kind of mistake is one line at
//! `file:line:col` naming the field, defaults are the documented ones, and the derived values
//! (steps, warmup, parameter count) agree with their definitions and with the built model.

use candle_core::{DType, Device};
use std::path::{Path, PathBuf};
use tensile_foundry::config::{self, predicted_parameters, Architecture, ExperimentConfig, LastChunk, NonUtf8, Objective, Precision, TokenizerKind};
use tensile_nn::init::MetaInit;
use tensile_nn::Block;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/foundry/tiny.toml")
}

const MINIMAL: &str = r#"experiment_name = "t"
[data]
sources = ["c.txt"]
output_dir = "d"
max_sequence_length = 32
batch_size = 4
[tokenizer]
vocab_size = 300
output_dir = "tok"
[model]
architecture = "llama"
num_hidden_layers = 2
hidden_size = 64
intermediate_size = 96
num_attention_heads = 4
[training]
learning_rate = 1e-3
train_steps = 100
output_dir = "run"
"#;

fn parse(text: &str) -> Result<ExperimentConfig, String> {
    config::parse(text, Path::new("exp.toml")).map(|c| c.config).map_err(|e| e.to_string())
}

/// MINIMAL with `old` replaced by `new`.
fn with(old: &str, new: &str) -> String {
    assert!(MINIMAL.contains(old), "{old}");
    MINIMAL.replacen(old, new, 1)
}

#[test]
fn the_documented_example_loads_with_its_paths_relative_to_it() {
    let loaded = config::load(&example()).unwrap();
    let c = &loaded.config;
    assert_eq!((c.experiment_name.as_str(), c.random_seed), ("tiny-fortunes", 42));
    assert_eq!((c.model.architecture, c.objective()), (Architecture::Llama, Objective::CausalLm));
    assert_eq!(loaded.resolve(Path::new("x")), example().parent().unwrap().join("x"));
}

#[test]
fn optional_fields_take_their_documented_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.random_seed, 0);
    assert_eq!((c.data.validation_fraction, c.data.shuffle, c.data.last_chunk, c.data.non_utf8), (0.05, true, LastChunk::Drop, NonUtf8::Error));
    assert!(c.data.validation_files.is_empty());
    assert_eq!((c.tokenizer.kind, c.tokenizer.path.as_ref()), (TokenizerKind::Bpe, None));
    assert_eq!(c.special_tokens(), ["<pad>", "<s>", "</s>", "<unk>"]);
    let t = &c.training;
    assert_eq!((t.betas, t.eps, t.weight_decay, t.gradient_accumulation_steps, t.max_grad_norm), ([0.9, 0.999], 1e-8, 0.01, 1, 1.0));
    assert_eq!((t.precision, t.checkpoint_every, t.keep_checkpoints, t.warmup_steps, t.warmup_ratio), (Precision::F32, 0, 3, None, None));
    assert_eq!((c.logging.level.as_str(), c.logging.tensorboard, c.logging.dir.as_ref()), ("info", false, None));
    assert_eq!((c.model.dropout, c.model.tie_word_embeddings, c.model.num_key_value_heads), (0.0, false, None));
    // A masked LM adds <mask>.
    let bert = parse(&with("architecture = \"llama\"", "architecture = \"bert\"")).unwrap();
    assert_eq!((bert.objective(), bert.special_tokens().last().unwrap().as_str()), (Objective::MaskedLm, "<mask>"));
}

#[test]
fn each_mistake_is_one_line_at_its_place_naming_the_field() {
    for (old, new, place, mentions) in [
        ("vocab_size = 300", "vocab_size = -5", "exp.toml:8:14", "invalid value"),
        ("vocab_size = 300", "vocab_size = 0", "exp.toml:8:14", "field `tokenizer.vocab_size`: 0 is not in 1"),
        ("vocab_size = 300", "vocab_size = 4", "exp.toml:8:14", "leaves no room beside the 4 special tokens"),
        ("num_attention_heads = 4", "num_attention_heads = 5", "exp.toml:15:23", "5 heads do not divide hidden_size 64"),
        ("learning_rate = 1e-3", "learning_rate = 0.0", "exp.toml:17:17", "field `training.learning_rate`: must be a finite number > 0, got 0"),
        ("train_steps = 100", "train_steps = 100\nwarmup_steps = 200", "exp.toml:19:16", "200 warmup steps are more than the 100 training steps"),
        ("train_steps = 100", "train_steps = 100\nepochs = 2", "exp.toml:18:15", "not both"),
        ("train_steps = 100", "warmup_ratio = 0.1", "exp.toml:16:1", "missing `epochs` or `train_steps`"),
        ("experiment_name = \"t\"\n", "", "exp.toml:1:1", "missing field `experiment_name`"),
        ("batch_size = 4", "batch_size = 4\ncolour = 3", "exp.toml:7:1", "unknown field `colour`"),
        ("sources = [\"c.txt\"]", "sources = []", "exp.toml:3:11", "names no file"),
        ("architecture = \"llama\"", "architecture = \"gpt\"", "exp.toml:11:16", "unknown variant `gpt`"),
        ("learning_rate = 1e-3", "learning_rate = \"fast\"", "exp.toml:17:17", "invalid type"),
        ("train_steps = 100", "train_steps = 100\nbetas = [0.9, 1.5]", "exp.toml:19:9", "beta2 = 1.5 is not in [0, 1)"),
        ("num_hidden_layers = 2", "num_hidden_layers = 2\nobjective = \"masked_lm\"", "exp.toml:13:13", "train as causallm only"),
        ("num_hidden_layers = 2", "num_hidden_layers = 2\nnum_key_value_heads = 3", "exp.toml:13:23", "3 key/value heads do not divide 4"),
        ("num_hidden_layers = 2", "num_hidden_layers = 2\nhidden_act = \"swish2\"", "exp.toml:13:14", "hidden_act"),
        ("output_dir = \"tok\"", "path = \"t.json\"\noutput_dir = \"tok\"\nkind = \"sentencepiece\"", "exp.toml:11:8", "unknown variant `sentencepiece`"),
        ("max_sequence_length = 32", "max_sequence_length = 1", "exp.toml:5:23", "1 is not in 2"),
    ] {
        let e = parse(&with(old, new)).unwrap_err();
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.starts_with(place), "{new}: `{e}` should start with {place}");
        assert!(e.contains(mentions), "{new}: `{e}` should mention `{mentions}`");
    }
    // The tokenizer needs somewhere to go when it is trained.
    let e = parse(&with("output_dir = \"tok\"", "kind = \"unigram\"")).unwrap_err();
    assert!(e.contains("needs an `output_dir`"), "{e}");
    assert!(parse(&with("output_dir = \"tok\"", "path = \"t.json\"")).is_ok(), "a loaded tokenizer needs none");
    let e = config::load(Path::new("/nonexistent/exp.toml")).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/exp.toml"), "{e}");
}

#[test]
fn steps_and_warmup_follow_their_definitions() {
    let c = parse(&with("train_steps = 100", "epochs = 3\nwarmup_ratio = 0.25\ngradient_accumulation_steps = 2")).unwrap();
    // ⌈chunks / (4 × 2)⌉ per epoch.
    for (chunks, per_epoch) in [(1, 1), (8, 1), (9, 2), (80, 10), (81, 11)] {
        assert_eq!(c.train_steps(chunks), 3 * per_epoch, "{chunks} chunks");
    }
    assert_eq!((c.warmup_steps(30), c.warmup_steps(31), c.warmup_steps(0)), (8, 8, 0), "⌈0.25 × steps⌉");
    let fixed = parse(&with("train_steps = 100", "train_steps = 100\nwarmup_steps = 7")).unwrap();
    assert_eq!((fixed.train_steps(1_000_000), fixed.warmup_steps(100)), (100, 7));
    assert_eq!(parse(MINIMAL).unwrap().warmup_steps(100), 0);
}

fn built_parameters(c: &ExperimentConfig, vocab: usize) -> usize {
    let vb = MetaInit::var_builder(DType::F32, &Device::Cpu);
    let count = |b: &dyn Block| b.parameters().iter().map(|(_, t)| t.elem_count()).sum::<usize>();
    match c.library_config(vocab).unwrap() {
        config::LibraryConfig::Llama(l) => count(&tensile_nn::llama::Llama::new(&l, vb).unwrap()),
        config::LibraryConfig::Bert(b) => count(&tensile_nn::heads::MaskedLm::bert(&b, vb).unwrap()),
        config::LibraryConfig::ModernBert(m) => count(&tensile_nn::heads::MaskedLm::modernbert(&m, vb).unwrap()),
    }
}

#[test]
fn the_predicted_parameter_count_equals_the_built_models() {
    for (arch, extra) in [
        ("llama", ""),
        ("llama", "\nnum_key_value_heads = 2\ntie_word_embeddings = true"),
        ("bert", ""),
        ("modernbert", ""),
        ("modernbert", "\nnum_hidden_layers = 3"),
    ] {
        let text = with("architecture = \"llama\"", &format!("architecture = \"{arch}\""))
            .replace("num_hidden_layers = 2", if extra.contains("layers") { "" } else { "num_hidden_layers = 2" });
        let text = text.replace("num_attention_heads = 4", &format!("num_attention_heads = 4{extra}"));
        let c = parse(&text).unwrap_or_else(|e| panic!("{arch}{extra}: {e}"));
        for vocab in [300, 1000] {
            assert_eq!(predicted_parameters(&c, vocab).unwrap(), built_parameters(&c, vocab), "{arch}{extra} at vocab {vocab}");
        }
    }
}
