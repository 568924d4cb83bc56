//! Compile-fail tests: what rustc says when a `model!` does not check, snapshotted in
//! `tests/ui/*.stderr`. Each error must point at the right place: the inline token where the
//! problem is, or the path literal of a file.

#[test]
fn model_errors_are_compile_errors() {
    // trybuild builds nnc, tch and their dependencies once more, in `target/tests`, with
    // cargo's default profile: the workspace's `[profile.dev]` does not reach it. Without
    // debug info, as the workspace builds its dependencies, that folder is half the size
    // (458 MB, not 942).
    std::env::set_var("CARGO_PROFILE_DEV_DEBUG", "false");
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
