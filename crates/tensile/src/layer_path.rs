//! Where a module sits in a model: the layer index in its checkpoint path
//! (`model.layers.12.mlp`, `bert.encoder.layer.3.attention`) and its role within the layer.
//! Front-ends name tests by these paths and the reports group by them, so the rule lives
//! below both.

/// The layer a module path belongs to: the number after `layers.` or `layer.`.
pub fn layer_index(path: &str) -> Option<usize> {
    split(path).map(|(i, _)| i)
}

/// The layer index and the module's role inside the layer: the rest of the path after the
/// index (`mlp`, `self_attn`, `attention.output`), or `layer` for the layer itself.
pub fn split(path: &str) -> Option<(usize, String)> {
    let parts: Vec<&str> = path.split('.').collect();
    let at = parts.windows(2).position(|w| (w[0] == "layers" || w[0] == "layer") && w[1].parse::<usize>().is_ok())?;
    let index = parts[at + 1].parse().ok()?;
    let role = if at + 2 < parts.len() { parts[at + 2..].join(".") } else { "layer".to_string() };
    Some((index, role))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_give_their_layer_and_role() {
        assert_eq!(layer_index("model.layers.12.mlp"), Some(12));
        assert_eq!(layer_index("bert.encoder.layer.3"), Some(3));
        assert_eq!(layer_index("model.embed_tokens"), None);
        assert_eq!(layer_index("model.layers.x.mlp"), None);
        assert_eq!(split("smol::model.layers.3.mlp"), Some((3, "mlp".to_string())));
        assert_eq!(split("m::bert.encoder.layer.0.attention.output"), Some((0, "attention.output".to_string())));
        assert_eq!(split("model.layers.7"), Some((7, "layer".to_string())));
        assert_eq!(split("layers"), None);
    }
}
