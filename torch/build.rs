//! Lets `nnc-torch` and its tests find libtorch at run time: an rpath to `$LIBTORCH/lib`
//! (`.cargo/config.toml` sets LIBTORCH to the folder scripts/setup-libtorch.sh fills).
//!
//! And links libtorch.so itself, whatever the linker's `--as-needed` would drop: nothing calls
//! it directly, but a CUDA libtorch's (an installed PyTorch's) loads libtorch_cuda.so, whose
//! loading is what registers CUDA with libtorch; without it `--device cuda` finds no GPU even
//! where there is one (tch-rs's own build script does the same; the CPU wheel's libtorch.so
//! loads nothing more).
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(dir) = std::env::var("LIBTORCH") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}/lib");
    }
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
    }
}
