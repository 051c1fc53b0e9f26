//! An in-process fuzz harness on stable Rust (no nightly, no cargo-fuzz): every target takes
//! bytes, runs one of routesim's input paths on them and must return (an `Ok` or a typed error)
//! without panicking, within a memory budget and a time budget. Inputs come from a seed corpus
//! (`fuzz/corpus/<target>/`) mutated by a deterministic seeded mutator, so a campaign with the
//! same seed replays the same inputs. See `fuzz/README.md` for the commands.
//!
//! Crashes (a panic, a broken invariant such as conservation of requests, the memory budget
//! exceeded, an execution that hangs) are saved under `target/fuzz/crashes/<target>/` with a
//! line on stderr; the process exits 1 at the end if any was found. The memory budget is
//! enforced twice: a counting global allocator stops the process (saving the input) when live
//! heap bytes pass `--max-memory-mb`, and `RLIMIT_AS` (address space, twice the budget plus
//! room for the code) is set so nothing can take the machine down even outside the allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Memory budget: a counting allocator and the address-space limit.
// ---------------------------------------------------------------------------------------------

/// Live heap bytes, and the budget (0 until set).
static LIVE: AtomicUsize = AtomicUsize::new(0);
static BUDGET: AtomicUsize = AtomicUsize::new(0);
/// The input being executed (pointer and length), and a file descriptor to save it to, so
/// the allocator and the watchdog can save it without allocating.
static CURRENT_PTR: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static CURRENT_LEN: AtomicUsize = AtomicUsize::new(0);
static SAVE_FD: AtomicUsize = AtomicUsize::new(usize::MAX);
static EXECUTING: AtomicBool = AtomicBool::new(false);
/// The target being run (a `&'static str` from [`TARGETS`]), for the crash line.
static TARGET_PTR: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static TARGET_LEN: AtomicUsize = AtomicUsize::new(0);

struct Counting;

/// Saves the current input to the pre-opened file, prints `what` and exits 3. Allocation-free.
fn die_with_input(what: &[u8]) -> ! {
    let fd = SAVE_FD.load(Ordering::SeqCst);
    let ptr = CURRENT_PTR.load(Ordering::SeqCst);
    let len = CURRENT_LEN.load(Ordering::SeqCst);
    // SAFETY: plain writes of a buffer the harness keeps alive while EXECUTING, then _exit.
    unsafe {
        if fd != usize::MAX && !ptr.is_null() {
            libc::write(fd as libc::c_int, ptr as *const libc::c_void, len);
        }
        let target = TARGET_PTR.load(Ordering::SeqCst);
        if !target.is_null() {
            libc::write(2, b"fuzz: ".as_ptr() as *const libc::c_void, 6);
            libc::write(2, target as *const libc::c_void, TARGET_LEN.load(Ordering::SeqCst));
            libc::write(2, b": ".as_ptr() as *const libc::c_void, 2);
        }
        libc::write(2, what.as_ptr() as *const libc::c_void, what.len());
        libc::_exit(3);
    }
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        let budget = BUDGET.load(Ordering::Relaxed);
        if budget != 0 && live > budget && EXECUTING.load(Ordering::Relaxed) {
            die_with_input(b"CRASH memory budget exceeded; input saved to target/fuzz/last-oom-<pid>\n");
        }
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            let grow = new_size - layout.size();
            let live = LIVE.fetch_add(grow, Ordering::Relaxed) + grow;
            let budget = BUDGET.load(Ordering::Relaxed);
            if budget != 0 && live > budget && EXECUTING.load(Ordering::Relaxed) {
                die_with_input(b"CRASH memory budget exceeded; input saved to target/fuzz/last-oom-<pid>\n");
            }
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn limit_address_space(bytes: u64) {
    let limit = libc::rlimit { rlim_cur: bytes as libc::rlim_t, rlim_max: bytes as libc::rlim_t };
    // SAFETY: setrlimit with a valid struct.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) };
    if rc != 0 {
        eprintln!("fuzz: warning: setrlimit(RLIMIT_AS) failed");
    }
}

// ---------------------------------------------------------------------------------------------
// Deterministic mutator.
// ---------------------------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Tokens that tend to reach edge cases: separators, line endings, extreme numbers, units.
const TOKENS: &[&[u8]] = &[
    b",",
    b"\n",
    b"\r",
    b"\r\n",
    b"\"",
    b"=",
    b"[",
    b"]",
    b"{",
    b"}",
    b":",
    b"- ",
    b"  ",
    b"0",
    b"-1",
    b"1e308",
    b"-1e308",
    b"NaN",
    b"nan",
    b"inf",
    b"1e-9",
    b"4294967295",
    b"18446744073709551615",
    b"99999999999",
    b"1733000000000",
    b"9007199254740993",
    b"0.0",
    b"\"1us\"",
    b"\"100000h\"",
    b"\"0s\"",
    b"ms",
    b"h",
    b"\xff",
    b"\xef\xbb\xbf",
    b"\x00",
    b"\t",
    b"#",
    b"'",
    b"true",
    b"null",
    b"\"\"",
    b"interactive",
    b"hard",
    b"bulk",
    b"async",
    b"sigma = 7",
    b"parent",
    b"&a",
    b"*a",
    b"!!str",
    b"~",
    b"<<: ",
    b"0x10",
    b"1_000",
    b"+5%",
    b"999%",
];

/// Largest mutated input, so one execution stays small.
const MAX_INPUT: usize = 64 * 1024;

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = input.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 | 3 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                let at = rng.below(len + 1);
                input.splice(at..at, token.iter().copied());
            }
            4 if len > 0 => {
                // Replace a run of digits or letters by a token.
                let at = rng.below(len);
                let end = (at + 1 + rng.below(8)).min(len);
                let token = TOKENS[rng.below(TOKENS.len())];
                input.splice(at..end, token.iter().copied());
            }
            5 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(32)).min(len);
                input.drain(at..end);
            }
            6 if len > 0 => {
                // Duplicate a chunk (repeats lines, rows, tables).
                let at = rng.below(len);
                let end = (at + 1 + rng.below(256)).min(len);
                let chunk = input[at..end].to_vec();
                let to = rng.below(input.len() + 1);
                input.splice(to..to, chunk);
            }
            7 if !corpus.is_empty() => {
                // Splice with another corpus entry.
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let end = (from + 1 + rng.below(512)).min(other.len());
                    let at = rng.below(len + 1);
                    input.splice(at..at, other[from..end].iter().copied());
                }
            }
            _ if len > 0 => {
                // Change a number: swap one digit run for an extreme.
                if let Some(start) =
                    (0..len).map(|k| (rng.below(len) + k) % len).find(|&i| input[i].is_ascii_digit())
                {
                    let mut end = start;
                    while end < input.len() && input[end].is_ascii_digit() {
                        end += 1;
                    }
                    let token = TOKENS[15 + rng.below(12)];
                    input.splice(start..end, token.iter().copied());
                }
            }
            _ => input.extend_from_slice(TOKENS[rng.below(TOKENS.len())]),
        }
    }
    input.truncate(MAX_INPUT);
}

// ---------------------------------------------------------------------------------------------
// Targets.
// ---------------------------------------------------------------------------------------------

/// What a target found wrong, besides a panic.
type Verdict = Result<(), String>;

struct Ctx {
    /// Scratch directory of this process (inputs that must be files are written here).
    dir: PathBuf,
    baseline_summary: routesim::report::data::Summary,
}

impl Ctx {
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, bytes).expect("scratch directory is writable");
        path
    }
}

/// A small scenario the simulation targets run (one deployment, three strategies that
/// retry, fall back and smooth).
const SIM_SCENARIO: &str = r#"
name = "fuzz"
seed = 3
[trace]
file = "trace.csv"
replay = "closed"
max_span = "30d"
[deployments."a"]
preset = "anthropic-tier2-haiku-4.5"
limits.burst = "1s"
errors = { server_error_rate = 0.2 }
[deployments."b"]
preset = "openai-tier4-gpt-5-mini"
[[strategy]]
name = "single"
policy = { kind = "single", deployment = "a", max_attempts = 4 }
[[strategy]]
name = "chain"
policy = { kind = "fallback", chain = ["a", "b"], max_attempts = 6, first_token_timeout = "20s" }
[[strategy]]
name = "smooth"
policy = { kind = "smoothing", limits_fraction = 0.5, max_wait = "30s", inner = { kind = "fallback", chain = ["a", "b"] } }
"#;

const TARGETS: &[&str] = &[
    "trace_csv",
    "import_azure",
    "import_burstgpt",
    "import_mooncake",
    "import_mapped",
    "scenario",
    "sweep",
    "generator",
    "litellm_yaml",
    "compare",
    "simulate",
];

fn run_target(target: &str, data: &[u8], ctx: &Ctx) -> Verdict {
    use routesim::trace::import::{ImportOptions, Importer, TraceFormat};
    let text = String::from_utf8_lossy(data);
    match target {
        "trace_csv" => {
            let reader = match routesim::trace::TraceReader::from_reader(data, "fuzz.csv") {
                Ok(r) => r,
                Err(e) => return one_line(&e.to_string()),
            };
            for row in reader {
                if let Err(e) = row {
                    return one_line(&e.to_string());
                }
            }
            Ok(())
        }
        "import_azure" | "import_burstgpt" | "import_mooncake" | "import_mapped" => {
            let (format, name, options) = match target {
                "import_azure" => (TraceFormat::Azure, "in.csv", ImportOptions::default()),
                "import_burstgpt" => (TraceFormat::Burstgpt, "in.csv", ImportOptions::default()),
                "import_mooncake" => (TraceFormat::Mooncake, "in.jsonl", ImportOptions::default()),
                _ => {
                    // The first line is the mapping (TOML inline table), the rest the log.
                    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
                    let head = String::from_utf8_lossy(&data[..split]);
                    let Ok(options) = toml::from_str::<ImportOptions>(&head) else { return Ok(()) };
                    let jsonl = data[split..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
                    let name = if jsonl { "in.jsonl" } else { "in.csv" };
                    let body = &data[(split + 1).min(data.len())..];
                    let path = ctx.write(name, body);
                    return import_all(Importer::open(&path, TraceFormat::Mapped, &options));
                }
            };
            let path = ctx.write(name, data);
            import_all(Importer::open(&path, format, &options))
        }
        "scenario" => {
            ctx.write(
                "trace.csv",
                b"id,arrival_ms,class,input_tokens,output_tokens\nr1,0,interactive,10,5\n",
            );
            match routesim::scenario::Scenario::parse(&text, &ctx.dir.join("s.toml"), &ctx.dir) {
                Ok(_) => Ok(()),
                Err(e) => one_line(&e.to_string()),
            }
        }
        "sweep" => {
            ctx.write(
                "trace.csv",
                b"id,arrival_ms,class,input_tokens,output_tokens\nr1,0,interactive,10,5\n",
            );
            ctx.write("base.toml", SIM_SCENARIO.as_bytes());
            let path = ctx.write("sweep.toml", data);
            match routesim::sweep::plan::Plan::load(&path) {
                Ok(plan) => {
                    // Every point's setup must build (the plan validated them).
                    for point in plan.points().take(64) {
                        if let Err(e) = plan.setup(&point) {
                            return Err(format!("Plan::load accepted a point whose setup fails: {e}"));
                        }
                    }
                    Ok(())
                }
                Err(e) => one_line(&e.to_string()),
            }
        }
        "generator" => {
            let Ok(table) = toml::from_str::<toml::Table>(&text) else { return Ok(()) };
            let config = match routesim::trace::source::GeneratorConfig::from_table(table) {
                Ok(c) => c,
                Err(e) => return one_line(&e.to_string()),
            };
            // As `sim trace gen` and a scenario do: every setting and the span first.
            if let Err(e) = config.check(&ctx.dir, routesim::trace::DEFAULT_MAX_SPAN) {
                return one_line(&e.to_string());
            }
            match config.rows(&ctx.dir) {
                Ok(rows) => {
                    // A bounded prefix: generators stream.
                    let mut last = 0;
                    for row in rows.take(20_000) {
                        let row = match row {
                            Ok(row) => row,
                            Err(e) => return one_line(&e.to_string()),
                        };
                        let request = row.to_request(0);
                        let t = request.arrival.as_micros();
                        if t < last {
                            return Err(format!("generator went back in time: {t} after {last}"));
                        }
                        last = t;
                    }
                    Ok(())
                }
                Err(e) => one_line(&e.to_string()),
            }
        }
        "litellm_yaml" => {
            ctx.write(
                "trace.csv",
                b"id,arrival_ms,class,input_tokens,output_tokens\nr1,0,interactive,10,5\n",
            );
            ctx.write("proxy.yaml", data);
            let scenario = r#"
name = "y"
[trace]
file = "trace.csv"
[deployments."anthropic/sonnet"]
preset = "anthropic-tier4-sonnet-4.x"
[deployments."openai/gpt-5"]
preset = "openai-tier4-gpt-5"
[[strategy]]
name = "l"
policy = { kind = "litellm", config_file = "proxy.yaml", model = "claude" }
"#;
            match routesim::scenario::Scenario::parse(scenario, &ctx.dir.join("y.toml"), &ctx.dir) {
                Ok(_) => Ok(()),
                Err(e) => one_line(&e.to_string()),
            }
        }
        "compare" => {
            let thresholds = routesim::report::compare::default_thresholds();
            if data.first() == Some(&b'{') {
                let current = match routesim::report::data::Summary::parse(&text, Path::new("cur.json")) {
                    Ok(s) => s,
                    Err(e) => return one_line(&e.to_string()),
                };
                match routesim::report::compare::compare_summaries(
                    &ctx.baseline_summary,
                    &current,
                    &thresholds,
                ) {
                    Ok(rows) => {
                        let _ = rows.len();
                        Ok(())
                    }
                    Err(e) => one_line(&e.to_string()),
                }
            } else {
                let path = ctx.write("results.csv", data);
                let current = match routesim::report::data::SweepResults::load(&path) {
                    Ok(s) => s,
                    Err(e) => return one_line(&e.to_string()),
                };
                match routesim::report::compare::compare_sweeps(&current, &current, &thresholds) {
                    Ok(_) => Ok(()),
                    Err(e) => one_line(&e.to_string()),
                }
            }
        }
        "simulate" => simulate(data, ctx),
        other => Err(format!("unknown target {other}")),
    }
}

fn import_all(importer: Result<routesim::trace::import::Importer, routesim::trace::TraceError>) -> Verdict {
    let mut importer = match importer {
        Ok(i) => i,
        Err(e) => return one_line(&e.to_string()),
    };
    for row in importer.by_ref() {
        if let Err(e) = row {
            return one_line(&e.to_string());
        }
    }
    Ok(())
}

/// The error contract: one line, never empty after the location.
fn one_line(message: &str) -> Verdict {
    if message.contains('\n') || message.contains('\r') {
        return Err(format!("error message spans lines: {message:?}"));
    }
    if message.ends_with(": ") || message.trim().is_empty() {
        return Err(format!("error message is empty: {message:?}"));
    }
    if message.len() > 4_000 {
        return Err(format!("error message is {} bytes long", message.len()));
    }
    Ok(())
}

/// Runs the fuzz scenario on the input as its trace and checks conservation: every request
/// read is accounted for exactly once, in every strategy.
fn simulate(data: &[u8], ctx: &Ctx) -> Verdict {
    let trace = ctx.write("trace.csv", data);
    let scenario =
        match routesim::scenario::Scenario::parse(SIM_SCENARIO, &ctx.dir.join("sim.toml"), &ctx.dir) {
            Ok(s) => s,
            Err(e) => return Err(format!("fuzz scenario does not load: {e}")),
        };
    // The number of requests in the trace, read on its own.
    let Ok(reader) = routesim::trace::TraceReader::open(&trace) else { return Ok(()) };
    let mut rows = 0u64;
    for row in reader {
        if row.is_err() {
            // Invalid traces must be refused by the run too.
            return match routesim::run::run_scenario(&scenario, None, None) {
                Ok(_) => Err("the run accepted a trace its reader refuses".into()),
                Err(e) => one_line(&e.to_string()),
            };
        }
        rows += 1;
        if rows > 2_000 {
            return Ok(()); // keep executions short
        }
    }
    let result = match routesim::run::run_scenario(&scenario, None, None) {
        Ok(r) => r,
        Err(e) => return one_line(&e.to_string()),
    };
    for s in &result.strategies {
        let t = &s.total;
        let accounted = t.succeeded + t.rate_limited + t.failed + t.batched + t.unfinished;
        if t.requests != rows || accounted != rows {
            return Err(format!(
                "conservation broken in {}: {rows} rows, {} requests, {accounted} accounted for",
                s.name, t.requests
            ));
        }
        let by_class: u64 = s.by_class.iter().map(|c| c.requests).sum();
        if by_class != rows {
            return Err(format!(
                "conservation broken in {}: classes hold {by_class} of {rows} requests",
                s.name
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Driver.
// ---------------------------------------------------------------------------------------------

struct Args {
    targets: Vec<String>,
    seconds: f64,
    max_execs: u64,
    seed: u64,
    max_memory_mb: usize,
    replay: Vec<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        targets: Vec::new(),
        seconds: 10.0,
        max_execs: u64::MAX,
        seed: 1,
        max_memory_mb: 1024,
        replay: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--target" => args.targets.push(value()?),
            "--seconds" => args.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--execs" => args.max_execs = value()?.parse().map_err(|e| format!("--execs: {e}"))?,
            "--seed" => args.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--max-memory-mb" => {
                args.max_memory_mb = value()?.parse().map_err(|e| format!("--max-memory-mb: {e}"))?
            }
            "--replay" => args.replay.push(PathBuf::from(value()?)),
            "--list" => {
                println!("{}", TARGETS.join("\n"));
                std::process::exit(0);
            }
            "-h" | "--help" => {
                println!(
                    "usage: fuzz [--target NAME|all]... [--seconds S (per target)] [--execs N (per target)] \
                     [--seed N] [--max-memory-mb MB] [--replay FILE --target NAME] [--list]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.targets.is_empty() || args.targets.iter().any(|t| t == "all") {
        args.targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    for t in &args.targets {
        if !TARGETS.contains(&t.as_str()) {
            return Err(format!("unknown target {t} (known: {})", TARGETS.join(", ")));
        }
    }
    Ok(args)
}

fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load_corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = repo_dir().join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    let corpus: Vec<Vec<u8>> = files.iter().filter_map(|f| std::fs::read(f).ok()).collect();
    if corpus.is_empty() {
        vec![Vec::new()]
    } else {
        corpus
    }
}

fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// Runs one input; `Err` with the reason on a crash.
fn execute(target: &str, data: &[u8], ctx: &Ctx) -> Result<(), String> {
    CURRENT_PTR.store(data.as_ptr() as *mut u8, Ordering::SeqCst);
    CURRENT_LEN.store(data.len(), Ordering::SeqCst);
    EXECUTING.store(true, Ordering::SeqCst);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_target(target, data, ctx)));
    EXECUTING.store(false, Ordering::SeqCst);
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(violation)) => Err(violation),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Err(format!("panic: {message}"))
        }
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fuzz: {e}");
            std::process::exit(2);
        }
    };
    // One core: the simulation's strategies would otherwise run on a thread pool.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let budget = args.max_memory_mb * 1024 * 1024;
    BUDGET.store(budget, Ordering::SeqCst);
    limit_address_space((2 * budget + 512 * 1024 * 1024) as u64);
    std::panic::set_hook(Box::new(|_| {})); // panics are reported by the driver, once

    let out = repo_dir().join("target/fuzz");
    let _ = std::fs::create_dir_all(&out);
    // Inputs that must be files go to a RAM disk when there is one (disk writes would cost
    // more than the executions).
    let shm = Path::new("/dev/shm");
    let scratch_root = if shm.is_dir() { shm.to_path_buf() } else { out.clone() };
    let dir = scratch_root.join(format!("routesim-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let baseline_path = repo_dir().join("reports/baseline/seed-story/summary.json");
    let baseline_text = std::fs::read_to_string(&baseline_path).unwrap_or_else(|e| {
        eprintln!("fuzz: cannot read {}: {e}", baseline_path.display());
        std::process::exit(2)
    });
    let baseline_summary = routesim::report::data::Summary::parse(&baseline_text, &baseline_path)
        .unwrap_or_else(|e| {
            eprintln!("fuzz: {e}");
            std::process::exit(2)
        });
    let ctx = Ctx { dir: dir.clone(), baseline_summary };
    // Where the allocator saves the input that broke the budget.
    let oom_path = out.join(format!("last-oom-{}", std::process::id()));
    eprintln!(
        "fuzz: pid {} (an input that breaks the memory or time budget goes to {})",
        std::process::id(),
        oom_path.display()
    );
    let oom = std::fs::File::create(&oom_path).expect("target/fuzz is writable");
    SAVE_FD.store(std::os::fd::IntoRawFd::into_raw_fd(oom) as usize, Ordering::SeqCst);
    // Watchdog: an execution that runs for more than 20 s is a hang.
    static EXECS: AtomicU64 = AtomicU64::new(0);
    std::thread::spawn(|| {
        let mut last = (u64::MAX, Instant::now());
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let n = EXECS.load(Ordering::Relaxed);
            if n != last.0 || !EXECUTING.load(Ordering::Relaxed) {
                last = (n, Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(20) {
                die_with_input(
                    b"CRASH an execution ran for more than 20 s; input saved to target/fuzz/last-oom-<pid>\n",
                );
            }
        }
    });

    let mut total_crashes = 0u64;
    if !args.replay.is_empty() {
        for file in &args.replay {
            let data = std::fs::read(file).unwrap_or_else(|e| {
                eprintln!("fuzz: cannot read {}: {e}", file.display());
                std::process::exit(2)
            });
            for target in &args.targets {
                match execute(target, &data, &ctx) {
                    Ok(()) => println!("{target} {}: ok", file.display()),
                    Err(why) => {
                        total_crashes += 1;
                        println!("{target} {}: CRASH {why}", file.display());
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(&oom_path);
        std::process::exit(i32::from(total_crashes > 0));
    }

    let mut total_execs = 0u64;
    for target in &args.targets {
        let name: &'static str = TARGETS.iter().find(|t| **t == target.as_str()).copied().unwrap_or("?");
        TARGET_PTR.store(name.as_ptr() as *mut u8, Ordering::SeqCst);
        TARGET_LEN.store(name.len(), Ordering::SeqCst);
        let corpus = load_corpus(target);
        let mut rng = Rng(args.seed ^ hash(target.as_bytes()));
        let started = Instant::now();
        let (mut execs, mut crashes) = (0u64, 0u64);
        let mut seen = std::collections::HashSet::new();
        while started.elapsed().as_secs_f64() < args.seconds && execs < args.max_execs {
            let mut input = corpus[rng.below(corpus.len())].clone();
            // Seeds run unmutated first.
            if execs >= corpus.len() as u64 {
                mutate(&mut rng, &mut input, &corpus);
            } else {
                input = corpus[execs as usize].clone();
            }
            if let Err(why) = execute(target, &input, &ctx) {
                crashes += 1;
                // One report per kind of crash: digits and the scratch path vary.
                let key: String = why
                    .replace(&ctx.dir.display().to_string(), "")
                    .chars()
                    .filter(|c| !c.is_ascii_digit())
                    .take(100)
                    .collect();
                if seen.insert(key) {
                    let crash_dir = out.join("crashes").join(target);
                    let _ = std::fs::create_dir_all(&crash_dir);
                    let file = crash_dir.join(format!("{:016x}", hash(&input)));
                    let _ = std::fs::write(&file, &input);
                    eprintln!("fuzz: {target}: CRASH {why} (input saved to {})", file.display());
                }
            }
            execs += 1;
            EXECS.fetch_add(1, Ordering::Relaxed);
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{target:<16} {execs:>10} execs in {secs:>7.1} s ({:>8.0}/s), {crashes} crashes, corpus {}",
            execs as f64 / secs.max(1e-9),
            corpus.len()
        );
        let _ = std::io::stdout().flush();
        total_execs += execs;
        total_crashes += crashes;
    }
    println!("total {total_execs} execs, {total_crashes} crashes");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&oom_path); // nothing broke the budget
    std::process::exit(i32::from(total_crashes > 0));
}
