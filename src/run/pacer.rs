//! Shared request pacing for all workers of a run.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Share of the interval `1 / rate` added to every slot, so that requests
/// arrive at most `rate` per second although each one takes a slightly
/// different time from its slot to the server.
///
/// With slots exactly 1/R apart, R + 1 requests span exactly one second, so
/// one request that arrives a millisecond late next to one on time puts
/// R + 1 arrivals into one second; the MAS simulator counted 201 for R = 200
/// that way. With the margin, R + 1 requests span 1.02 s, which absorbs up to
/// 20 ms of difference in delay, and a paced run takes 2% longer than N / R.
const JITTER_MARGIN: f64 = 0.02;

/// Spaces requests `(1 + JITTER_MARGIN) / rate` seconds apart, across all
/// workers.
///
/// A slot is taken before the request is sent, so a slow response never
/// lets the next requests bunch up.
#[derive(Debug)]
pub struct Pacer {
    next_slot: Mutex<Option<Instant>>,
}

impl Pacer {
    /// A pacer with no slot taken yet.
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
        let interval = Duration::from_secs_f64((1.0 + JITTER_MARGIN) / f64::from(rate));

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
    async fn rate_plus_one_slots_span_margin() {
        let pacer = Pacer::new();
        let start = Instant::now();

        for _ in 0..=200 {
            pacer.wait(Some(200)).await;
        }

        // Slot 0 is at once, slot 200 after 200 intervals of 5.1 ms.
        assert!(start.elapsed() >= Duration::from_millis(1020));
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
