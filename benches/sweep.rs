//! Sweep parallel efficiency: the bundled traffic-growth sweep (30 points × 5 replications,
//! 150 simulations of the seed story) at 1 and 2 threads, from a fresh results directory each
//! iteration. Speedup = time(1 thread) / time(2 threads); run on an otherwise idle machine.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use routesim::progress::ProgressMode;
use routesim::sweep::plan::Plan;
use routesim::sweep::{prepare, run_sweep, SweepOptions};
use std::path::Path;

fn sweep(c: &mut Criterion) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/sweeps/traffic-growth.toml");
    let plan = Plan::load(&file).expect("bundled sweep is valid");
    let mut group = c.benchmark_group("sweep");
    group.sample_size(10);
    group.throughput(Throughput::Elements(150));
    for threads in [1usize, 2] {
        group.bench_function(format!("traffic_growth_{threads}_threads"), |b| {
            b.iter_batched(
                || tempfile::tempdir().expect("temp dir"),
                |dir| {
                    let options = SweepOptions {
                        out: dir.path().to_path_buf(),
                        threads: Some(threads),
                        shard: None,
                        progress: ProgressMode::Quiet,
                    };
                    let prepared = prepare(&plan).expect("trace loads");
                    run_sweep(&plan, prepared, &options).expect("sweep runs");
                    dir
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, sweep);
criterion_main!(benches);
