//! Writes include/zmq_proxy_stream.h with cbindgen from the C surface (src/ffi/) and the ABI
//! numbers (src/api.rs), and gives the shared library its ELF identity: the SONAME
//! libzmq_proxy_stream.so.<major> and a version script (zmq_proxy_stream.map) that exports the
//! zmq_proxy_stream* functions and nothing else. scripts/install.sh installs it under that
//! name; tests/install.rs checks both.

use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=zmq_proxy_stream.map");
    link_args(&crate_dir);
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    let header = crate_dir.join("include").join("zmq_proxy_stream.h");
    match cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
    {
        Ok(bindings) => {
            bindings.write_to_file(&header);
        }
        Err(e) => panic!("cbindgen could not generate {}: {e}", header.display()),
    }
}

/// SONAME and exported symbols of the cdylib (ELF targets only; cargo passes these to the
/// cdylib's link and to no other target of the package).
fn link_args(crate_dir: &std::path::Path) {
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
