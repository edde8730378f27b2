//! Shared request pacing for all workers of a run.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Spaces requests at least `1 / rate` seconds apart, across all workers.
///
/// With slots at least 1/R apart, any one-second window holds at most R
/// requests. A slot is taken before the request is sent, so a slow answer
/// never lets the next requests bunch up.
#[derive(Debug)]
pub struct Pacer {
    next_slot: Mutex<Option<Instant>>,
}

impl Pacer {
    /// Creates a pacer with no slot taken yet.
    pub fn new() -> Self {
        Self {
            next_slot: Mutex::new(None),
        }
    }

    /// Waits for the next free slot at `rate` requests per second; returns at
    /// once when `rate` is `None`.
    pub async fn wait(&self, rate: Option<u32>) {
        let Some(rate) = rate.filter(|rate| *rate > 0) else {
            return;
        };
        let interval = Duration::from_secs_f64(1.0 / f64::from(rate));

        let slot = {
            let mut next_slot = self.next_slot.lock().await;
            let now = Instant::now();
            let slot = next_slot.map_or(now, |next| next.max(now));
            *next_slot = Some(slot + interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slots_are_spaced_by_interval() {
        let pacer = Pacer::new();
        let start = Instant::now();

        for _ in 0..5 {
            pacer.wait(Some(10)).await;
        }

        assert!(start.elapsed() >= Duration::from_millis(400));
    }

    #[tokio::test(start_paused = true)]
    async fn no_rate_never_waits() {
        let pacer = Pacer::new();
        let start = Instant::now();

        for _ in 0..100 {
            pacer.wait(None).await;
        }

        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
