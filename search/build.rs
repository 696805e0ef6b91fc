//! Link Vectorscan (`libhs`) only when the `vectorscan` feature asks for the
//! comparison, so the default build needs no C library.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_VECTORSCAN").is_some() {
        println!("cargo:rustc-link-lib=hs");
    }
}
