use tensile::Testable;

#[derive(Testable)]
#[tensile(attn(input_shape = (1, 8, 64)))]
struct Model {
    attention: tensile_nn::Attention,
}

fn main() {}
