//! Peak memory of one whole compile, from infra.yml text to deploy.sh, of the
//! synthetic 10,000-machine file (`benches/synthetic.rs`; another size as the first
//! argument): `cargo bench --bench peak_memory`.
//!
//! It reports its own high-water mark of resident memory (`VmHWM` in
//! /proc/self/status, the figure `/usr/bin/time -v` gives as "Maximum resident set
//! size"), which includes the generated input text, as the CLI holds the file it reads.
//! To measure from outside:
//!
//! ```text
//! cargo bench --bench peak_memory --no-run    # prints the executable's path
//! /usr/bin/time -v target/release/deps/peak_memory-HASH 10000
//! ```

use anklumec::compile::{Options, compile_source};
use anklumec::emit;
use std::time::Instant;

/// The CLI's allocator (src/main.rs): the figures are the CLI's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "synthetic.rs"]
mod synthetic;

fn main() {
    // `cargo bench` passes `--bench`; a number among the arguments is the size.
    let machines = std::env::args().skip(1).find_map(|arg| arg.parse::<usize>().ok()).unwrap_or(10_000);
    let text = synthetic::infra_yml(machines);
    let input_bytes = text.len();
    let start = Instant::now();
    // The text moves into the compilation, as the CLI's does.
    let compilation = compile_source("bench.yml", text, Options::default());
    let Some(plan) = compilation.plan.as_ref() else {
        eprintln!("the synthetic file does not compile: {:?}", compilation.diagnostics.first());
        std::process::exit(1);
    };
    let script = match emit::deploy_script(plan) {
        Ok(script) => script,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    };
    let elapsed = start.elapsed();
    let peak = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| status.lines().find_map(|line| line.strip_prefix("VmHWM:").map(|kb| kb.trim().to_string())))
        .unwrap_or_else(|| "unknown (no /proc/self/status)".to_string());
    println!(
        "{machines} machines ({} bytes of infra.yml): deploy.sh of {} bytes in {:.1} ms; peak resident memory {peak}",
        input_bytes,
        script.len(),
        elapsed.as_secs_f64() * 1e3
    );
}
