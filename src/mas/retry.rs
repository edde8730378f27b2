//! Retry decisions for password requests. Pure functions: the caller
//! supplies the time and the random jitter, so every decision is
//! reproducible in tests.
//!
//! A password reset is not idempotent: a second call sets another password
//! and sends another e-mail. So by default only responses that state the
//! request was not processed (429, 503) and requests that never left
//! (`NotSent`) are retried.

use std::time::{Duration, SystemTime};

use super::attempt::{Attempt, NotSentKind};

/// Limits of the retries of one user's request.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included; 0 counts as 1.
    pub max_attempts: u32,
    /// Backoff before the second attempt; it doubles with each attempt.
    pub base_delay: Duration,
    /// Maximum wait before a retry: the cap of the backoff, and the maximum
    /// `Retry-After` the client honours.
    pub max_delay: Duration,
    /// Retry requests whose outcome is unknown (timeouts, lost connections,
    /// 502 and 504), accepting that a user may be reset twice.
    pub retry_indeterminate: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            retry_indeterminate: false,
        }
    }
}

/// Next step after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// MAS applied the request.
    Succeeded,
    /// Final: MAS did not apply the request, or returned an error that a
    /// retry would not change. The attempt contains the status or cause.
    Failed,
    /// Final: the request may or may not have been applied.
    Unknown,
    /// Send the request again after this delay.
    RetryAfter(Duration),
    /// HTTP 401: ask the token provider, then repeat or stop.
    Unauthorized,
}

/// Decides what follows `attempt`, the attempt number `attempt_number`
/// (1-based) of one request.
///
/// | outcome                          | decision                                             |
/// |----------------------------------|------------------------------------------------------|
/// | 2xx                              | `Succeeded` (`Unknown` if the body is not JSON)      |
/// | 401                              | `Unauthorized`                                       |
/// | 429, 503                         | retry after `Retry-After`, else backoff; `Failed` when attempts run out or `Retry-After` exceeds `max_delay` |
/// | 502, 504                         | `Unknown`; with `retry_indeterminate` like 429       |
/// | any other status (3xx, 4xx, 5xx) | `Failed`                                             |
/// | `NotSent` (connect, DNS, TLS)    | retry after backoff; `Failed` when attempts run out  |
/// | `NotSent` (invalid request)      | `Failed`                                             |
/// | `Indeterminate`                  | `Unknown`; with `retry_indeterminate` retry after backoff, `Unknown` when attempts run out |
///
/// 500 is `Failed` and never retried: MAS reached the handler, and it may
/// have set the password before failing, so a retry risks a second reset and
/// a second e-mail. The status is reported so an operator can check the
/// user. 502 and 504 come from the router in front of MAS. 504 means MAS did
/// not respond in time and 502 that its connection broke, so the request may
/// have been applied, as after a client-side timeout. 503 is retried because
/// both MAS and the router send it when they did not accept the request.
///
/// `jitter` in `0..=1` (clamped; NaN counts as 0) spreads the backoff of
/// concurrent workers: the wait is `cap / 2 + jitter * cap / 2` ("equal
/// jitter") with `cap = min(base_delay * 2^(attempt_number - 1), max_delay)`,
/// so a retry never comes sooner than half the exponential delay.
pub fn decide(
    policy: &RetryPolicy,
    attempt_number: u32,
    attempt: &Attempt,
    now: SystemTime,
    jitter: f64,
) -> Decision {
    let attempts_left = attempt_number < policy.max_attempts.max(1);

    match attempt {
        Attempt::Answered {
            status,
            retry_after,
            error,
            ..
        } => match *status {
            // A 2xx that carries an error did not come from the MAS API (see
            // `non_json_success`), so whether anything changed is unknown.
            200..=299 if error.is_some() => Decision::Unknown,
            200..=299 => Decision::Succeeded,
            401 => Decision::Unauthorized,
            429 | 503 => {
                if !attempts_left {
                    return Decision::Failed;
                }
                retry_delay(policy, attempt_number, retry_after.as_deref(), now, jitter)
                    .map_or(Decision::Failed, Decision::RetryAfter)
            }
            502 | 504 => {
                if !policy.retry_indeterminate || !attempts_left {
                    return Decision::Unknown;
                }
                retry_delay(policy, attempt_number, retry_after.as_deref(), now, jitter)
                    .map_or(Decision::Unknown, Decision::RetryAfter)
            }
            _ => Decision::Failed,
        },
        Attempt::NotSent {
            kind: NotSentKind::InvalidRequest,
            ..
        } => Decision::Failed,
        Attempt::NotSent { .. } if attempts_left => {
            Decision::RetryAfter(backoff(policy, attempt_number, jitter))
        }
        Attempt::NotSent { .. } => Decision::Failed,
        Attempt::Indeterminate { .. } if policy.retry_indeterminate && attempts_left => {
            Decision::RetryAfter(backoff(policy, attempt_number, jitter))
        }
        Attempt::Indeterminate { .. } => Decision::Unknown,
    }
}

/// Returns the wait before a retry: the server's valid `Retry-After`, else
/// the backoff. Returns `None` when the server requests more than
/// `max_delay`, because a sooner retry would ignore the request and a longer
/// wait would block a worker for an unbounded time.
fn retry_delay(
    policy: &RetryPolicy,
    attempt_number: u32,
    retry_after: Option<&str>,
    now: SystemTime,
    jitter: f64,
) -> Option<Duration> {
    match retry_after.and_then(|value| parse_retry_after(value, now)) {
        Some(requested) if requested > policy.max_delay => None,
        Some(requested) => Some(requested),
        None => Some(backoff(policy, attempt_number, jitter)),
    }
}

/// Exponential backoff with equal jitter; see [`decide`].
fn backoff(policy: &RetryPolicy, attempt_number: u32, jitter: f64) -> Duration {
    let exponent = attempt_number.saturating_sub(1).min(31);
    let cap = policy
        .base_delay
        .saturating_mul(1u32 << exponent)
        .min(policy.max_delay);

    let jitter = if jitter.is_nan() {
        0.0
    } else {
        jitter.clamp(0.0, 1.0)
    };
    let half = cap / 2;
    half + half.mul_f64(jitter)
}

/// Parses a `Retry-After` value: delta-seconds or an HTTP-date.
///
/// - `"120"` is 120 s; leading and trailing whitespace is ignored.
/// - Fractional seconds such as `"1.5"` are not valid HTTP, but some
///   servers send them. They are rounded up to whole seconds (2 s), so the
///   retry never comes sooner than requested.
/// - An HTTP-date in the future gives the time until then; one in the past
///   gives zero.
/// - A number too large for `u64` seconds saturates at `u64::MAX` seconds.
///   Nothing is capped here: [`decide`] compares the result with the
///   policy's `max_delay`.
/// - Anything else (negative numbers, signs, exponents, empty text) is
///   malformed and gives `None`, so the caller falls back to its backoff.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }

    if let Some(seconds) = parse_delta_seconds(value) {
        return Some(Duration::from_secs(seconds));
    }

    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses `digits` or `digits.digits`, rounding a non-zero fraction up.
fn parse_delta_seconds(value: &str) -> Option<u64> {
    let (whole, fraction) = match value.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (value, None),
    };

    let all_digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || fraction.is_some_and(|fraction| !all_digits(fraction)) {
        return None;
    }

    // Only ASCII digits remain, so a parse failure can only be overflow.
    let seconds = whole.parse::<u64>().unwrap_or(u64::MAX);
    let round_up = fraction.is_some_and(|fraction| fraction.bytes().any(|b| b != b'0'));
    Some(if round_up {
        seconds.saturating_add(1)
    } else {
        seconds
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mas::attempt::IndeterminateKind;

    fn answered(status: u16, retry_after: Option<&str>) -> Attempt {
        Attempt::Answered {
            status,
            error: None,
            retry_after: retry_after.map(str::to_owned),
            generated_password: None,
        }
    }

    fn not_sent(kind: NotSentKind) -> Attempt {
        Attempt::NotSent {
            kind,
            detail: String::new(),
        }
    }

    fn indeterminate() -> Attempt {
        Attempt::Indeterminate {
            kind: IndeterminateKind::Timeout,
            detail: String::new(),
        }
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    fn millis(milliseconds: u64) -> Duration {
        Duration::from_millis(milliseconds)
    }

    #[test]
    fn decide_table() {
        let policy = RetryPolicy::default();
        let retrying = RetryPolicy {
            retry_indeterminate: true,
            ..RetryPolicy::default()
        };
        let date_in_10s = httpdate::fmt_http_date(now() + secs(10));

        // (policy, attempt number, attempt, jitter, expected)
        let cases: Vec<(&RetryPolicy, u32, Attempt, f64, Decision)> = vec![
            (&policy, 1, answered(200, None), 0.0, Decision::Succeeded),
            (&policy, 1, answered(204, None), 0.0, Decision::Succeeded),
            (&policy, 1, answered(401, None), 0.0, Decision::Unauthorized),
            (&policy, 5, answered(401, None), 0.0, Decision::Unauthorized),
            (&policy, 1, answered(400, None), 0.0, Decision::Failed),
            (&policy, 1, answered(403, None), 0.0, Decision::Failed),
            (&policy, 1, answered(404, None), 0.0, Decision::Failed),
            (&policy, 1, answered(409, None), 0.0, Decision::Failed),
            (&policy, 1, answered(422, None), 0.0, Decision::Failed),
            (&policy, 1, answered(302, None), 0.0, Decision::Failed),
            (&policy, 1, answered(500, None), 0.0, Decision::Failed),
            (&retrying, 1, answered(500, None), 0.0, Decision::Failed),
            (&policy, 1, answered(501, None), 0.0, Decision::Failed),
            // 429 and 503: Retry-After wins over the backoff, whatever its size.
            (
                &policy,
                1,
                answered(429, Some("7")),
                0.0,
                Decision::RetryAfter(secs(7)),
            ),
            (
                &policy,
                1,
                answered(503, Some("0")),
                1.0,
                Decision::RetryAfter(secs(0)),
            ),
            (
                &policy,
                1,
                answered(429, Some("1.5")),
                0.0,
                Decision::RetryAfter(secs(2)),
            ),
            (
                &policy,
                1,
                answered(429, Some(&date_in_10s)),
                0.0,
                Decision::RetryAfter(secs(10)),
            ),
            (
                &policy,
                1,
                answered(429, Some("60")),
                0.0,
                Decision::RetryAfter(secs(60)),
            ),
            (&policy, 1, answered(429, Some("61")), 0.0, Decision::Failed),
            // 429 and 503 without a usable Retry-After: equal-jitter backoff.
            (
                &policy,
                1,
                answered(429, None),
                0.0,
                Decision::RetryAfter(millis(250)),
            ),
            (
                &policy,
                1,
                answered(429, None),
                1.0,
                Decision::RetryAfter(millis(500)),
            ),
            (
                &policy,
                2,
                answered(503, None),
                0.5,
                Decision::RetryAfter(millis(750)),
            ),
            (
                &policy,
                3,
                answered(503, Some("soon")),
                0.0,
                Decision::RetryAfter(millis(1000)),
            ),
            (
                &policy,
                4,
                answered(503, Some("-3")),
                1.0,
                Decision::RetryAfter(millis(4000)),
            ),
            // Attempts exhausted on a retryable response.
            (&policy, 5, answered(429, Some("1")), 0.0, Decision::Failed),
            (&policy, 5, answered(503, None), 0.0, Decision::Failed),
            // Gateway errors: the request may have reached MAS.
            (&policy, 1, answered(502, None), 0.0, Decision::Unknown),
            (&policy, 1, answered(504, Some("1")), 0.0, Decision::Unknown),
            (
                &retrying,
                1,
                answered(502, None),
                1.0,
                Decision::RetryAfter(millis(500)),
            ),
            (
                &retrying,
                1,
                answered(504, Some("3")),
                0.0,
                Decision::RetryAfter(secs(3)),
            ),
            (&retrying, 5, answered(504, None), 0.0, Decision::Unknown),
            // Never sent.
            (
                &policy,
                1,
                not_sent(NotSentKind::Connect),
                0.0,
                Decision::RetryAfter(millis(250)),
            ),
            (
                &policy,
                2,
                not_sent(NotSentKind::Dns),
                1.0,
                Decision::RetryAfter(millis(1000)),
            ),
            (
                &policy,
                4,
                not_sent(NotSentKind::TlsHandshake),
                1.0,
                Decision::RetryAfter(millis(4000)),
            ),
            (
                &policy,
                5,
                not_sent(NotSentKind::Connect),
                0.0,
                Decision::Failed,
            ),
            (
                &policy,
                1,
                not_sent(NotSentKind::InvalidRequest),
                0.0,
                Decision::Failed,
            ),
            // Outcome unknown.
            (&policy, 1, indeterminate(), 0.0, Decision::Unknown),
            (
                &retrying,
                1,
                indeterminate(),
                1.0,
                Decision::RetryAfter(millis(500)),
            ),
            (&retrying, 5, indeterminate(), 0.0, Decision::Unknown),
        ];

        for (index, (policy, attempt_number, attempt, jitter, expected)) in cases.iter().enumerate()
        {
            let decision = decide(policy, *attempt_number, attempt, now(), *jitter);
            assert_eq!(
                decision, *expected,
                "case {index}: attempt {attempt_number} {attempt:?} jitter {jitter}"
            );
        }
    }

    #[test]
    fn backoff_capped_at_max_delay() {
        let policy = RetryPolicy {
            max_attempts: u32::MAX,
            ..RetryPolicy::default()
        };

        for attempt_number in [8, 9, 20, 32, 33, 1_000, u32::MAX - 1] {
            let decision = decide(&policy, attempt_number, &answered(503, None), now(), 1.0);
            assert_eq!(
                decision,
                Decision::RetryAfter(secs(60)),
                "attempt {attempt_number}"
            );
        }
    }

    #[test]
    fn backoff_never_below_half_cap() {
        let policy = RetryPolicy::default();

        for jitter in [0.0, 0.25, 0.999, -3.0, f64::NAN, f64::INFINITY] {
            let Decision::RetryAfter(delay) =
                decide(&policy, 3, &not_sent(NotSentKind::Connect), now(), jitter)
            else {
                panic!("jitter {jitter}: no retry");
            };
            assert!(delay >= millis(1000), "jitter {jitter}: {delay:?}");
            assert!(delay <= millis(2000), "jitter {jitter}: {delay:?}");
        }
    }

    #[test]
    fn zero_max_attempts_allows_one() {
        let policy = RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        };

        let decision = decide(&policy, 1, &answered(503, None), now(), 0.0);

        assert_eq!(decision, Decision::Failed);
    }

    #[test]
    fn parse_retry_after_cases() {
        let cases: Vec<(String, Option<Duration>)> = vec![
            ("0".into(), Some(secs(0))),
            ("120".into(), Some(secs(120))),
            (" 5 ".into(), Some(secs(5))),
            ("007".into(), Some(secs(7))),
            ("1.5".into(), Some(secs(2))),
            ("1.0".into(), Some(secs(1))),
            ("0.001".into(), Some(secs(1))),
            (httpdate::fmt_http_date(now() + secs(90)), Some(secs(90))),
            (httpdate::fmt_http_date(now() - secs(90)), Some(secs(0))),
            ("Sun, 06 Nov 1994 08:49:37 GMT".into(), Some(secs(0))),
            ("Sunday, 06-Nov-94 08:49:37 GMT".into(), Some(secs(0))),
            ("Sun Nov  6 08:49:37 1994".into(), Some(secs(0))),
            (
                "99999999999999999999999".into(),
                Some(Duration::from_secs(u64::MAX)),
            ),
            (
                "18446744073709551615.5".into(),
                Some(Duration::from_secs(u64::MAX)),
            ),
            ("-1".into(), None),
            ("+5".into(), None),
            ("1e3".into(), None),
            ("1.".into(), None),
            (".5".into(), None),
            ("1.2.3".into(), None),
            ("5 s".into(), None),
            ("".into(), None),
            ("   ".into(), None),
            ("soon".into(), None),
            ("Sun, 06 Nov 1994 25:49:37 GMT".into(), None),
            ("٣".into(), None),
        ];

        for (value, expected) in cases {
            assert_eq!(
                parse_retry_after(&value, now()),
                expected,
                "value {value:?}"
            );
        }
    }

    #[test]
    fn parse_retry_after_future_date_lower_bound() {
        let value = httpdate::fmt_http_date(now() + secs(3600));

        let parsed = parse_retry_after(&value, now() + millis(400)).expect("valid date");

        // HTTP-dates have whole seconds, so 400 ms later rounds to the
        // same second boundary or earlier.
        assert!(parsed <= secs(3600), "{parsed:?}");
        assert!(parsed >= secs(3599), "{parsed:?}");
    }
}
