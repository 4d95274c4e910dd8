use tensile::Testable;

#[derive(Testable)]
struct Model {
    #[tensile(input_shape = (1, 8, 64))]
    hidden_size: usize,
}

fn main() {}
