//! PEFT's `adapter_config.json` for LoRA, and which modules an adapter targets.

use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which modules an adapter wraps, as PEFT writes it: a list of names or a regular expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    /// Module names. A plain name (`q_proj`) matches a module whose path is that name or ends
    /// in `.name`, as in PEFT; a name with glob characters (`*.mlp.*`, `model.layers.?.*`)
    /// matches the whole path as a glob.
    List(Vec<String>),
    /// A regular expression that must match the whole module path (PEFT's `re.fullmatch`).
    Regex(String),
}

impl TargetModules {
    /// Whether the module at `path` is targeted.
    pub fn matches(&self, path: &str) -> crate::Result<bool> {
        match self {
            Self::List(names) => {
                for n in names {
                    if is_glob(n) {
                        let p = glob::Pattern::new(n).map_err(|e| Error::Lora(format!("target module pattern `{n}`: {e}")))?;
                        if p.matches(path) {
                            return Ok(true);
                        }
                    } else if path == n || path.ends_with(&format!(".{n}")) {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Self::Regex(re) => Ok(full_regex(re)?.is_match(path)),
        }
    }
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn full_regex(re: &str) -> crate::Result<regex::Regex> {
    regex::Regex::new(&format!("^(?:{re})$")).map_err(|e| Error::Lora(format!("target_modules regex `{re}`: {e}")))
}

/// A LoRA adapter's configuration under PEFT's field names, so that `adapter_config.json`
/// files load and save unchanged. Fields this crate does not interpret are kept in `extra`
/// and written back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank of the update.
    pub r: usize,
    /// Numerator of the scaling.
    pub lora_alpha: f64,
    /// Dropout on the adapter's input in training.
    #[serde(default)]
    pub lora_dropout: f32,
    /// Scaling `alpha / √r` (rank-stabilised LoRA) instead of `alpha / r`.
    #[serde(default)]
    pub use_rslora: bool,
    /// Whether the base layer stores its weight `(in, out)` (GPT-2's `Conv1D`).
    #[serde(default)]
    pub fan_in_fan_out: bool,
    /// The modules wrapped.
    pub target_modules: TargetModules,
    /// PEFT's bias mode; only `"none"` is supported.
    #[serde(default = "none")]
    pub bias: String,
    /// Per-module ranks, keyed by a name or pattern as in `target_modules`.
    #[serde(default)]
    pub rank_pattern: BTreeMap<String, usize>,
    /// Per-module alphas, keyed like `rank_pattern`.
    #[serde(default)]
    pub alpha_pattern: BTreeMap<String, f64>,
    /// Always `"LORA"`.
    #[serde(default = "lora")]
    pub peft_type: String,
    /// Every other field of the file, kept as written.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// PEFT fields this crate does not implement.
const UNSUPPORTED: &[&str] = &[
    "use_dora",
    "modules_to_save",
    "layers_to_transform",
    "layers_pattern",
    "exclude_modules",
    "layer_replication",
    "target_parameters",
    "trainable_token_indices",
    "lora_bias",
    "use_qalora",
    "alora_invocation_tokens",
    "use_bdlora",
];

fn none() -> String {
    "none".to_string()
}

fn lora() -> String {
    "LORA".to_string()
}

impl LoraConfig {
    /// A configuration with PEFT's defaults for everything but rank, alpha and targets.
    pub fn new(r: usize, lora_alpha: f64, target_modules: &[&str]) -> Self {
        Self {
            r,
            lora_alpha,
            lora_dropout: 0.0,
            use_rslora: false,
            fan_in_fan_out: false,
            target_modules: TargetModules::List(target_modules.iter().map(|s| s.to_string()).collect()),
            bias: none(),
            rank_pattern: BTreeMap::new(),
            alpha_pattern: BTreeMap::new(),
            peft_type: lora(),
            extra: BTreeMap::new(),
        }
    }

    /// Rejects what this crate cannot apply faithfully, naming the field: a zero rank, a
    /// non-finite alpha, a dropout outside [0, 1), a bias mode other than `none`, DoRA,
    /// `modules_to_save` and `layers_to_transform`.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |field: &str, why: String| Err(Error::Lora(format!("adapter_config field `{field}`: {why}")));
        if self.peft_type != "LORA" {
            return bad("peft_type", format!("`{}` is not a LoRA adapter", self.peft_type));
        }
        if self.r == 0 || self.rank_pattern.values().any(|&r| r == 0) {
            return bad("r", "the rank must be at least 1".into());
        }
        if !self.lora_alpha.is_finite() || self.alpha_pattern.values().any(|a| !a.is_finite()) {
            return bad("lora_alpha", "must be a finite number".into());
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return bad("lora_dropout", format!("{} is not in [0, 1)", self.lora_dropout));
        }
        if self.bias != "none" {
            return bad("bias", format!("`{}` is not supported (only \"none\")", self.bias));
        }
        if let TargetModules::List(l) = &self.target_modules {
            if l.is_empty() {
                return bad("target_modules", "names no module".into());
            }
        }
        // Fields that change which modules are wrapped or what a wrapped module computes;
        // each is accepted only when unset (null, false or empty).
        for field in UNSUPPORTED {
            match self.extra.get(*field) {
                None | Some(serde_json::Value::Null) | Some(serde_json::Value::Bool(false)) => {}
                Some(serde_json::Value::Array(a)) if a.is_empty() => {}
                Some(serde_json::Value::Object(o)) if o.is_empty() => {}
                Some(v) => return bad(field, format!("{v} is not supported")),
            }
        }
        Ok(())
    }

    /// The rank and scaling of the adapter on the module at `path`, after `rank_pattern` and
    /// `alpha_pattern` (a key matches as a target name does).
    pub fn rank_and_scaling(&self, path: &str) -> crate::Result<(usize, f64)> {
        let pick = |keys: Vec<&String>| -> crate::Result<Option<String>> {
            for k in keys {
                if TargetModules::List(vec![k.clone()]).matches(path)? || full_regex(&format!("(.*\\.)?{k}"))?.is_match(path) {
                    return Ok(Some(k.clone()));
                }
            }
            Ok(None)
        };
        let r = pick(self.rank_pattern.keys().collect())?.map_or(self.r, |k| self.rank_pattern[&k]);
        let alpha = pick(self.alpha_pattern.keys().collect())?.map_or(self.lora_alpha, |k| self.alpha_pattern[&k]);
        let scaling = if self.use_rslora { alpha / (r as f64).sqrt() } else { alpha / r as f64 };
        Ok((r, scaling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_match_a_path_suffix_and_globs_the_whole_path() {
        let t = TargetModules::List(vec!["q_proj".into(), "*.mlp.*".into()]);
        assert!(t.matches("model.layers.0.self_attn.q_proj").unwrap());
        assert!(t.matches("q_proj").unwrap());
        assert!(!t.matches("model.layers.0.self_attn.qq_proj").unwrap());
        assert!(t.matches("model.layers.1.mlp.up_proj").unwrap());
        assert!(!t.matches("model.layers.1.self_attn.v_proj").unwrap());
    }

    #[test]
    fn a_regex_must_match_the_whole_path() {
        let t = TargetModules::Regex(r".*\.mlp\.(gate|up)_proj".into());
        assert!(t.matches("model.layers.0.mlp.up_proj").unwrap());
        assert!(!t.matches("model.layers.0.mlp.down_proj").unwrap());
        assert!(!t.matches("model.layers.0.mlp.up_proj.x").unwrap());
        assert!(TargetModules::Regex("(".into()).matches("x").is_err());
    }

    #[test]
    fn scaling_is_alpha_over_r_or_over_its_root_with_patterns_per_module() {
        let mut c = LoraConfig::new(4, 8.0, &["q_proj"]);
        assert_eq!(c.rank_and_scaling("a.q_proj").unwrap(), (4, 2.0));
        c.use_rslora = true;
        assert_eq!(c.rank_and_scaling("a.q_proj").unwrap(), (4, 4.0));
        c.rank_pattern.insert("v_proj".into(), 16);
        c.alpha_pattern.insert("v_proj".into(), 32.0);
        assert_eq!(c.rank_and_scaling("layers.0.v_proj").unwrap(), (16, 8.0));
    }

    #[test]
    fn a_peft_file_round_trips_and_unsupported_fields_are_named() {
        let text = r#"{"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"], "lora_dropout": 0.1,
            "bias": "none", "peft_type": "LORA", "task_type": "CAUSAL_LM", "use_dora": false}"#;
        let c: LoraConfig = serde_json::from_str(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.extra["task_type"], "CAUSAL_LM");
        let back: LoraConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        for (field, patch) in [
            ("use_dora", r#""use_dora": true"#),
            ("bias", r#""bias": "all""#),
            ("r", r#""r": 0"#),
            ("lora_dropout", r#""lora_dropout": 1.5"#),
            ("peft_type", r#""peft_type": "IA3""#),
            ("modules_to_save", r#""modules_to_save": ["lm_head"]"#),
        ] {
            let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
            let p: serde_json::Value = serde_json::from_str(&format!("{{{patch}}}")).unwrap();
            v.as_object_mut().unwrap().extend(p.as_object().unwrap().clone());
            let err = serde_json::from_value::<LoraConfig>(v).unwrap().validate().unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
        let empty = LoraConfig::new(2, 2.0, &[]);
        assert!(empty.validate().unwrap_err().to_string().contains("target_modules"));
    }
}
