use tensile::Testable;

#[derive(Testable)]
struct Model {
    #[tensile(speed = 5.0)]
    norm: tensile_nn::RmsNorm,
}

fn main() {}
