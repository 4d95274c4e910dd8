//! Misusing `#[derive(Testable)]` is a compile error with a span on the offending token.

#[test]
fn derive_errors_point_at_the_mistake() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
