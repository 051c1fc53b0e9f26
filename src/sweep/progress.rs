//! Progress of a sweep on stderr: a bar with ETA (indicatif) on a terminal, a plain line every
//! few seconds otherwise (logs, CI, batch jobs), or nothing. Shared by the rayon workers;
//! counts are atomic and only reporting takes a lock.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// A progress bar with ETA (stderr is a terminal).
    Bar,
    /// A plain line every few seconds.
    Lines,
    Quiet,
}

const LINE_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    mode: ProgressMode,
    total_runs: u64,
    runs: AtomicU64,
    points: AtomicU64,
    points_todo: usize,
    started: Instant,
    last_line: Mutex<Instant>,
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(mode: ProgressMode, total_runs: u64, points_todo: usize, points_skipped: usize) -> Progress {
        let started = Instant::now();
        if mode != ProgressMode::Quiet && points_skipped > 0 {
            eprintln!("sweep: {points_skipped} points already done, {points_todo} to run");
        }
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total_runs), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} runs · {msg} · ETA {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(format!("0/{points_todo} points"));
            bar
        });
        Progress {
            mode,
            total_runs,
            runs: AtomicU64::new(0),
            points: AtomicU64::new(0),
            points_todo,
            started,
            last_line: Mutex::new(started),
            bar,
        }
    }

    pub fn run_done(&self) {
        let done = self.runs.fetch_add(1, Ordering::Relaxed) + 1;
        match self.mode {
            ProgressMode::Bar => {
                if let Some(bar) = &self.bar {
                    bar.set_position(done);
                }
            }
            ProgressMode::Lines => {
                let now = Instant::now();
                let mut last = self.last_line.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if now.duration_since(*last) >= LINE_EVERY {
                    *last = now;
                    drop(last);
                    self.line(done);
                }
            }
            ProgressMode::Quiet => {}
        }
    }

    pub fn point_done(&self) {
        let points = self.points.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{points}/{} points", self.points_todo));
        }
    }

    fn line(&self, done: u64) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = if done == 0 { 0.0 } else { elapsed / done as f64 * (self.total_runs - done) as f64 };
        eprintln!(
            "sweep: {done}/{} runs ({:.0}%), {}/{} points, {elapsed:.0}s elapsed, ETA {eta:.0}s",
            self.total_runs,
            100.0 * done as f64 / self.total_runs.max(1) as f64,
            self.points.load(Ordering::Relaxed),
            self.points_todo,
        );
    }

    pub fn finish(&self) {
        if self.points_todo == 0 {
            return;
        }
        match self.mode {
            ProgressMode::Bar => {
                if let Some(bar) = &self.bar {
                    bar.finish_and_clear();
                }
            }
            ProgressMode::Lines => self.line(self.runs.load(Ordering::Relaxed)),
            ProgressMode::Quiet => {}
        }
        if self.mode != ProgressMode::Quiet {
            eprintln!(
                "sweep: {} runs of {} points in {:.1}s",
                self.runs.load(Ordering::Relaxed),
                self.points_todo,
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}
