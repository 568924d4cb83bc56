//! Compile-fail tests: what rustc says when a `model!` does not check, snapshotted in
//! `tests/ui/*.stderr`. Each error must point at the right place: the inline token where the
//! problem is, or the path literal of a file.

#[test]
fn model_errors_are_compile_errors() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
