//! Peak memory of preprocessing is flat in the corpus size (counting allocator; a binary of
//! its own, since the counters are process-wide): a corpus and a 20× repeated copy of it
//! are prepared with the same tokenizer, and the larger one's peak stays within a small
//! margin of the smaller one's, while its shards hold 20× the tokens.

use std::io::Write;
use std::path::Path;
use tensile_foundry::config;
use tensile_foundry::preprocess::preprocess;

tensile::install_counting_allocator!();

fn corpus(dir: &Path, name: &str, copies: usize) -> std::path::PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_corpus");
    let text: String = ["bees.txt", "harbour.txt", "letters.txt"].iter().map(|f| std::fs::read_to_string(src.join(f)).unwrap() + "\n\n").collect();
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    for _ in 0..copies {
        f.write_all(text.as_bytes()).unwrap();
    }
    path
}

fn config(dir: &Path, corpus: &Path, tokenizer: Option<&Path>, out: &str) -> config::LoadedConfig {
    let tok = match tokenizer {
        Some(t) => format!("path = {:?}", t.display().to_string()),
        None => format!("output_dir = {:?}", dir.join("tok").display().to_string()),
    };
    let text = format!(
        "experiment_name = \"m\"\n[data]\nsources = [{:?}]\noutput_dir = {:?}\nmax_sequence_length = 64\nbatch_size = 4\ndocument_separator = \"\"\nshard_tokens = 8192\n\
         [tokenizer]\nvocab_size = 500\n{tok}\n[model]\narchitecture = \"llama\"\nnum_hidden_layers = 1\nhidden_size = 32\nintermediate_size = 64\nnum_attention_heads = 4\n\
         [training]\nlearning_rate = 1e-3\nepochs = 1\noutput_dir = \"run\"\n",
        corpus.display().to_string(),
        dir.join(out).display().to_string()
    );
    config::parse(&text, &dir.join("m.toml")).unwrap()
}

#[test]
fn preprocessing_memory_does_not_grow_with_the_corpus() {
    assert!(tensile::alloc::is_installed());
    let dir = tempfile::tempdir().unwrap();
    let (small, large) = (corpus(dir.path(), "small.txt", 20), corpus(dir.path(), "large.txt", 400));
    // Train the tokenizer once, then prepare both corpora with it.
    let trained = preprocess(&config(dir.path(), &small, None, "d0"), &mut |_| {}).unwrap();
    let tok = trained.dir.join(&trained.manifest.tokenizer);
    let measure = |corpus: &Path, out: &str| {
        let c = config(dir.path(), corpus, Some(&tok), out);
        let (p, peak) = tensile::alloc::measure_peak(|| preprocess(&c, &mut |_| {}).unwrap());
        (p.stats.train.tokens + p.stats.validation.tokens, peak.unwrap())
    };
    let (small_tokens, small_peak) = measure(&small, "d1");
    let (large_tokens, large_peak) = measure(&large, "d2");
    println!("20 copies: {small_tokens} tokens, peak {small_peak} bytes; 400 copies: {large_tokens} tokens, peak {large_peak} bytes");
    assert_eq!(large_tokens, 20 * small_tokens, "the large corpus is the small one 20 times");
    // The large corpus is 2.8 MB of text; holding it, or its tokens, would add megabytes.
    assert!(large_peak < small_peak + small_peak / 2 + (256 << 10), "peak grew from {small_peak} to {large_peak} bytes");
}
