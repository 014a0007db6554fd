// SPDX-License-Identifier: GPL-2.0

//! Build script: the kernel configuration the engine sources test for, and a
//! record of how the crate was built (printed by the benchmark).

use std::{env, process::Command};

fn main() {
    // The test kernel has CONFIG_KUNIT=y: the engine's test-only items
    // (`#[cfg(CONFIG_KUNIT)]`) are compiled, as there.
    println!("cargo::rustc-check-cfg=cfg(CONFIG_KUNIT)");
    println!("cargo:rustc-cfg=CONFIG_KUNIT");

    // The profile is the directory above `build/` in OUT_DIR
    // (`<target>/<profile>/build/<pkg>-<hash>/out`).
    let out = env::var("OUT_DIR").unwrap_or_default();
    let parts: Vec<&str> = out.split(std::path::MAIN_SEPARATOR).collect();
    let profile = parts
        .iter()
        .rposition(|p| *p == "build")
        .and_then(|i| i.checked_sub(1))
        .map(|i| parts[i])
        .unwrap_or("unknown");
    let profile = match profile {
        "debug" => "dev",
        p => p,
    };
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(&rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS")
        .unwrap_or_default()
        .replace('\x1f', " ");
    println!("cargo:rustc-env=VEXFS_ENGINE_PROFILE={}", profile);
    println!(
        "cargo:rustc-env=VEXFS_ENGINE_OPT_LEVEL={}",
        env::var("OPT_LEVEL").unwrap_or_default()
    );
    println!("cargo:rustc-env=VEXFS_ENGINE_RUSTC={}", version.trim());
    println!("cargo:rustc-env=VEXFS_ENGINE_RUSTFLAGS={}", flags);
    println!("cargo:rerun-if-changed=build.rs");
}
