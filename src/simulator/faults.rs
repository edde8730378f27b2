//! Scripted and seeded random faults: error statuses with each `Retry-After` form, slow
//! responses, connection resets and aborted connections.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Faults to inject. Replacing the plan drops what is left of the previous one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultPlan {
    /// Faults per decoded user ID, consumed in order, one per password call for that user
    /// that passes the concurrency limit. Calls after the list is used up run normally.
    pub per_user: HashMap<String, Vec<Fault>>,
    /// Random faults for password calls without a scripted fault.
    pub random: Option<RandomFaults>,
    /// Number of the next accepted connections to close before reading any request. On a
    /// TLS listener this happens during the handshake, so the client gets a connect error
    /// can be sure that no request was sent.
    pub abort_connections: u32,
}

/// A fault plan that cannot be carried out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultPlanError {
    #[error("fault for user {user_id:?} has status {status}; injected statuses must be 400 to 599")]
    InvalidStatus { user_id: String, status: u16 },
    #[error("random fault rate {name} is {rate}; rates must be from 0.0 to 1.0")]
    InvalidRate { name: &'static str, rate: f64 },
    #[error("random fault rates for password calls add up to {sum}, more than 1.0")]
    RatesAboveOne { sum: f64 },
}

impl FaultPlan {
    /// Checks statuses and rates.
    pub fn validate(&self) -> Result<(), FaultPlanError> {
        for (user_id, faults) in &self.per_user {
            for fault in faults {
                if let Fault::Status { status, .. } = fault
                    && !(400..=599).contains(status)
                {
                    return Err(FaultPlanError::InvalidStatus {
                        user_id: user_id.clone(),
                        status: *status,
                    });
                }
            }
        }

        let Some(random) = &self.random else {
            return Ok(());
        };
        let call_rates = [
            ("rate_429", random.rate_429),
            ("rate_500", random.rate_500),
            ("rate_503", random.rate_503),
            ("rate_reset_before", random.rate_reset_before),
            ("rate_reset_after", random.rate_reset_after),
        ];
        let connection_rate = ("rate_abort_connection", random.rate_abort_connection);
        for (name, rate) in call_rates.into_iter().chain([connection_rate]) {
            if !(0.0..=1.0).contains(&rate) {
                return Err(FaultPlanError::InvalidRate { name, rate });
            }
        }
        let sum: f64 = call_rates.iter().map(|(_, rate)| rate).sum();
        if sum > 1.0 {
            return Err(FaultPlanError::RatesAboveOne { sum });
        }
        Ok(())
    }
}

/// One scripted fault of a password call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Respond with this status without applying the change. `retry_after` is the raw header
    /// value, for example `"2"`, `"Wed, 21 Oct 2026 07:28:00 GMT"`, `"1.5"` or `"soon"`.
    Status {
        status: u16,
        #[serde(default)]
        retry_after: Option<String>,
    },
    /// Apply the change and respond normally, but this many milliseconds later. A client
    /// that times out meanwhile cannot know that the change was applied.
    Delay { ms: u64 },
    /// Close the connection right after reading the request head, without reading the body,
    /// applying the change or responding.
    ///
    /// NOTE: on TLS the request was already sent when the server reads which user it is for,
    /// so the client gets a broken connection, not a connect error. Use
    /// [`FaultPlan::abort_connections`] to fail the TLS handshake instead.
    ResetBeforeRequest,
    /// Apply the change, then close the connection without responding.
    ResetAfterApply,
}

impl Fault {
    /// Short name of the fault for the ledger.
    pub fn label(&self) -> String {
        match self {
            Self::Status { status, .. } => format!("status_{status}"),
            Self::Delay { ms } => format!("delay_{ms}ms"),
            Self::ResetBeforeRequest => "reset_before_request".to_owned(),
            Self::ResetAfterApply => "reset_after_apply".to_owned(),
        }
    }
}

/// Seeded random faults. With the same seed and the same order of calls, the same calls get
/// the same faults. Each rate is a probability from 0.0 to 1.0 and the rates add up to at
/// most 1.0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RandomFaults {
    pub seed: u64,
    pub rate_429: f64,
    /// `Retry-After` forms for 429 and 503 responses, chosen at random; empty means `1`.
    pub retry_after_forms: Vec<RetryAfterForm>,
    pub rate_500: f64,
    pub rate_503: f64,
    /// Rate of [`Fault::ResetBeforeRequest`].
    pub rate_reset_before: f64,
    /// Rate of [`Fault::ResetAfterApply`].
    pub rate_reset_after: f64,
    /// Probability that an accepted connection is closed before any request, as with
    /// [`FaultPlan::abort_connections`]. Drawn from a separate generator seeded with `seed`.
    pub rate_abort_connection: f64,
}

impl Default for RandomFaults {
    fn default() -> Self {
        Self {
            seed: 1,
            rate_429: 0.0,
            retry_after_forms: Vec::new(),
            rate_500: 0.0,
            rate_503: 0.0,
            rate_reset_before: 0.0,
            rate_reset_after: 0.0,
            rate_abort_connection: 0.0,
        }
    }
}

/// A way to write the `Retry-After` header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryAfterForm {
    /// Delta-seconds, for example `2`.
    Seconds(u64),
    /// An HTTP-date this many seconds ahead (whole seconds, so up to 1 s earlier in effect).
    HttpDate(u64),
    /// Fractional seconds such as `1.5`, which RFC 9110 does not allow.
    Fractional(f64),
    /// A value that is neither form: `soon`.
    Malformed,
    /// No header at all.
    Missing,
}

impl RetryAfterForm {
    /// Renders the header value at `now`; `None` for [`RetryAfterForm::Missing`].
    pub fn render(&self, now: SystemTime) -> Option<String> {
        match self {
            Self::Seconds(seconds) => Some(seconds.to_string()),
            Self::HttpDate(seconds) => {
                Some(httpdate::fmt_http_date(now + Duration::from_secs(*seconds)))
            }
            Self::Fractional(seconds) => Some(seconds.to_string()),
            Self::Malformed => Some("soon".to_owned()),
            Self::Missing => None,
        }
    }
}

/// Fault chosen for a call, and whether it was drawn at random.
#[derive(Debug, Clone, PartialEq)]
pub struct ChosenFault {
    pub fault: Fault,
    pub random: bool,
}

impl ChosenFault {
    pub fn label(&self) -> String {
        if self.random {
            format!("random_{}", self.fault.label())
        } else {
            self.fault.label()
        }
    }
}

/// Live fault state: what is left of the plan and the random generators.
pub struct FaultState {
    per_user: HashMap<String, VecDeque<Fault>>,
    random: Option<RandomFaults>,
    call_rng: StdRng,
    connection_rng: StdRng,
    abort_connections: u32,
}

impl FaultState {
    pub fn new(plan: FaultPlan) -> Self {
        let seed = plan.random.as_ref().map_or(0, |random| random.seed);
        Self {
            per_user: plan
                .per_user
                .into_iter()
                .map(|(user, faults)| (user, faults.into()))
                .collect(),
            random: plan.random,
            call_rng: StdRng::seed_from_u64(seed),
            connection_rng: StdRng::seed_from_u64(seed.wrapping_add(1)),
            abort_connections: plan.abort_connections,
        }
    }

    /// Takes the fault for the next password call of `user_id`, if any.
    pub fn next_for_password_call(
        &mut self,
        user_id: &str,
        now: SystemTime,
    ) -> Option<ChosenFault> {
        if let Some(queue) = self.per_user.get_mut(user_id)
            && let Some(fault) = queue.pop_front()
        {
            return Some(ChosenFault {
                fault,
                random: false,
            });
        }

        let random = self.random.as_ref()?;
        let fault = draw_random_fault(random, &mut self.call_rng, now)?;
        Some(ChosenFault {
            fault,
            random: true,
        })
    }

    /// Decides whether to close a newly accepted connection before reading from it.
    pub fn take_connection_abort(&mut self) -> bool {
        if self.abort_connections > 0 {
            self.abort_connections -= 1;
            return true;
        }
        match &self.random {
            Some(random) if random.rate_abort_connection > 0.0 => {
                self.connection_rng.random::<f64>() < random.rate_abort_connection
            }
            _ => false,
        }
    }
}

fn draw_random_fault(random: &RandomFaults, rng: &mut StdRng, now: SystemTime) -> Option<Fault> {
    let draw: f64 = rng.random();
    let mut threshold = 0.0;

    threshold += random.rate_429;
    if draw < threshold {
        return Some(status_with_retry_after(429, random, rng, now));
    }
    threshold += random.rate_500;
    if draw < threshold {
        return Some(Fault::Status {
            status: 500,
            retry_after: None,
        });
    }
    threshold += random.rate_503;
    if draw < threshold {
        return Some(status_with_retry_after(503, random, rng, now));
    }
    threshold += random.rate_reset_before;
    if draw < threshold {
        return Some(Fault::ResetBeforeRequest);
    }
    threshold += random.rate_reset_after;
    if draw < threshold {
        return Some(Fault::ResetAfterApply);
    }
    None
}

fn status_with_retry_after(
    status: u16,
    random: &RandomFaults,
    rng: &mut StdRng,
    now: SystemTime,
) -> Fault {
    let form = random
        .retry_after_forms
        .choose(rng)
        .cloned()
        .unwrap_or(RetryAfterForm::Seconds(1));
    Fault::Status {
        status,
        retry_after: form.render(now),
    }
}

/// Returns how long a `Retry-After` value requests to wait, in milliseconds, when it has one of
/// the forms a client can read: delta-seconds, an HTTP-date, or fractional seconds (rounded
/// up). A date in the past requests no wait.
pub fn requested_wait_ms(retry_after: &str, now: SystemTime) -> Option<u64> {
    let value = retry_after.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds.saturating_mul(1_000));
    }
    if let Ok(date) = httpdate::parse_http_date(value) {
        let wait = date.duration_since(now).unwrap_or(Duration::ZERO);
        return Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
    }
    match value.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => {
            Some((seconds * 1_000.0).ceil() as u64)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_plan(seed: u64) -> FaultPlan {
        FaultPlan {
            random: Some(RandomFaults {
                seed,
                rate_429: 0.3,
                retry_after_forms: vec![
                    RetryAfterForm::Seconds(2),
                    RetryAfterForm::HttpDate(3),
                    RetryAfterForm::Fractional(1.5),
                    RetryAfterForm::Malformed,
                    RetryAfterForm::Missing,
                ],
                rate_500: 0.1,
                rate_503: 0.1,
                rate_reset_before: 0.05,
                rate_reset_after: 0.05,
                rate_abort_connection: 0.0,
            }),
            ..FaultPlan::default()
        }
    }

    #[test]
    fn per_user_faults_are_consumed_in_order() {
        let plan = FaultPlan {
            per_user: HashMap::from([(
                "alice".to_owned(),
                vec![Fault::ResetBeforeRequest, Fault::Delay { ms: 5 }],
            )]),
            ..FaultPlan::default()
        };
        let mut state = FaultState::new(plan);
        let now = SystemTime::now();

        let first = state.next_for_password_call("alice", now).unwrap();
        assert_eq!(first.fault, Fault::ResetBeforeRequest);
        assert!(!first.random);
        let second = state.next_for_password_call("alice", now).unwrap();
        assert_eq!(second.fault, Fault::Delay { ms: 5 });
        assert_eq!(state.next_for_password_call("alice", now), None);
        assert_eq!(state.next_for_password_call("bob", now), None);
    }

    #[test]
    fn random_faults_repeat_with_seed() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let draw_all = |seed| {
            let mut state = FaultState::new(random_plan(seed));
            (0..200)
                .map(|_| state.next_for_password_call("u", now))
                .collect::<Vec<_>>()
        };

        let first = draw_all(42);
        assert_eq!(first, draw_all(42));
        assert_ne!(first, draw_all(43));

        let faults = first.iter().flatten().count();
        assert!((60..=140).contains(&faults), "{faults} faults in 200 calls");
    }

    #[test]
    fn abort_connections_counts_down() {
        let mut state = FaultState::new(FaultPlan {
            abort_connections: 2,
            ..FaultPlan::default()
        });
        assert!(state.take_connection_abort());
        assert!(state.take_connection_abort());
        assert!(!state.take_connection_abort());
    }

    #[test]
    fn retry_after_forms_render() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(RetryAfterForm::Seconds(2).render(now).as_deref(), Some("2"));
        assert_eq!(
            RetryAfterForm::HttpDate(60).render(now).as_deref(),
            Some("Tue, 14 Nov 2023 22:14:20 GMT")
        );
        assert_eq!(
            RetryAfterForm::Fractional(1.5).render(now).as_deref(),
            Some("1.5")
        );
        assert_eq!(
            RetryAfterForm::Malformed.render(now).as_deref(),
            Some("soon")
        );
        assert_eq!(RetryAfterForm::Missing.render(now), None);
    }

    #[test]
    fn requested_wait_reads_each_form() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(requested_wait_ms("2", now), Some(2_000));
        assert_eq!(requested_wait_ms("1.5", now), Some(1_500));
        assert_eq!(
            requested_wait_ms("Tue, 14 Nov 2023 22:14:20 GMT", now),
            Some(60_000)
        );
        assert_eq!(
            requested_wait_ms("Tue, 14 Nov 2023 22:12:00 GMT", now),
            Some(0)
        );
        assert_eq!(requested_wait_ms("soon", now), None);
        assert_eq!(requested_wait_ms("-1", now), None);
    }

    #[test]
    fn validate_rejects_bad_statuses_and_rates() {
        let bad_status = FaultPlan {
            per_user: HashMap::from([(
                "alice".to_owned(),
                vec![Fault::Status {
                    status: 200,
                    retry_after: None,
                }],
            )]),
            ..FaultPlan::default()
        };
        assert!(matches!(
            bad_status.validate(),
            Err(FaultPlanError::InvalidStatus { status: 200, .. })
        ));

        let mut crowded = random_plan(1);
        crowded.random.as_mut().unwrap().rate_500 = 0.9;
        assert!(matches!(
            crowded.validate(),
            Err(FaultPlanError::RatesAboveOne { .. })
        ));

        let mut negative = random_plan(1);
        negative.random.as_mut().unwrap().rate_abort_connection = -0.1;
        assert!(matches!(
            negative.validate(),
            Err(FaultPlanError::InvalidRate {
                name: "rate_abort_connection",
                ..
            })
        ));
        assert_eq!(random_plan(1).validate(), Ok(()));
    }

    #[test]
    fn fault_plan_reads_json() {
        let json = r#"{"per_user": {"ops/admin": [
            {"kind": "status", "status": 429, "retry_after": "2"},
            {"kind": "reset_after_apply"}]},
            "random": {"seed": 7, "rate_503": 0.5, "retry_after_forms": [{"http_date": 3}, "missing"]}}"#;
        let plan: FaultPlan = serde_json::from_str(json).unwrap();
        assert_eq!(
            plan.per_user["ops/admin"],
            [
                Fault::Status {
                    status: 429,
                    retry_after: Some("2".to_owned())
                },
                Fault::ResetAfterApply
            ]
        );
        let random = plan.random.unwrap();
        assert_eq!(random.seed, 7);
        assert_eq!(
            random.retry_after_forms,
            [RetryAfterForm::HttpDate(3), RetryAfterForm::Missing]
        );
    }
}
