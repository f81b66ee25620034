//! Compile speed per stage and end to end, on synthetic infra.yml files of 10 to
//! 10,000 machines (`cargo bench --bench compile`). Peak memory: `benches/peak_memory.rs`.

use anklumec::compile::{Options, compile_source};
use anklumec::diagnostics::Diagnostics;
use anklumec::plan::SourceInfo;
use anklumec::source::{FileId, SourceFile, SourceMap};
use anklumec::syntax::{read, yaml};
use anklumec::{check, emit, lower};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

/// The CLI's allocator (src/main.rs): the figures are the CLI's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "synthetic.rs"]
mod synthetic;

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

fn stages(c: &mut Criterion) {
    let mut group = c.benchmark_group("stage");
    group.sample_size(20);
    for &machines in &SIZES {
        let text = synthetic::infra_yml(machines);
        group.throughput(Throughput::Elements(machines as u64));
        let limits = yaml::Limits::default();
        group.bench_with_input(BenchmarkId::new("parse", machines), &text, |b, text| {
            b.iter(|| yaml::parse(FileId(0), black_box(text), &limits, &mut Diagnostics::new()))
        });
        let root = yaml::parse(FileId(0), &text, &limits, &mut Diagnostics::new()).expect("parses");
        group.bench_with_input(BenchmarkId::new("read", machines), &root, |b, root| {
            b.iter(|| read::read_infra(black_box(root), &mut Diagnostics::new()))
        });
        let infra = read::read_infra(&root, &mut Diagnostics::new());
        group.bench_with_input(BenchmarkId::new("check", machines), &infra, |b, infra| {
            b.iter(|| check::check(black_box(infra), &mut Diagnostics::new()))
        });
        let mut sources = SourceMap::new();
        sources.add(SourceFile::new("bench.yml", text.clone()));
        let source = SourceInfo { path: "bench.yml".into(), sha256: String::new() };
        group.bench_with_input(BenchmarkId::new("lower", machines), &infra, |b, infra| {
            b.iter(|| lower::lower(black_box(infra), &sources, source.clone()))
        });
        let plan = lower::lower(&infra, &sources, source.clone());
        group.bench_with_input(BenchmarkId::new("emit", machines), &plan, |b, plan| {
            b.iter(|| emit::deploy_script(black_box(plan)).expect("renders"))
        });
    }
    group.finish();
}

fn end_to_end(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    for &machines in &SIZES {
        let text = synthetic::infra_yml(machines);
        group.throughput(Throughput::Elements(machines as u64));
        group.bench_with_input(BenchmarkId::from_parameter(machines), &text, |b, text| {
            // As the CLI does, the plan and the script are freed after the work is done
            // (the CLI frees them on another thread as it exits).
            b.iter_with_large_drop(|| {
                // The text is copied into the compilation here; the CLI moves in the
                // text it read.
                let compilation = compile_source("bench.yml", black_box(text), Options::default());
                let script = emit::deploy_script(compilation.plan.as_ref().expect("compiles")).expect("renders");
                (compilation, script)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, stages, end_to_end);
criterion_main!(benches);
