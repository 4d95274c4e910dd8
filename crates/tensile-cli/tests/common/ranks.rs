//! A tiny training experiment and what to compare between runs of it, for the data-parallel
//! end-to-end tests (one process against several ranks, a run against its resume).

use std::path::{Path, PathBuf};

/// A Llama of 2 layers × 64 with dropout over the committed corpus, in `out/{name}.toml`,
/// prepared: batches of 4 chunks of 32 tokens and 3 accumulation steps, so that a step has
/// micro-batches to split; `training` adds to the `[training]` section.
pub fn experiment(out: &Path, name: &str, seed: u64, training: &str) -> PathBuf {
    let corpus = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tensile-foundry/tests/data/tiny_corpus/*.txt"));
    let text = format!(
        "experiment_name = \"{name}\"\nrandom_seed = {seed}\n[data]\nsources = [{:?}]\noutput_dir = \"data\"\nmax_sequence_length = 32\nbatch_size = 4\n\
         validation_fraction = 0.1\ndocument_separator = \"\"\n[tokenizer]\nvocab_size = 400\noutput_dir = \"tokenizer\"\n[model]\narchitecture = \"llama\"\n\
         num_hidden_layers = 2\nhidden_size = 64\nintermediate_size = 128\nnum_attention_heads = 2\ndropout = 0.1\n[training]\nlearning_rate = 3e-3\n\
         warmup_steps = 2\ngradient_accumulation_steps = 3\noutput_dir = \"run\"\n{training}\n",
        corpus.display().to_string()
    );
    let path = out.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    let o = super::tensile(&["foundry", "preprocess", "--config", path.to_str().unwrap(), "--no-progress"]);
    assert_eq!(o.status.code(), Some(0), "{}", super::stderr(&o));
    path
}

/// The model and optimizer files of the checkpoint at `step` of the run in `dir`.
pub fn last(dir: &Path, step: u64) -> Vec<Vec<u8>> {
    let ck = dir.join(format!("run/checkpoints/step-{step:08}"));
    ["model.safetensors", "optimizer.safetensors"].iter().map(|f| std::fs::read(ck.join(f)).unwrap_or_else(|e| panic!("{}: {e}", ck.display()))).collect()
}

/// The bits of every logged step's loss of the run in `dir`.
pub fn losses(dir: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(dir.join("run/metrics.jsonl")).unwrap();
    text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?.get("loss")?.as_f64()).map(f64::to_bits).collect()
}
