//! Shared request pacing for all workers of a run.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Factor by which the interval between requests exceeds `1 / rate`.
///
/// With exactly `1 / R` between sends, request `k` and request `k + R` leave
/// one second apart, so MAS receives `R + 1` requests in one second as soon
/// as request `k` takes 1 ms longer on the way than request `k + R` (the
/// simulator counted 201 at R = 200 that way). A 2 % wider interval puts
/// 1.02 s between them. MAS then receives at most `R` requests in any
/// one-second window unless their delays differ by 20 ms or more, and a
/// paced run takes about 2 % longer than N / R.
pub const INTERVAL_HEADROOM: f64 = 1.02;

/// Spaces requests [`INTERVAL_HEADROOM`]` / rate` seconds apart, across all
/// workers of a run.
///
/// Workers take turns in FIFO order. Each turn is planned one interval after
/// the previous planned turn, so the timer's rounding (a sleep ends up to a
/// millisecond late) does not add up over a run. Real release times bound it
/// too: request `k + R` is never released less than `INTERVAL_HEADROOM`
/// seconds after request `k` really left, so a worker that woke late cannot
/// make `R + 1` requests leave within one second.
#[derive(Debug)]
pub struct Pacer {
    state: Mutex<PacerState>,
}

#[derive(Debug, Default)]
struct PacerState {
    /// Planned time of the previous turn.
    planned: Option<Instant>,
    /// Real release times of the most recent requests, oldest first; at
    /// most as many as the current rate.
    released: VecDeque<Instant>,
}

impl Pacer {
    /// Creates a pacer that has released nothing yet.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(PacerState::default()),
        }
    }

    /// Waits for this worker's turn at the rate that `rate` returns when the
    /// turn comes, so a rate change applies to the next request. A rate of
    /// `None` (or 0) releases at once.
    pub async fn wait(&self, rate: impl Fn() -> Option<u32>) {
        let mut state = self.state.lock().await;
        let now = Instant::now();

        let Some(rate) = rate().filter(|rate| *rate > 0) else {
            state.planned = Some(now);
            state.released.clear();
            return;
        };
        let interval = Duration::from_secs_f64(INTERVAL_HEADROOM / f64::from(rate));
        let window = Duration::from_secs_f64(INTERVAL_HEADROOM);
        let rate = rate as usize;

        let mut turn = state
            .planned
            .map_or(now, |planned| (planned + interval).max(now));
        while state.released.len() > rate {
            state.released.pop_front();
        }
        if state.released.len() == rate
            && let Some(oldest) = state.released.front()
        {
            turn = turn.max(*oldest + window);
        }
        tokio::time::sleep_until(turn).await;

        state.planned = Some(turn);
        state.released.push_back(Instant::now());
        if state.released.len() > rate {
            state.released.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn releases_are_spaced_by_interval() {
        let pacer = Pacer::new();
        let start = Instant::now();

        for _ in 0..5 {
            pacer.wait(|| Some(10)).await;
        }

        // Four intervals of 102 ms after the first release.
        assert!(start.elapsed() >= Duration::from_millis(408));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_plus_one_slots_span_margin() {
        let pacer = Pacer::new();
        let start = Instant::now();

        for _ in 0..=200 {
            pacer.wait(|| Some(200)).await;
        }

        // Release 0 is at once, release 200 after 200 intervals of 5.1 ms.
        assert!(start.elapsed() >= Duration::from_millis(1020));
    }

    #[tokio::test(start_paused = true)]
    async fn no_rate_never_waits() {
        let pacer = Pacer::new();
        let start = Instant::now();

        for _ in 0..100 {
            pacer.wait(|| None).await;
        }

        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn late_release_moves_the_next_one() {
        let pacer = Pacer::new();
        pacer.wait(|| Some(10)).await;

        // The next worker is 300 ms late; the one after it still waits a
        // whole interval after that late release.
        tokio::time::sleep(Duration::from_millis(300)).await;
        pacer.wait(|| Some(10)).await;
        let late = Instant::now();
        pacer.wait(|| Some(10)).await;

        assert!(late.elapsed() >= Duration::from_millis(102));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_workers_never_release_closer_than_interval() {
        let pacer = Arc::new(Pacer::new());
        let mut workers = tokio::task::JoinSet::new();

        for _ in 0..8 {
            let pacer = pacer.clone();
            workers.spawn(async move {
                pacer.wait(|| Some(20)).await;
                Instant::now()
            });
        }
        let mut releases = workers.join_all().await;
        releases.sort();

        for pair in releases.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_micros(51_000));
        }
    }
}
