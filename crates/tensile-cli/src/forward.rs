//! `tensile forward` and `tensile classify`.

use crate::{EXIT_FAILED, EXIT_OK};
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use tensile_nn::inference::{Classifier, ForwardInputs};
use tensile_nn::lora::LoraModel;

#[derive(Args)]
pub struct ForwardArgs {
    /// Hugging Face model directory (config.json, model.safetensors).
    #[arg(long)]
    model: PathBuf,
    /// JSON file: {"input_ids": [[…]], "attention_mask": [[…]]} (the mask is optional).
    #[arg(long)]
    inputs: PathBuf,
    /// A PEFT LoRA adapter directory (adapter_config.json, adapter_model.safetensors) to
    /// apply to the model's linear layers.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Merge the adapter into the base weights before the forward (needs --adapter).
    #[arg(long, requires = "adapter")]
    merge_adapter: bool,
    #[command(flatten)]
    placement: crate::placement::Placement,
    /// Print {"model_type", "output_name", "shape", "output"} as JSON.
    #[arg(long)]
    json: bool,
}

/// A nested list of `values` in `shape`, as JSON (NaN and infinity print as null).
fn nested(values: &[f64], shape: &[usize]) -> serde_json::Value {
    match shape {
        [] | [_] => serde_json::json!(values),
        [n, rest @ ..] => {
            let step = values.len() / n.max(&1);
            serde_json::Value::Array(values.chunks(step.max(1)).map(|c| nested(c, rest)).collect())
        }
    }
}

pub fn run_forward(args: &ForwardArgs) -> Result<u8> {
    let (device, dtype) = args.placement.resolve()?;
    let model = tensile_nn::load_pretrained(&args.model, dtype, &device).with_context(|| format!("failed to load model at {}", args.model.display()))?;
    if let Some(dir) = &args.adapter {
        let mut lora = LoraModel::attach(model.block());
        lora.load_adapter(dir, "default", &device).with_context(|| format!("failed to load adapter at {}", dir.display()))?;
        if args.merge_adapter {
            lora.merge()?;
        }
    }
    let inputs = ForwardInputs::load(&args.inputs)?;
    let (ids, mask) = inputs.tensors(&args.inputs, &model, &device)?;
    let out = model.forward(&ids, mask.as_ref())?;
    let shape = out.dims().to_vec();
    let values = out.to_dtype(candle_core::DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let finite = values.iter().all(|v| v.is_finite());
    if args.json {
        let doc = serde_json::json!({
            "model_type": model.model_type(),
            "architecture": model.architecture(),
            "output_name": model.output_name(),
            "adapter": args.adapter.as_ref().map(|d| d.display().to_string()),
            "merged": args.merge_adapter,
            "shape": shape,
            "output": nested(&values, &shape),
        });
        println!("{doc}");
    } else {
        let head: Vec<String> = values.iter().take(6).map(|v| format!("{v:+.5}")).collect();
        println!("{} {} {:?} [{} …]", model.architecture(), model.output_name(), shape, head.join(", "));
    }
    if finite {
        return Ok(EXIT_OK);
    }
    eprintln!("error: the output holds NaN or infinity");
    Ok(EXIT_FAILED)
}

#[derive(Args)]
pub struct ClassifyArgs {
    /// Hugging Face model directory with a sequence-classification head and tokenizer.json.
    #[arg(long)]
    model: PathBuf,
    /// Text to classify; repeat for several.
    #[arg(long = "text", required = true)]
    texts: Vec<String>,
    #[command(flatten)]
    placement: crate::placement::Placement,
    /// Print {"predictions": [{"text", "label", "scores", "logits"}, …]} as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run_classify(args: &ClassifyArgs) -> Result<u8> {
    let (device, dtype) = args.placement.resolve()?;
    let classifier = Classifier::load(&args.model, dtype, &device).with_context(|| format!("failed to load model at {}", args.model.display()))?;
    let texts: Vec<&str> = args.texts.iter().map(String::as_str).collect();
    let predictions = classifier.classify(&texts)?;
    let finite = predictions.iter().all(|p| p.logits.iter().all(|v| v.is_finite()));
    if args.json {
        let list: Vec<serde_json::Value> = predictions
            .iter()
            .map(|p| {
                let scores: serde_json::Map<String, serde_json::Value> = p.scores.iter().map(|(l, v)| (l.clone(), serde_json::json!(v))).collect();
                serde_json::json!({"text": p.text, "label": p.label, "scores": scores, "logits": p.logits})
            })
            .collect();
        println!("{}", serde_json::json!({ "architecture": classifier.model().architecture(), "predictions": list }));
    } else {
        for p in &predictions {
            let scores: Vec<String> = p.scores.iter().map(|(l, v)| format!("{l} {v:.4}")).collect();
            let logits: Vec<String> = p.logits.iter().map(|v| format!("{v:+.4}")).collect();
            println!("{}  [{}]  logits [{}]  {}", p.label, scores.join(", "), logits.join(", "), p.text);
        }
    }
    if finite {
        return Ok(EXIT_OK);
    }
    eprintln!("error: the logits hold NaN or infinity");
    Ok(EXIT_FAILED)
}
