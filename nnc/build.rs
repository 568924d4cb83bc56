//! Lets the tests and examples of `nnc` find libtorch at run time: an rpath to `$LIBTORCH/lib`
//! (`.cargo/config.toml` sets LIBTORCH to the folder scripts/setup-libtorch.sh fills).
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(dir) = std::env::var("LIBTORCH") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}/lib");
    }
}
