//! The quantization formats: this crate's int8 and int4, and GGUF's block formats.

use crate::error::Error;
use candle_core::quantized::GgmlDType;
use std::fmt;
use std::str::FromStr;

/// How a weight matrix is quantized. Quantization runs along the input dimension (each row of
/// an `(out, in)` weight), as GGUF does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantFormat {
    /// 8-bit symmetric with one f32 scale per output channel (row): `w ≈ q · s`,
    /// `q ∈ [−127, 127]`.
    Int8,
    /// 4-bit with one f32 scale per `group` consecutive inputs; symmetric (`q ∈ [−8, 7]`,
    /// `w ≈ q · s`) or asymmetric (`q ∈ [0, 15]`, `w ≈ q · s + m` with an f32 minimum `m`).
    Int4 {
        /// Inputs per group: 32, 64 or 128.
        group: usize,
        /// Symmetric (scale only) or asymmetric (scale and minimum).
        symmetric: bool,
    },
    /// A GGUF block format, run by candle's quantized kernels (`q4_0`, `q4_1`, `q8_0`,
    /// `q4_k`, `q6_k`, …).
    Ggml(GgmlDType),
}

/// The GGUF formats by name, as llama.cpp spells them in lower case.
const GGML: [(&str, GgmlDType); 10] = [
    ("q4_0", GgmlDType::Q4_0),
    ("q4_1", GgmlDType::Q4_1),
    ("q5_0", GgmlDType::Q5_0),
    ("q5_1", GgmlDType::Q5_1),
    ("q8_0", GgmlDType::Q8_0),
    ("q2_k", GgmlDType::Q2K),
    ("q3_k", GgmlDType::Q3K),
    ("q4_k", GgmlDType::Q4K),
    ("q5_k", GgmlDType::Q5K),
    ("q6_k", GgmlDType::Q6K),
];

impl QuantFormat {
    /// The formats the accuracy bounds are documented for, in a stable order.
    pub const DOCUMENTED: [QuantFormat; 11] = [
        Self::Int8,
        Self::Int4 { group: 32, symmetric: true },
        Self::Int4 { group: 64, symmetric: true },
        Self::Int4 { group: 128, symmetric: true },
        Self::Int4 { group: 32, symmetric: false },
        Self::Int4 { group: 128, symmetric: false },
        Self::Ggml(GgmlDType::Q4_0),
        Self::Ggml(GgmlDType::Q4_1),
        Self::Ggml(GgmlDType::Q8_0),
        Self::Ggml(GgmlDType::Q4K),
        Self::Ggml(GgmlDType::Q6K),
    ];

    /// How many inputs share one block of scales: the row width must be a multiple of it
    /// (1 for int8, whose scale is per row).
    pub fn block(self) -> usize {
        match self {
            Self::Int8 => 1,
            Self::Int4 { group, .. } => group,
            Self::Ggml(d) => d.block_size(),
        }
    }

    /// Bits per weight as stored, scales included, for a row of `width` inputs.
    pub fn bits_per_weight(self, width: usize) -> f64 {
        match self {
            Self::Int8 => 8.0 + 32.0 / width as f64,
            Self::Int4 { group, symmetric } => 4.0 + if symmetric { 32.0 } else { 64.0 } / group as f64,
            Self::Ggml(d) => 8.0 * d.type_size() as f64 / d.block_size() as f64,
        }
    }

    /// Whether the format keeps 8 bits or more per weight: such formats are held to the
    /// tighter accuracy bound.
    pub fn is_8bit(self) -> bool {
        matches!(self, Self::Int8 | Self::Ggml(GgmlDType::Q8_0 | GgmlDType::Q8_1 | GgmlDType::Q8K))
    }

    /// The least Pearson correlation a quantized matmul output must keep with the f32 one on
    /// standard normal data (the bound the tests hold every format to, and the default
    /// `min_pcc` of a quantized module compared with its f32 original): 0.9999 for 8-bit
    /// formats, 0.99 for the rest.
    pub fn min_pcc(self) -> f64 {
        if self.is_8bit() {
            0.9999
        } else {
            0.99
        }
    }

    /// The most relative Frobenius error `‖Ŵ − W‖ / ‖W‖` a standard normal matrix may show
    /// after a round trip. The bounds sit about 1.5× above the error the format's step size
    /// predicts, and each is tested.
    pub fn max_relative_error(self) -> f64 {
        match self {
            Self::Int8 => 0.012,
            Self::Ggml(GgmlDType::Q8_0) => 0.008,
            Self::Ggml(GgmlDType::Q6K) => 0.028,
            Self::Ggml(GgmlDType::Q4K) | Self::Ggml(GgmlDType::Q4_1) | Self::Ggml(GgmlDType::Q4_0) => 0.12,
            Self::Int4 { symmetric: false, .. } => 0.12,
            _ => 0.16,
        }
    }
}

impl fmt::Display for QuantFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int8 => f.write_str("int8"),
            Self::Int4 { group, symmetric } => write!(f, "int4-g{group}{}", if *symmetric { "" } else { "-asym" }),
            Self::Ggml(d) => match GGML.iter().find(|(_, g)| g == d) {
                Some((n, _)) => f.write_str(n),
                None => write!(f, "{d:?}"),
            },
        }
    }
}

impl FromStr for QuantFormat {
    type Err = Error;

    /// `int8`, `int4-g{32,64,128}` with an optional `-asym`, or a GGUF name (`q4_0`, `q4_k`).
    fn from_str(s: &str) -> Result<Self, Error> {
        let lower = s.to_ascii_lowercase();
        if lower == "int8" {
            return Ok(Self::Int8);
        }
        if let Some(rest) = lower.strip_prefix("int4-g") {
            let (g, symmetric) = match rest.strip_suffix("-asym") {
                Some(g) => (g, false),
                None => (rest, true),
            };
            return match g.parse::<usize>() {
                Ok(group @ (32 | 64 | 128)) => Ok(Self::Int4 { group, symmetric }),
                _ => Err(Error::Quant(format!("`{s}`: an int4 group is 32, 64 or 128"))),
            };
        }
        GGML.iter().find(|(n, _)| *n == lower).map(|(_, d)| Self::Ggml(*d)).ok_or_else(|| {
            let names: Vec<&str> = GGML.iter().map(|(n, _)| *n).collect();
            Error::Quant(format!("unknown format `{s}` (known: int8, int4-g32|64|128[-asym], {})", names.join(", ")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_are_explained() {
        for f in QuantFormat::DOCUMENTED {
            assert_eq!(f.to_string().parse::<QuantFormat>().unwrap(), f);
        }
        assert_eq!("Q4_K".parse::<QuantFormat>().unwrap(), QuantFormat::Ggml(GgmlDType::Q4K));
        assert!("int4-g48".parse::<QuantFormat>().unwrap_err().to_string().contains("32, 64 or 128"));
        assert!("q9_0".parse::<QuantFormat>().unwrap_err().to_string().contains("known: int8"));
    }

    #[test]
    fn bits_per_weight_count_the_scales() {
        assert_eq!(QuantFormat::Ggml(GgmlDType::Q4_0).bits_per_weight(4096), 4.5);
        assert_eq!(QuantFormat::Ggml(GgmlDType::Q4_1).bits_per_weight(4096), 5.0);
        assert_eq!(QuantFormat::Ggml(GgmlDType::Q8_0).bits_per_weight(4096), 8.5);
        assert_eq!(QuantFormat::Ggml(GgmlDType::Q4K).bits_per_weight(4096), 4.5);
        assert_eq!(QuantFormat::Ggml(GgmlDType::Q6K).bits_per_weight(4096), 6.5625);
        assert_eq!(QuantFormat::Int8.bits_per_weight(32), 9.0);
        assert_eq!(QuantFormat::Int4 { group: 32, symmetric: true }.bits_per_weight(64), 5.0);
        assert_eq!(QuantFormat::Int4 { group: 64, symmetric: false }.bits_per_weight(64), 5.0);
        assert_eq!(QuantFormat::Int8.min_pcc(), 0.9999);
        assert_eq!(QuantFormat::Ggml(GgmlDType::Q4_1).min_pcc(), 0.99);
    }
}
