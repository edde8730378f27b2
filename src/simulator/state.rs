//! State shared by every connection of one simulator instance.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime};

use rand::Rng;

use super::config::SimulatorConfig;
use super::credentials::Credentials;
use super::directory::Directory;
use super::faults::{ChosenFault, FaultPlan, FaultState};
use super::ledger::{Ledger, lock};

/// Everything the handlers read and change. No lock is held across an `.await`.
pub struct State {
    started: Instant,
    /// Settings; `users` and `faults` are moved out into `directory` and `faults`.
    pub config: SimulatorConfig,
    pub directory: Directory,
    pub ledger: Ledger,
    pub credentials: Credentials,
    faults: Mutex<FaultState>,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
}

impl State {
    pub fn new(mut config: SimulatorConfig) -> Self {
        let users = std::mem::take(&mut config.users);
        let faults = std::mem::take(&mut config.faults);
        let credentials = Credentials::new(
            config.tokens.clone(),
            config.api_keys.clone(),
            config.jwt_lifetime_secs,
        );
        Self {
            started: Instant::now(),
            config,
            directory: Directory::new(users),
            ledger: Ledger::default(),
            credentials,
            faults: Mutex::new(FaultState::new(faults)),
            in_flight: AtomicUsize::new(0),
            peak_in_flight: AtomicUsize::new(0),
        }
    }

    /// Milliseconds since the simulator started, on the monotonic clock.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Samples the latency of one response: the fixed part plus uniform jitter.
    pub fn sample_latency_ms(&self) -> u64 {
        let jitter = match self.config.latency_jitter_ms {
            0 => 0,
            max => rand::rng().random_range(0..=max),
        };
        self.config.latency_ms + jitter
    }

    pub fn set_faults(&self, plan: FaultPlan) {
        *lock(&self.faults) = FaultState::new(plan);
    }

    pub fn next_password_fault(&self, user_id: &str) -> Option<ChosenFault> {
        lock(&self.faults).next_for_password_call(user_id, SystemTime::now())
    }

    pub fn take_connection_abort(&self) -> bool {
        lock(&self.faults).take_connection_abort()
    }

    /// Counts a MAS request as in progress until the returned slot is dropped, unless it is
    /// over `max_concurrent_requests`.
    pub fn enter_request(&self) -> RequestSlot<'_> {
        let in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let over_limit = self
            .config
            .max_concurrent_requests
            .is_some_and(|max| in_flight > max);
        if over_limit {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
        } else {
            self.peak_in_flight.fetch_max(in_flight, Ordering::SeqCst);
        }
        RequestSlot {
            state: self,
            over_limit,
        }
    }

    /// Highest number of MAS requests that were in progress at once, rejected ones excluded.
    pub fn peak_in_flight(&self) -> usize {
        self.peak_in_flight.load(Ordering::SeqCst)
    }
}

/// A MAS request in progress; see [`State::enter_request`].
pub struct RequestSlot<'a> {
    state: &'a State,
    /// Whether the request is over the concurrency limit and must get 429.
    pub over_limit: bool,
}

impl Drop for RequestSlot<'_> {
    fn drop(&mut self) {
        if !self.over_limit {
            self.state.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_limit_rejects_extra_requests() {
        let state = State::new(SimulatorConfig {
            max_concurrent_requests: Some(2),
            ..SimulatorConfig::default()
        });
        let first = state.enter_request();
        let second = state.enter_request();
        let third = state.enter_request();
        assert!(!first.over_limit);
        assert!(!second.over_limit);
        assert!(third.over_limit);

        drop(third);
        drop(second);
        assert!(!state.enter_request().over_limit);
        assert_eq!(state.peak_in_flight(), 2);
    }
}
