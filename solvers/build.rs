//! Links the system Ipopt dynamically. pkg-config tells where `libipopt.so` is; only `-lipopt`
//! (and `-llapack -lblas`, for the dense kernels of `linalg` and the dense KKT solver) is passed to the linker: the shared library carries its own MUMPS/BLAS/LAPACK dependencies,
//! and Debian's `ipopt.pc` lists static archives that break a static link.

fn main() {
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    match pkg_config::Config::new()
        .atleast_version("3.11")
        .cargo_metadata(false)
        .probe("ipopt")
    {
        Ok(lib) => {
            for path in &lib.link_paths {
                println!("cargo:rustc-link-search=native={}", path.display());
            }
            println!("cargo:rustc-link-lib=dylib=ipopt");
            // The dense KKT solver calls LAPACK's dsytrf/dsytrs directly.
            println!("cargo:rustc-link-lib=dylib=lapack");
            println!("cargo:rustc-link-lib=dylib=blas");
            println!("cargo:version={}", lib.version);
        }
        Err(e) => {
            eprintln!("colloc-solvers: Ipopt >= 3.11 not found through pkg-config: {e}");
            eprintln!("colloc-solvers: run ./scripts/setup.sh (installs coinor-libipopt-dev and pkg-config)");
            std::process::exit(1);
        }
    }
}
