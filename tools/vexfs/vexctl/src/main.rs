// SPDX-License-Identifier: GPL-2.0

//! `vexctl`: manages and searches VexFS vector collections. See the `vexctl`
//! library.

fn main() {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    std::process::exit(vexctl::run(&args));
}
