//! Compiles `csrc/shim.cpp` (calls into libtorch that tch does not bind; see `src/shim.rs`)
//! against the headers of the libtorch tch links, `$LIBTORCH` (`.cargo/config.toml` points it
//! at `.libtorch/`), and gives this crate's tests an rpath to `$LIBTORCH/lib`.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo:rerun-if-changed=csrc/shim.cpp");
    let Ok(dir) = std::env::var("LIBTORCH") else {
        panic!("LIBTORCH is not set: run scripts/setup-libtorch.sh (.cargo/config.toml sets it)");
    };
    if !std::path::Path::new(&dir).join("include/ATen/core/Tensor.h").exists() {
        panic!("{dir} holds no libtorch headers (include/ATen): run scripts/setup-libtorch.sh");
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}/lib");
    // `$LIBTORCH` is the same path whichever libtorch scripts/setup-libtorch.sh put there: its
    // stamp changes when it does, and the headers and libgomp read here with it.
    let stamp = std::path::Path::new(&dir).join(".installed");
    if stamp.exists() {
        println!("cargo:rerun-if-changed={}", stamp.display());
    }
    // The ABI of libtorch's C++ strings, as torch-sys's build script assumes it: the new one
    // unless told otherwise.
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_string());
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .pic(true)
        // libtorch's headers as system headers: their warnings are not this crate's.
        .flag(format!("-isystem{dir}/include"))
        .flag(format!("-isystem{dir}/include/torch/csrc/api/include"))
        .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str())
        .define("GLOG_USE_GLOG_EXPORT", None)
        .flag("-Wall")
        // at::parallel_for is inline in libtorch's headers, an OpenMP `parallel` region: without
        // OpenMP the shim's kernels ran on one thread whatever libtorch's thread count. GCC's
        // OpenMP, whose runtime (libgomp) libtorch's Linux builds use; clang's would call into
        // LLVM's runtime instead.
        .flag("-fopenmp")
        .file("csrc/shim.cpp")
        .compile("nnc_shim");
    // The OpenMP runtime libtorch runs on, its own copy, so that the shim and libtorch share
    // one thread pool (and `--threads`): `lib/libgomp.so.1` in PyTorch's wheels (and so in
    // `.libtorch`), `libgomp-<hash>.so.1` in pytorch.org's libtorch archives. Where the folder
    // has none, torch-sys's `-lgomp` (the compiler's libgomp) is the one there is.
    let lib = std::path::Path::new(&dir).join("lib");
    let bundled = std::fs::read_dir(&lib).ok().and_then(|entries| {
        entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.starts_with("libgomp") && name.contains(".so."))
            .min()
    });
    if let Some(name) = bundled {
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-lib=dylib:+verbatim={name}");
    }
}
