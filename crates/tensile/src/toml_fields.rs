//! The TOML shapes of spec-file fields that take more than one form, read with errors that say
//! what was expected, and the `config` table converted to JSON by hand.
//!
//! serde's untagged enums would do the first job with one message for every mistake ("data did
//! not match any variant"); these visitors name the accepted forms instead, and reject unknown
//! keys inside the table forms. The config is converted here rather than through `serde_json`
//! because `serde_json` turns NaN and ±inf into `null`, and the block then reports "expected
//! f64" far from the culprit: here every value keeps its place in the file, so a non-finite
//! number is reported as `config.rms_norm_eps` at its own line and column.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use toml::Spanned;

/// The `[[test]]` entries: an array of tables. `[test]` (one table) is the likeliest slip, so
/// it gets its own message.
pub(crate) fn array_of_tables<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    struct Tables<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for Tables<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of [[test]] tables")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while let Some(t) = seq.next_element()? {
                out.push(t);
            }
            Ok(out)
        }
        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Vec<T>, A::Error> {
            Err(de::Error::custom("write `[[test]]` with two brackets (an array of tables, one per test), not `[test]`"))
        }
    }
    d.deserialize_seq(Tables(std::marker::PhantomData))
}

/// A name or a list of names (`dtype`, `device`).
#[derive(Clone)]
pub(crate) struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a name or a list of names")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `tolerance`: one number for every threshold, or some of them by name.
pub(crate) enum ToleranceEntry {
    Uniform(f64),
    Full(crate::tolerance::ToleranceOverride),
}

impl<'de> Deserialize<'de> for ToleranceEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ToleranceEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a table { atol, rtol, min_pcc, min_cosine, atol_rms, min_snr_db }")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ToleranceEntry, E> {
                Ok(ToleranceEntry::Uniform(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ToleranceEntry, E> {
                Ok(ToleranceEntry::Uniform(v as f64))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ToleranceEntry, A::Error> {
                crate::tolerance::ToleranceOverride::deserialize(de::value::MapAccessDeserializer::new(map)).map(ToleranceEntry::Full)
            }
        }
        d.deserialize_any(V)
    }
}

/// `expect_scaling`: a named growth, or an exponent with its tolerance.
pub(crate) enum ScalingEntry {
    Named(String),
    Exponent(ExponentEntry),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExponentEntry {
    pub exponent: f64,
    pub tolerance: Option<f64>,
}

impl<'de> Deserialize<'de> for ScalingEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ScalingEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a growth name or a table { exponent, tolerance }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScalingEntry, E> {
                Ok(ScalingEntry::Named(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ScalingEntry, A::Error> {
                ExponentEntry::deserialize(de::value::MapAccessDeserializer::new(map)).map(ScalingEntry::Exponent)
            }
        }
        d.deserialize_any(V)
    }
}

/// One value of the `config` table as written, each nested value with its place in the file.
pub(crate) enum ConfigValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Spanned<ConfigValue>>),
    Table(Vec<(String, Spanned<ConfigValue>)>),
}

/// The key under which toml hands over a date or time: `config.json` has none, so a config
/// value that is one is rejected.
const DATETIME_KEY: &str = "$__toml_private_datetime";

impl<'de> Deserialize<'de> for ConfigValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ConfigValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a config.json value (a number, string, boolean, array or table)")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ConfigValue, E> {
                Ok(ConfigValue::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ConfigValue, E> {
                Ok(ConfigValue::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ConfigValue, E> {
                i64::try_from(v).map(ConfigValue::Int).map_err(|_| E::custom(format!("integer {v} is too large")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ConfigValue, E> {
                Ok(ConfigValue::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ConfigValue, E> {
                Ok(ConfigValue::Str(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ConfigValue, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element()? {
                    out.push(v);
                }
                Ok(ConfigValue::Array(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ConfigValue, A::Error> {
                let mut out = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key == DATETIME_KEY {
                        return Err(de::Error::custom("a date or time is not a config.json value"));
                    }
                    out.push((key, map.next_value()?));
                }
                Ok(ConfigValue::Table(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Why a config value cannot be converted: its dotted path and the reason, at `span`.
pub(crate) struct ConfigError {
    pub path: String,
    pub span: std::ops::Range<usize>,
    pub reason: String,
}

/// Converts a config value to JSON, rejecting non-finite numbers (JSON has none; `serde_json`
/// would write them as `null`) with the path of the value, e.g. `config.rope_scaling.factor`.
pub(crate) fn to_json(value: &Spanned<ConfigValue>, path: &str) -> Result<serde_json::Value, ConfigError> {
    use serde_json::Value as J;
    let err = |reason: &str| ConfigError { path: path.to_string(), span: value.span(), reason: reason.to_string() };
    Ok(match value.get_ref() {
        ConfigValue::Bool(b) => J::Bool(*b),
        ConfigValue::Int(i) => J::from(*i),
        ConfigValue::Float(f) => J::Number(serde_json::Number::from_f64(*f).ok_or_else(|| err(&format!("must be finite, got {f}")))?),
        ConfigValue::Str(s) => J::String(s.clone()),
        ConfigValue::Array(items) => J::Array(items.iter().enumerate().map(|(i, v)| to_json(v, &format!("{path}[{i}]"))).collect::<Result<_, _>>()?),
        ConfigValue::Table(entries) => {
            J::Object(entries.iter().map(|(k, v)| Ok((k.clone(), to_json(v, &format!("{path}.{k}"))?))).collect::<Result<_, ConfigError>>()?)
        }
    })
}
