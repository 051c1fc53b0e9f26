//! Resources: every class of input that once made routesim allocate or run without bound
//! (issue 14) runs the `sim` binary as a child under an address-space limit (`RLIMIT_AS`,
//! 1 GiB) and a CPU-time limit (`RLIMIT_CPU`, 60 s), and must end with exit 2 and its one-line
//! message, or succeed. A regression fails fast (allocation failure or SIGXCPU) instead of
//! filling the machine.

use crate::support::stderr;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Output, Stdio};

/// Address space allowed to each child: far above what any case needs (tens of MB).
const MAX_ADDRESS_SPACE: u64 = 1 << 30;
const MAX_CPU_S: u64 = 60;

/// Peak resident memory any case may reach: the cases need tens of MB; a regression that
/// grows with a time value or a tail would pass it long before the address-space limit.
const MAX_PEAK_RSS_KB: i64 = 256 * 1024;

/// Runs `sim args` in `dir` under the limits and checks its peak RSS (the child's own
/// `ru_maxrss`, from `wait4`). With `ROUTESIM_RESOURCE_TABLE=file`, appends a Markdown row
/// (command, exit code, first line of stderr, peak RSS) to `file`: the figures of the table
/// in README's reliability section.
#[track_caller]
fn limited(args: &[&str], dir: &Path) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sim"));
    command.args(args).current_dir(dir).env("RAYON_NUM_THREADS", "2");
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls (setrlimit) between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let set = |resource, value: u64| {
                let limit = libc::rlimit { rlim_cur: value as libc::rlim_t, rlim_max: value as libc::rlim_t };
                if libc::setrlimit(resource, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            };
            set(libc::RLIMIT_AS, MAX_ADDRESS_SPACE)?;
            set(libc::RLIMIT_CPU, MAX_CPU_S)
        });
    }
    // Reaped by `wait4` below (std's `wait` cannot return the child's rusage).
    #[allow(clippy::zombie_processes)]
    let mut child = command.spawn().expect("sim starts");
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                pipe.read_to_end(&mut bytes).expect("read the child's output");
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr_pipe = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // SAFETY: waits for our own child; status and usage are valid for writes.
    let waited = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(waited, child.id() as libc::pid_t, "wait4: {}", std::io::Error::last_os_error());
    let output = Output {
        status: ExitStatus::from_raw(status),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr_pipe.join().expect("stderr reader"),
    };
    let peak_kb = usage.ru_maxrss; // kilobytes on Linux
    if let Ok(table) = std::env::var("ROUTESIM_RESOURCE_TABLE") {
        let first_line = stderr(&output).lines().next().unwrap_or("").replace('|', "\\|");
        let shown: String = first_line.chars().take(160).collect();
        let row = format!(
            "| `sim {}` | {} | {} | {:.1} MB |\n",
            args.join(" "),
            output.status.code().map_or("signal".to_string(), |c| c.to_string()),
            shown,
            peak_kb as f64 / 1024.0
        );
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(table).expect("table file");
        file.write_all(row.as_bytes()).expect("write the table row");
    }
    assert!(peak_kb < MAX_PEAK_RSS_KB, "sim {args:?}: peak RSS {peak_kb} kB above {MAX_PEAK_RSS_KB} kB");
    output
}

/// Exit 2 with exactly one line on stderr that starts with `prefix` and contains `needle`.
#[track_caller]
fn refused(o: &Output, prefix: &str, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "expected exit 2, got {:?}: {err}", o.status);
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with(prefix), "expected {prefix:?} first: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(err.len() < 1_000, "a short line: {} bytes", err.len());
}

#[track_caller]
fn succeeded(o: &Output) {
    assert!(o.status.success(), "exit {:?}: {}", o.status, stderr(o));
}

const HEADER: &str = "id,arrival_ms,class,input_tokens,output_tokens,session,parent,think_ms\n";

fn scenario(trace: &str, extra_deployment: &str, extra: &str) -> String {
    format!(
        "name = \"r\"\nseed = 1\n[trace]\nfile = \"{trace}\"\nreplay = \"closed\"\n\
         [deployments.\"anthropic/sonnet\"]\npreset = \"anthropic-tier4-sonnet-4.x\"\n{extra_deployment}\n\
         [[strategy]]\nname = \"single\"\npolicy = {{ kind = \"single\", deployment = \"anthropic/sonnet\" }}\n{extra}"
    )
}

/// A directory with `t.csv` (`rows` ordinary requests) and `s.toml` over it.
fn workdir(rows: usize, extra_deployment: &str, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut trace = HEADER.to_string();
    for i in 0..rows {
        trace += &format!("r{i},{},interactive,{},20,,,0\n", i * 700, 300 + (i * 37) % 900);
    }
    std::fs::write(dir.path().join("t.csv"), trace).unwrap();
    std::fs::write(dir.path().join("s.toml"), scenario("t.csv", extra_deployment, extra)).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: impl AsRef<[u8]>) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn far_future_times_are_refused_with_their_line_and_field() {
    let dir = workdir(0, "", "");
    for (row, field) in [
        ("a,1733000000000,interactive,100,10,,,0", "arrival_ms"), // epoch milliseconds
        ("a,10000000000000000,interactive,100,10,,,0", "arrival_ms"),
        ("a,0,interactive,100,10,s,,99999999999999", "think_ms"),
    ] {
        write(dir.path(), "far.csv", format!("{HEADER}r0,0,interactive,100,10,,,0\n{row}\n"));
        write(dir.path(), "far.toml", scenario("far.csv", "", ""));
        let o = limited(&["run", "far.toml"], dir.path());
        refused(&o, &format!("error: far.csv:3: field \"{field}\""), "beyond the maximum trace span");
    }
}

#[test]
fn a_stretching_rate_multiplier_is_refused() {
    let dir = workdir(50, "", "");
    // In an import's options.
    write(
        dir.path(),
        "b.csv",
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n0,ChatGPT,100,10,110,Conversation log\n5,ChatGPT,100,10,110,Conversation log\n",
    );
    let imported = scenario("b.csv", "", "").replace(
        "replay = \"closed\"",
        "format = \"burstgpt\"\nreplay = \"open\"\n[trace.import]\nrate_multiplier = 1e-9",
    );
    write(dir.path(), "imp.toml", imported);
    refused(&limited(&["run", "imp.toml"], dir.path()), "error: b.csv:2: ", "beyond the maximum trace span");
    // As a sweep axis.
    write(
        dir.path(),
        "sw.toml",
        "scenario = \"s.toml\"\nreplications = 1\n[axes]\ntrace.rate_multiplier = [1e-9]\n",
    );
    let o = limited(&["sweep", "sw.toml", "--out", "out", "--quiet"], dir.path());
    refused(&o, "error: sw.toml:4: axes.trace.rate_multiplier: 0.000000001 stretches the trace", "max_span");
}

#[test]
fn unbounded_policy_and_provider_settings_are_refused_with_their_line() {
    let dir = workdir(10, "", "");
    let cases = [
        (
            scenario("t.csv", "", "[[strategy]]\nname = \"b\"\npolicy = { kind = \"fallback\", chain = [\"anthropic/sonnet\"], backoff = { initial = \"1s\", max = \"100000h\" } }\n"),
            "error: x.toml:14: strategy[1].policy.backoff.max: 100000h is above the maximum of 24h",
        ),
        (
            scenario("t.csv", "incident_process = { uptime = 0.5, mean_duration = \"1us\", effect = { overloaded_rate = 0.5 } }", ""),
            "error: x.toml:8: deployments.\"anthropic/sonnet\".incident_process.mean_duration: must be at least 1s, got 1us",
        ),
    ];
    for (text, expected) in cases {
        write(dir.path(), "x.toml", text);
        refused(&limited(&["run", "x.toml"], dir.path()), expected, "");
    }
    // Ten thousand strategies: refused at the limit of a thousand.
    let mut many = scenario("t.csv", "", "");
    for i in 0..10_000 {
        many += &format!("[[strategy]]\nname = \"s{i}\"\npolicy = {{ kind = \"single\", deployment = \"anthropic/sonnet\" }}\n");
    }
    write(dir.path(), "many.toml", many);
    refused(&limited(&["run", "many.toml"], dir.path()), "error: many.toml:", "at most 1000 in one scenario");
}

#[test]
fn heavy_tails_and_endless_retries_finish_in_bounded_memory() {
    // TTFT lognormal with sigma 7: draws up to years; the per-minute series stay sparse.
    let dir = workdir(400, "latency.ttft_ms = { dist = \"lognormal\", median = 1800, sigma = 7 }", "");
    succeeded(&limited(&["run", "s.toml", "--out", "out"], dir.path()));
    assert!(dir.path().join("out/timeseries.csv").exists());
    // Every attempt fails and max_attempts is u32::MAX: the engine's attempt cap ends each request.
    let dir = workdir(
        100,
        "errors = { server_error_rate = 1.0 }",
        "[[strategy]]\nname = \"forever\"\npolicy = { kind = \"fallback\", chain = [\"anthropic/sonnet\"], max_attempts = 4294967295 }\n",
    );
    let o = limited(&["run", "s.toml", "--json"], dir.path());
    succeeded(&o);
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let forever = &summary["strategies"][1];
    assert_eq!(forever["name"], "forever");
    assert_eq!(forever["requests"], 100);
    assert_eq!(forever["succeeded"], 0, "every attempt fails");
}

#[test]
fn many_classes_cost_bytes_and_too_many_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rows = |n: usize| {
        let mut t = HEADER.to_string();
        for i in 0..n {
            t += &format!("r{i},{},tenant-{i},100,10,,,0\n", i * 10);
        }
        t
    };
    write(dir.path(), "c5k.csv", rows(5_000));
    write(dir.path(), "c5k.toml", scenario("c5k.csv", "", ""));
    succeeded(&limited(&["run", "c5k.toml"], dir.path()));
    write(dir.path(), "c20k.csv", rows(20_000));
    write(dir.path(), "c20k.toml", scenario("c20k.csv", "", ""));
    refused(
        &limited(&["run", "c20k.toml"], dir.path()),
        "error: c20k.csv:9998: field \"class\": too many distinct classes (at most 10000)",
        "",
    );
}

#[test]
fn generators_refuse_what_they_cannot_stream() {
    let dir = tempfile::tempdir().unwrap();
    // Each error names the generator file and the line of its key.
    let cases = [
        ("seed = 1\nduration = \"1h\"\nbackfill_size = 50000000\n", "error: g.toml:3: backfill_size: 50000000 is above the maximum"),
        ("seed = 1\nduration = \"1h\"\nburst_multiplier = 1733000000000.0\n", "error: g.toml:3: burst_multiplier: "),
        (
            "generator = \"open_loop\"\nduration = \"1h\"\n[[clients]]\nname = \"c\"\nprocess = { kind = \"poisson\", rate_per_s = 1e20 }\ninput_tokens = { dist = \"constant\", value = 100 }\noutput_tokens = { dist = \"constant\", value = 10 }\n",
            "error: g.toml:3: clients[0]: the clients' total mean rate 100000000000000000000 per second is above the maximum of 10000 per second",
        ),
        (
            "generator = \"open_loop\"\nduration = \"1h\"\n[[clients]]\nname = \"c\"\ncount = 4294967295\nprocess = { kind = \"poisson\", rate_per_s = 0.5 }\ninput_tokens = { dist = \"constant\", value = 100 }\noutput_tokens = { dist = \"constant\", value = 10 }\n",
            "error: g.toml:5: clients[0].count: 4294967295 clients in all is above the maximum of 100000",
        ),
        // A month of a million days (streamed forever before, ~21 TB): beyond the trace span.
        ("generator = \"month\"\ndays = 1000000\n", "error: g.toml:2: days: 1000000 days is beyond the maximum trace span of 8760h"),
        // An agent hour spread over 10^6 hours: beyond the span before anything is generated.
        ("seed = 1\nduration = \"1000000h\"\n", "error: g.toml:2: duration: 1000000h is beyond the maximum trace span of 8760h"),
        // A month whose busiest hour multiplies the rates past their bounds (such a window was
        // skipped silently before).
        (
            "generator = \"month\"\ndays = 1\nhourly = [1e6, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n",
            "error: g.toml:3: hourly: the busiest hour's multiplier 1000000 takes the agent's rates out of bounds",
        ),
        ("generator = \"month\"\ndays = 1\n[agent]\nsession_rate = 3\n", "error: g.toml:4: agent.session_rate: unknown field"),
        ("generator = \"month\"\ndays = [1\n", "error: g.toml:"),
    ];
    for (config, expected) in cases {
        write(dir.path(), "g.toml", config);
        let o = limited(&["trace", "gen", "--config", "g.toml", "-o", "g.csv"], dir.path());
        refused(&o, expected, "");
    }
    // Through a scenario: the scenario's line of `generator`, then the generator file's.
    write(dir.path(), "t.csv", HEADER);
    write(dir.path(), "g.toml", "generator = \"month\"\nseed = 3\ndays = 400\n");
    let text = scenario("t.csv", "", "").replace("file = \"t.csv\"", "generator = \"g.toml\"");
    write(dir.path(), "s.toml", &text);
    refused(
        &limited(&["run", "s.toml"], dir.path()),
        "error: s.toml:4: trace.generator: g.toml:3: days: 400 days is beyond the maximum trace span of 8760h",
        "",
    );
    // Inline: the scenario's own line of the key.
    let inline = scenario("t.csv", "", "").replace(
        "file = \"t.csv\"",
        "generate = { generator = \"month\", days = 1, agent = { backfill_size = 50000000 } }",
    );
    write(dir.path(), "i.toml", inline);
    refused(
        &limited(&["run", "i.toml"], dir.path()),
        "error: i.toml:4: trace.generate.agent.backfill_size: 50000000 is above the maximum of 1000000",
        "",
    );
}

#[test]
fn closed_loop_state_is_bounded_by_a_row_limit() {
    // Closed-loop replay keeps every id it has read (+32 MB a simulated day with two
    // strategies): a month generator may run for up to a year of days, so the rows are
    // bounded (`[simulation] max_closed_loop_rows`, default 10 M) and refused at the first row
    // past it. One day of the seed month (about 250,000 rows) against a limit of 1,000:
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "t.csv", HEADER);
    write(
        dir.path(),
        "g.toml",
        "generator = \"month\"\nseed = 3\ndays = 1\n[agent]\nsession_rate_per_min = 3.65\n",
    );
    let text = scenario("t.csv", "", "[simulation]\nmax_closed_loop_rows = 1000\n")
        .replace("file = \"t.csv\"", "generator = \"g.toml\"");
    write(dir.path(), "s.toml", &text);
    refused(
        &limited(&["run", "s.toml"], dir.path()),
        "error: g.toml:1002: closed-loop replay keeps the id of every row it has read",
        "more than 1000 rows ([simulation] max_closed_loop_rows",
    );
    // Under the default limit the same day runs in bounded memory.
    write(
        dir.path(),
        "s.toml",
        text.replace("max_closed_loop_rows = 1000", "max_closed_loop_rows = 10000000"),
    );
    succeeded(&limited(&["run", "s.toml"], dir.path()));
}

#[test]
fn huge_lines_are_refused_at_the_line_length_limit() {
    let dir = tempfile::tempdir().unwrap();
    let big = "x".repeat(3 << 20);
    write(dir.path(), "id.csv", format!("{HEADER}{big},0,interactive,100,10,,,0\n"));
    refused(
        &limited(&["trace", "stats", "id.csv"], dir.path()),
        "error: id.csv:2: line longer than the maximum",
        "1 MiB",
    );
    write(dir.path(), "h.csv", format!("id{big},arrival_ms\na,0\n"));
    refused(
        &limited(&["trace", "stats", "h.csv"], dir.path()),
        "error: h.csv:1: line longer than the maximum",
        "",
    );
    write(dir.path(), "h.jsonl", format!("{{\"timestamp\": 0, \"x\": \"{big}\"}}\n"));
    let o = limited(&["trace", "stats", "--format", "mooncake", "h.jsonl"], dir.path());
    refused(&o, "error: h.jsonl:1: line longer than the maximum", "");
    // A long header under the limit: the error elides it.
    write(dir.path(), "wide.csv", format!("id,{}\na,b\n", "y".repeat(500_000)));
    refused(
        &limited(&["trace", "stats", "wide.csv"], dir.path()),
        "error: wide.csv:1: unknown column \"yyy",
        "(500000 bytes)",
    );
}

#[test]
fn far_out_minutes_and_bad_latencies_in_results_are_reported_in_bounded_memory() {
    let dir = workdir(20, "", "");
    succeeded(&limited(&["run", "s.toml", "--out", "out"], dir.path()));
    let out = dir.path().join("out");
    let mut series = std::fs::read_to_string(out.join("timeseries.csv")).unwrap();
    series += "single,99999999999,anthropic/sonnet,1,0,1,100,10\n";
    std::fs::write(out.join("timeseries.csv"), series).unwrap();
    let latency = std::fs::read_to_string(out.join("latency.csv")).unwrap();
    let zeroed: Vec<String> = latency
        .lines()
        .enumerate()
        .map(|(i, l)| if i == 0 { l.to_string() } else { format!("{},0", l.rsplit_once(',').unwrap().0) })
        .collect();
    std::fs::write(out.join("latency.csv"), zeroed.join("\n") + "\n").unwrap();
    succeeded(&limited(&["report", "out"], dir.path()));
    assert!(out.join("report/report.md").exists());
    // BurstGPT with a far-future Timestamp (seconds).
    write(
        dir.path(),
        "b.csv",
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n0,ChatGPT,100,10,110,Conversation log\n99999999999,ChatGPT,100,10,110,Conversation log\n",
    );
    let o = limited(&["trace", "stats", "--format", "burstgpt", "b.csv"], dir.path());
    refused(&o, "error: b.csv:3: ", "check the unit of the timestamps");
}

#[test]
fn silent_losses_are_input_errors_with_the_right_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "self.csv",
        format!("{HEADER}a,0,interactive,100,10,s,,0\nb,1,interactive,100,10,s,b,0\n"),
    );
    refused(
        &limited(&["trace", "stats", "self.csv"], dir.path()),
        "error: self.csv:3: field \"parent\"",
        "its own parent",
    );
    // A cycle (a -> b -> a), a dangling parent and a repeated id: `trace stats` checks the
    // links as closed-loop replay does (it accepted all three with exit 0).
    for (rows, expected) in [
        (
            "a,0,interactive,100,10,s,b,0\nb,0,interactive,100,10,s,a,0\n",
            "error: l.csv:2: field \"parent\": unknown parent id",
        ),
        (
            "a,0,interactive,100,10,s,,0\nb,1,interactive,100,10,s,zz,0\n",
            "error: l.csv:3: field \"parent\": unknown parent id",
        ),
        (
            "a,0,interactive,100,10,s,,0\na,1,interactive,100,10,s,,0\n",
            "error: l.csv:3: field \"id\": duplicate id",
        ),
    ] {
        write(dir.path(), "l.csv", format!("{HEADER}{rows}"));
        refused(&limited(&["trace", "stats", "l.csv"], dir.path()), expected, "");
    }
    // Without a parent column nothing links, and repeated ids are fine (open-loop replay).
    write(
        dir.path(),
        "nolink.csv",
        "id,arrival_ms,class,input_tokens,output_tokens\na,0,interactive,1,1\na,1,interactive,1,1\n",
    );
    succeeded(&limited(&["trace", "stats", "nolink.csv"], dir.path()));
    // Old spreadsheet line endings (CR only): the bad row is line 4.
    write(
        dir.path(),
        "cr.csv",
        format!(
            "{}a,0,interactive,1,1,,,0\rb,1,interactive,1,1,,,0\rc,2,interactive,x,1,,,0\r",
            HEADER.replace('\n', "\r")
        ),
    );
    refused(
        &limited(&["trace", "stats", "cr.csv"], dir.path()),
        "error: cr.csv:4: field \"input_tokens\"",
        "",
    );
    // Invalid UTF-8 in JSONL: the line, once.
    write(dir.path(), "u.jsonl", b"{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1}\n{\"timestamp\": 1, \"input_length\": 1\xff, \"output_length\": 1}\n");
    let o = limited(&["trace", "stats", "--format", "mooncake", "u.jsonl"], dir.path());
    refused(&o, "error: u.jsonl:2: invalid UTF-8", "");
    // A missing file: the OS text once.
    let o = limited(&["trace", "stats", "nope.csv"], dir.path());
    refused(&o, "error: nope.csv: cannot open: ", "");
    assert_eq!(stderr(&o).matches("os error").count(), 1, "{}", stderr(&o));
    // A bare CR in a scenario.
    write(dir.path(), "cr.toml", "name = \"x\"\r[trace]\nfile = \"t.csv\"\n");
    refused(&limited(&["run", "cr.toml"], dir.path()), "error: cr.toml:1: bare carriage return (CR)", "");
}

#[test]
fn import_class_rules_count_toward_the_class_limit() {
    // 66,000 rules with distinct classes once panicked (class ids are u16) and 11,000 were
    // accepted past the limit: the rule that brings the 10,001st class is refused with its line.
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "b.csv",
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n0,ChatGPT,100,10,110,Conversation log\n",
    );
    let head =
        scenario("b.csv", "", "").replace("replay = \"closed\"", "format = \"burstgpt\"\nreplay = \"open\"");
    let mut text = format!("{head}[trace.import]\nclasses = [\n");
    let first_rule_line = text.lines().count() + 1;
    for i in 0..66_000 {
        text += &format!("{{ class = \"k{i}\", min_input_tokens = 999999 }},\n");
    }
    text += "]\n";
    write(dir.path(), "rules.toml", text);
    // The four built-ins count: rule 9996 would be the 10,001st class.
    let expected = format!(
        "error: rules.toml:{}: trace.import.classes[9996].class: too many distinct classes (at most 10000)",
        first_rule_line + 9996
    );
    refused(&limited(&["run", "rules.toml"], dir.path()), &expected, "");
    // The same rules as `sim trace stats --options`: the options file and its line.
    let mut options = "classes = [\n".to_string();
    for i in 0..10_500 {
        options += &format!("{{ class = \"k{i}\", min_input_tokens = 999999 }},\n");
    }
    options += "]\n";
    write(dir.path(), "opts.toml", options);
    let o =
        limited(&["trace", "stats", "--format", "burstgpt", "--options", "opts.toml", "b.csv"], dir.path());
    refused(&o, "error: opts.toml:9998: classes[9996].class: too many distinct classes", "");
}

#[test]
fn a_yaml_alias_bomb_is_refused_within_its_budget() {
    // 558 bytes that expand to 9^10 strings (> 4 GB before the budget).
    let dir = workdir(5, "", "");
    let bomb = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/corpus/litellm_yaml/regression-alias-bomb.yaml"
    ))
    .unwrap();
    assert_eq!(bomb.len(), 558);
    write(dir.path(), "bomb.yaml", bomb);
    let text = scenario("t.csv", "", "").replace(
        "policy = { kind = \"single\", deployment = \"anthropic/sonnet\" }",
        "policy = { kind = \"litellm\", config_file = \"bomb.yaml\" }",
    );
    write(dir.path(), "bomb.toml", text);
    let o = limited(&["run", "bomb.toml"], dir.path());
    refused(
        &o,
        "error: bomb.toml:11: strategy[0].policy.config_file: bomb.yaml:6: alias expands beyond the budget",
        "1000000 nodes",
    );
    // Lists nested a million deep on one line: refused, no stack overflow.
    write(dir.path(), "bomb.yaml", format!("{}x\n", "- ".repeat(1_000_000)));
    let o = limited(&["run", "bomb.toml"], dir.path());
    refused(
        &o,
        "error: bomb.toml:11: strategy[0].policy.config_file: bomb.yaml:1: ",
        "nested deeper than 256 levels",
    );
}

#[test]
fn sweeps_too_large_to_run_are_refused_before_any_work() {
    let dir = workdir(10, "", "");
    let values = |n: usize| format!("[{}]", (1..=n).map(|v| v.to_string()).collect::<Vec<_>>().join(", "));
    // 16 axes of 16 values: 2^64 points, which wrapped to 0 ("0 rows", exit 0).
    let mut wrap = "scenario = \"s.toml\"\nreplications = 1\n[axes]\n".to_string();
    for i in 0..16 {
        wrap += &format!("deployments.\"anthropic/sonnet\".limits.x{i} = {}\n", values(16));
    }
    write(dir.path(), "wrap.toml", wrap);
    let o = limited(&["sweep", "wrap.toml", "--out", "out", "--quiet"], dir.path());
    refused(
        &o,
        "error: wrap.toml:3: axes: more than 18446744073709551615 points (16 × 16 × 16 × 16 × 16 × 16 × 16 × 16 × … values), at most 100000 in one sweep",
        "combine = \"zip\"",
    );
    assert!(!dir.path().join("out").exists(), "refused before any output");
    // Three axes of a thousand values: 10^9 points, once set up one by one for days.
    let mut huge = "scenario = \"s.toml\"\nreplications = 1\n[axes]\n".to_string();
    for name in ["rpm", "tpm", "itpm"] {
        huge += &format!("deployments.\"anthropic/sonnet\".limits.{name} = {}\n", values(1000));
    }
    write(dir.path(), "huge.toml", huge);
    let started = std::time::Instant::now();
    let o = limited(&["sweep", "huge.toml", "--out", "out", "--quiet"], dir.path());
    refused(
        &o,
        "error: huge.toml:3: axes: 1000000000 points (1000 × 1000 × 1000 values), at most 100000",
        "",
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "refused at once: {:?}",
        started.elapsed()
    );
    // A sweep syntax error: one line, with its line.
    write(dir.path(), "syn.toml", "scenario = \"s.toml\"\n[axes]\nx = [1, 2\ny = 3\n");
    let o = limited(&["sweep", "syn.toml", "--out", "out", "--quiet"], dir.path());
    refused(&o, "error: syn.toml:", "");
    let line: usize =
        stderr(&o)["error: syn.toml:".len()..].split(':').next().unwrap().parse().expect("a line");
    assert!((3..=4).contains(&line), "{}", stderr(&o));
}

/// Size of a report file in bytes.
fn size(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).len()
}

#[test]
fn reports_stay_small_whatever_the_series_and_classes() {
    // 60 strategies with a heavy TTFT tail (attempts minutes to years out): the 429 plot once
    // took 1.4 GB and wrote a 1.4 GB SVG.
    let mut extra = String::new();
    for i in 1..60 {
        extra += &format!(
            "[[strategy]]\nname = \"s{i}\"\npolicy = {{ kind = \"single\", deployment = \"anthropic/sonnet\", max_attempts = 3 }}\n"
        );
    }
    let dir = workdir(400, "latency.ttft_ms = { dist = \"lognormal\", median = 1800, sigma = 7 }", &extra);
    succeeded(&limited(&["run", "s.toml", "--out", "out"], dir.path()));
    succeeded(&limited(&["report", "out"], dir.path()));
    let report = dir.path().join("out/report");
    for (file, max_bytes) in [
        ("rate_limits_over_time.svg", 4 << 20),
        ("rate_limits_over_time.png", 4 << 20),
        ("ttft_cdf.svg", 4 << 20),
        ("report.html", 16 << 20),
    ] {
        let bytes = size(&report.join(file));
        assert!(bytes < max_bytes, "{file}: {bytes} bytes");
    }
    // A crafted timeseries.csv: a thousand deployment names and a minute 10^11 out (a 73 KB
    // file with 200 names once aborted after 2.4 GB).
    let out = dir.path().join("out");
    let mut series = std::fs::read_to_string(out.join("timeseries.csv")).unwrap();
    for i in 0..1_000 {
        series += &format!("single,{i},dep-{i},1,1,0,100,10\n");
    }
    series += "single,99999999999,anthropic/sonnet,1,1,0,100,10\n";
    std::fs::write(out.join("timeseries.csv"), series).unwrap();
    succeeded(&limited(&["report", "out"], dir.path()));
    let svg = std::fs::read_to_string(report.join("rate_limits_over_time.svg")).unwrap();
    assert!(svg.len() < 4 << 20, "{} bytes", svg.len());
    assert!(svg.contains("other deployments"), "the names past the legend's limit share one layer");
    assert!(svg.contains("the first 24 of 60 strategies"), "the title says what is left out");
    // Two thousand classes: the TTFT CDF (a panel per class) once grew to a 128 MB PNG, a
    // 170 MB HTML and 3.7 GB of memory at 5,000 classes.
    let dir = tempfile::tempdir().unwrap();
    let mut trace = HEADER.to_string();
    for i in 0..2_000 {
        trace += &format!("r{i},{},tenant-{i},100,10,,,0\n", i * 10);
    }
    write(dir.path(), "c.csv", trace);
    write(dir.path(), "c.toml", scenario("c.csv", "", ""));
    succeeded(&limited(&["run", "c.toml", "--out", "out"], dir.path()));
    succeeded(&limited(&["report", "out"], dir.path()));
    let report = dir.path().join("out/report");
    for (file, max_bytes) in [("ttft_cdf.png", 4 << 20), ("ttft_cdf.svg", 4 << 20), ("report.html", 16 << 20)]
    {
        let bytes = size(&report.join(file));
        assert!(bytes < max_bytes, "{file}: {bytes} bytes");
    }
    let svg = std::fs::read_to_string(report.join("ttft_cdf.svg")).unwrap();
    assert!(svg.contains("(the first 24 of 2000 classes)"), "the title says what is left out");
}

#[test]
fn classes_times_strategies_is_bounded_and_the_limit_runs_in_bounded_memory() {
    // 9,990 classes x 100 strategies took 859 MB and 122 s (with --out, more than 1 GB of
    // files before it was stopped). The pairs are at most 50,000: 10 strategies may track 5,000
    // classes (the four built-ins count), and the row that brings one more is refused.
    let dir = tempfile::tempdir().unwrap();
    let rows = |n: usize| {
        let mut t = HEADER.to_string();
        for i in 0..n {
            t += &format!("r{i},{},tenant-{i},100,10,,,0\n", i * 10);
        }
        t
    };
    let mut extra = String::new();
    for i in 1..10 {
        extra += &format!("[[strategy]]\nname = \"s{i}\"\npolicy = {{ kind = \"single\", deployment = \"anthropic/sonnet\" }}\n");
    }
    write(dir.path(), "at.csv", rows(4_996));
    write(dir.path(), "at.toml", scenario("at.csv", "", &extra));
    succeeded(&limited(&["run", "at.toml", "--out", "out"], dir.path()));
    let latency = size(&dir.path().join("out/latency.csv"));
    assert!(latency < 200 << 20, "latency.csv: {latency} bytes");
    write(dir.path(), "over.csv", rows(4_997));
    write(dir.path(), "over.toml", scenario("over.csv", "", &extra));
    refused(
        &limited(&["run", "over.toml"], dir.path()),
        "error: over.csv:4998: field \"class\": too many distinct classes for 10 strategies (at most 5000: classes × strategies at most 50000)",
        "",
    );
}

/// The seed story (scenario and trace) in `dir`, the trace as `seed-story.csv` with `more`
/// rows appended and the scenario edited by `edit`.
fn seed_story(dir: &Path, more: &str, edit: impl Fn(String) -> String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let trace = std::fs::read_to_string(root.join("traces/seed-story.csv")).unwrap();
    write(dir, "seed-story.csv", trace + more);
    let text = std::fs::read_to_string(root.join("scenarios/seed-story.toml")).unwrap();
    let text = text.replace("file = \"../traces/seed-story.csv\"", "file = \"seed-story.csv\"");
    write(dir, "seed-story.toml", edit(text));
}

#[test]
fn the_issues_own_reproductions_on_the_seed_story() {
    // Two rows at epoch milliseconds (4.85 GB and exit 134 before issue 14): refused at the
    // first, line 8405.
    let dir = tempfile::tempdir().unwrap();
    let epoch =
        "e1,1733000000000,interactive,100,0,0,10,10,,,0,\ne2,1733000000001,interactive,100,0,0,10,10,,,0,\n";
    seed_story(dir.path(), epoch, |t| t);
    refused(
        &limited(&["run", "seed-story.toml"], dir.path()),
        "error: seed-story.csv:8405: field \"arrival_ms\": 1733000000000 ms is beyond the maximum trace span",
        "not epoch timestamps",
    );
    // The same rows under a raised max_span: they run, in bounded memory (the per-minute series
    // are sparse: minute 28,883,333 is one row), and so does the report of the run.
    seed_story(dir.path(), epoch, |t| {
        t.replace("lookahead = \"10m\"", "lookahead = \"10m\"\nmax_span = \"500000h\"")
    });
    succeeded(&limited(&["run", "seed-story.toml", "--out", "span"], dir.path()));
    let series = std::fs::read_to_string(dir.path().join("span/timeseries.csv")).unwrap();
    assert!(series.lines().any(|l| l.split(',').nth(1) == Some("28883333")), "the far minute is a row");
    succeeded(&limited(&["report", "span"], dir.path()));
    // A heavy TTFT tail on Sonnet (sigma 7: 23.9 GB before): runs, and its report stays small.
    seed_story(dir.path(), "", |t| {
        t.replacen(
            "limits.burst = \"10s\"",
            "limits.burst = \"10s\"\nlatency.ttft_ms = { dist = \"lognormal\", median = 1800, sigma = 7 }",
            1,
        )
    });
    succeeded(&limited(&["run", "seed-story.toml", "--out", "sigma"], dir.path()));
    succeeded(&limited(&["report", "sigma"], dir.path()));
    let svg = size(&dir.path().join("sigma/report/rate_limits_over_time.svg"));
    assert!(svg < 1 << 20, "rate_limits_over_time.svg: {svg} bytes (124 MB before)");
}

#[test]
fn deadlines_beyond_the_span_and_absurd_latencies_in_results() {
    let dir = workdir(20, "", "");
    write(
        dir.path(),
        "dl.csv",
        "id,arrival_ms,class,input_tokens,output_tokens,session,parent,think_ms,deadline_ms\na,0,interactive,100,10,,,0,99999999999999\n",
    );
    write(dir.path(), "dl.toml", scenario("dl.csv", "", ""));
    refused(
        &limited(&["run", "dl.toml"], dir.path()),
        "error: dl.csv:2: field \"deadline_ms\": 99999999999999 ms is beyond the maximum trace span",
        "",
    );
    // latency.csv all negative, all 1e308: the report draws a default axis in bounded memory.
    succeeded(&limited(&["run", "s.toml", "--out", "out"], dir.path()));
    let out = dir.path().join("out");
    let latency = std::fs::read_to_string(out.join("latency.csv")).unwrap();
    for value in ["-5", "1e308"] {
        let edited: Vec<String> =
            latency
                .lines()
                .enumerate()
                .map(|(i, l)| {
                    if i == 0 {
                        l.to_string()
                    } else {
                        format!("{},{value}", l.rsplit_once(',').unwrap().0)
                    }
                })
                .collect();
        std::fs::write(out.join("latency.csv"), edited.join("\n") + "\n").unwrap();
        succeeded(&limited(&["report", "out"], dir.path()));
        assert!(size(&out.join("report/ttft_cdf.png")) < 1 << 20);
    }
}
