//! Generates the C header with cbindgen from the C surface (src/ffi/) and the ABI numbers
//! (src/api.rs), and gives the shared library its ELF identity.
//!
//! The header is generated into OUT_DIR only, so that a build never writes into the source
//! tree (a read-only checkout and `cargo package` build). The committed copy,
//! include/zmq_proxy_stream.h, is checked against it by tests/header.rs (and .ci/run);
//! `STREAMQ_WRITE_HEADER=1 cargo build` writes the generated header over it.
//!
//! The cdylib gets the SONAME libzmq_proxy_stream.so.<major> and the version script
//! zmq_proxy_stream.map, which exports the zmq_proxy_stream* functions and nothing else;
//! scripts/install.sh installs it under that name and tests/install.rs checks both.

use std::path::{Path, PathBuf};

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=zmq_proxy_stream.map");
    println!("cargo:rerun-if-env-changed=STREAMQ_WRITE_HEADER");
    link_args(&crate_dir);
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    let bindings = match cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
    {
        Ok(bindings) => bindings,
        Err(e) => panic!("cbindgen could not generate zmq_proxy_stream.h: {e}"),
    };
    let generated = out_dir.join("zmq_proxy_stream.h");
    bindings.write_to_file(&generated);
    // tests/header.rs compares the committed header with this one.
    println!(
        "cargo:rustc-env=ZMQ_PROXY_STREAM_GENERATED_HEADER={}",
        generated.display()
    );
    if std::env::var("STREAMQ_WRITE_HEADER").is_ok_and(|v| !v.is_empty() && v != "0") {
        bindings.write_to_file(crate_dir.join("include").join("zmq_proxy_stream.h"));
    }
}

/// SONAME and exported symbols of the cdylib (ELF targets only; cargo passes these to the
/// cdylib's link and to no other target of the package).
fn link_args(crate_dir: &Path) {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if !matches!(
        os.as_str(),
        "linux" | "freebsd" | "netbsd" | "openbsd" | "dragonfly"
    ) {
        return;
    }
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets it");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libzmq_proxy_stream.so.{major}");
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        crate_dir.join("zmq_proxy_stream.map").display()
    );
}
