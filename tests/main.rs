//! One test binary: compile-fail cases (trybuild) and a compile-pass graph.

mod pass;

#[test]
fn compile_errors_read_well() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/*.rs");
}
