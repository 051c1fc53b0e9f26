//! The served provider's clock: virtual time = wall time since the server started × the time
//! scale, so `--time-scale 60` runs a minute of provider time (latencies, bucket refill,
//! incident windows) in a wall second.
//!
//! It owns the two conversions (wall → virtual [`Instant`], virtual → wall) and nothing else;
//! the provider model never sees the scale: it is driven at virtual instants like in a
//! simulation. It must not know about HTTP.

use crate::time::{Duration, Instant};

/// A wall clock running `scale` times faster than real time, from `epoch`.
#[derive(Clone, Copy, Debug)]
pub struct ScaledClock {
    epoch: std::time::Instant,
    scale: f64,
}

impl ScaledClock {
    /// Starts now. `scale` must be finite and > 0 (checked by the caller's validation).
    pub fn start(scale: f64) -> ScaledClock {
        ScaledClock { epoch: std::time::Instant::now(), scale }
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Virtual now.
    pub fn now(&self) -> Instant {
        self.virtual_at(std::time::Instant::now())
    }

    /// The virtual instant of a wall instant (before the epoch: zero).
    pub fn virtual_at(&self, wall: std::time::Instant) -> Instant {
        let elapsed_s = wall.saturating_duration_since(self.epoch).as_secs_f64();
        Instant::ZERO + Duration::from_secs_f64(elapsed_s * self.scale)
    }

    /// The wall instant of a virtual instant.
    pub fn wall_at(&self, at: Instant) -> std::time::Instant {
        self.epoch + self.wall_duration(at.saturating_since(Instant::ZERO))
    }

    /// How long a virtual duration lasts on the wall.
    pub fn wall_duration(&self, d: Duration) -> std::time::Duration {
        std::time::Duration::from_secs_f64(d.as_secs_f64() / self.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_time_runs_scale_times_faster_and_converts_back() {
        let clock = ScaledClock::start(20.0);
        let wall = clock.epoch + std::time::Duration::from_millis(150);
        // 150 ms of wall at 20× = 3 s of provider time, and back.
        assert_eq!(clock.virtual_at(wall), Instant::from_millis(3_000));
        assert_eq!(clock.wall_at(Instant::from_millis(3_000)), wall);
        assert_eq!(clock.wall_duration(Duration::from_secs(1)), std::time::Duration::from_millis(50));
        assert_eq!(clock.virtual_at(clock.epoch - std::time::Duration::from_millis(1)), Instant::ZERO);
    }
}
