//! Progress of long commands on stderr (`sim run`, `sim sweep`): a bar with ETA (indicatif)
//! when stderr is a terminal, a plain line every [`LINE_EVERY`] otherwise (logs, CI, batch
//! jobs), or nothing (`--quiet`).
//!
//! A [`Progress`] counts work in one unit (runs, or bytes of a trace) towards an optional
//! total, with a free message beside it (points done, rows read and their rate). It may be
//! updated from several threads: the position is atomic and only reporting takes a lock. It
//! knows nothing of what the work is; callers say what to count and what to print.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// A progress bar with ETA (stderr is a terminal).
    Bar,
    /// A plain line every few seconds.
    Lines,
    Quiet,
}

impl ProgressMode {
    /// Nothing with `quiet`, else a bar on a terminal and lines elsewhere.
    pub fn for_stderr(quiet: bool) -> ProgressMode {
        if quiet {
            ProgressMode::Quiet
        } else if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            ProgressMode::Bar
        } else {
            ProgressMode::Lines
        }
    }
}

/// How often a plain progress line is printed.
pub const LINE_EVERY: Duration = Duration::from_secs(5);

/// What a [`Progress`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Items with this plural name (`runs`).
    Count(&'static str),
    /// Bytes (of a trace file), shown in MB.
    Bytes,
}

/// One command's progress; see the module docs.
pub struct Progress {
    mode: ProgressMode,
    /// Prefix of the plain lines (`sweep`, `run`).
    what: &'static str,
    unit: Unit,
    total: Option<u64>,
    position: AtomicU64,
    started: Instant,
    /// When the last plain line was printed (None: none yet), and the current message.
    state: Mutex<(Option<Instant>, String)>,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Starts counting `unit` towards `total` (None: unknown, no ETA).
    pub fn new(mode: ProgressMode, what: &'static str, unit: Unit, total: Option<u64>) -> Progress {
        let started = Instant::now();
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = match total {
                Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
                None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            };
            let template = match (unit, total) {
                (Unit::Count(name), Some(_)) => {
                    format!("{{elapsed_precise}} [{{bar:40}}] {{pos}}/{{len}} {name} · {{msg}} · ETA {{eta}}")
                }
                (Unit::Bytes, Some(_)) => {
                    "{elapsed_precise} [{bar:40}] {bytes}/{total_bytes} · {msg} · ETA {eta}".to_string()
                }
                (_, None) => "{elapsed_precise} {spinner} {msg}".to_string(),
            };
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Progress {
            mode,
            what,
            unit,
            total,
            position: AtomicU64::new(0),
            started,
            state: Mutex::new((None, String::new())),
            bar,
        }
    }

    /// Whether anything is shown at all.
    pub fn is_quiet(&self) -> bool {
        self.mode == ProgressMode::Quiet
    }

    /// Seconds since the start.
    pub fn elapsed_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Moves the position forward by `n`.
    pub fn add(&self, n: u64) {
        let position = self.position.fetch_add(n, Ordering::Relaxed) + n;
        self.show(position, None);
    }

    /// Sets the position and the message beside it.
    pub fn set(&self, position: u64, message: String) {
        self.position.store(position, Ordering::Relaxed);
        self.show(position, Some(message));
    }

    /// Replaces the message beside the position.
    pub fn set_message(&self, message: String) {
        self.show(self.position.load(Ordering::Relaxed), Some(message));
    }

    fn show(&self, position: u64, message: Option<String>) {
        match self.mode {
            ProgressMode::Bar => {
                if let Some(bar) = &self.bar {
                    bar.set_position(position);
                    if let Some(message) = message {
                        bar.set_message(message);
                    }
                }
            }
            ProgressMode::Lines => {
                let now = Instant::now();
                let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if let Some(message) = message {
                    state.1 = message;
                }
                if now.duration_since(state.0.unwrap_or(self.started)) >= LINE_EVERY {
                    state.0 = Some(now);
                    let line = self.line(position, &state.1);
                    drop(state);
                    eprintln!("{line}");
                }
            }
            ProgressMode::Quiet => {}
        }
    }

    fn amount(&self, value: u64) -> String {
        match self.unit {
            Unit::Count(_) => value.to_string(),
            Unit::Bytes => format!("{:.0}", value as f64 / 1e6),
        }
    }

    fn line(&self, position: u64, message: &str) -> String {
        let elapsed = self.elapsed_s();
        let unit = match self.unit {
            Unit::Count(name) => name,
            Unit::Bytes => "MB",
        };
        let message = if message.is_empty() { String::new() } else { format!(", {message}") };
        match self.total {
            Some(total) => {
                let eta = if position == 0 {
                    0.0
                } else {
                    elapsed / position as f64 * total.saturating_sub(position) as f64
                };
                format!(
                    "{}: {}/{} {unit} ({:.0}%){message}, {elapsed:.0}s elapsed, ETA {eta:.0}s",
                    self.what,
                    self.amount(position),
                    self.amount(total),
                    100.0 * position as f64 / total.max(1) as f64,
                )
            }
            None => {
                format!("{}: {} {unit}{message}, {elapsed:.0}s elapsed", self.what, self.amount(position))
            }
        }
    }

    /// Clears the bar (or prints a last line, if any line was printed: a short command stays
    /// silent) and then `summary`, unless quiet.
    pub fn finish(&self, summary: Option<String>) {
        match self.mode {
            ProgressMode::Bar => {
                if let Some(bar) = &self.bar {
                    bar.finish_and_clear();
                }
            }
            ProgressMode::Lines => {
                let state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if state.0.is_some() {
                    eprintln!("{}", self.line(self.position.load(Ordering::Relaxed), &state.1));
                }
            }
            ProgressMode::Quiet => return,
        }
        if let Some(summary) = summary {
            eprintln!("{summary}");
        }
    }
}

/// A count in millions with two decimals (`1.25 M`), or as is below ten thousand.
pub fn millions(n: f64) -> String {
    if n < 1e4 {
        format!("{n:.0}")
    } else {
        format!("{:.2} M", n / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_position_total_share_and_message() {
        let p = Progress::new(ProgressMode::Quiet, "sweep", Unit::Count("runs"), Some(10));
        assert_eq!(
            p.line(3, "1/2 points"),
            format!("sweep: 3/10 runs (30%), 1/2 points, {:.0}s elapsed, ETA {:.0}s", 0.0, 0.0)
        );
        let p = Progress::new(ProgressMode::Quiet, "run", Unit::Bytes, Some(637_000_000));
        assert!(p.line(63_700_000, "").starts_with("run: 64/637 MB (10%), "));
        let p = Progress::new(ProgressMode::Quiet, "run", Unit::Count("rows"), None);
        assert_eq!(p.line(5, "x"), "run: 5 rows, x, 0s elapsed");
        assert_eq!(millions(1_250_000.0), "1.25 M");
        assert_eq!(millions(42.0), "42");
    }
}
