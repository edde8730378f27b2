//! `POST /v3/users/{userid}/password?emailPassword=true|false`: set or generate a password.
//!
//! The checks run in this order, which is the order a MAS server behind a gateway most
//! plausibly has: concurrency limit, injected fault, token and permission, query, content
//! type, body, user, password policy. Every call that reaches this handler is recorded in
//! the ledger, whatever its outcome.

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::CONTENT_TYPE;
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

use super::config::SuccessBody;
use super::dispatch::{Arrival, Planned};
use super::faults::{Fault, requested_wait_ms};
use super::ledger::{BodyKind, LedgerEntry};
use super::mas_error::{MasError, json_response};
use super::routes::{decode_segment, query_parameter, raw_target};
use super::state::State;
use crate::secret::SecretString;

/// Largest request body read; a bigger one is rejected as invalid.
const MAX_BODY_BYTES: usize = 64 * 1024;

const EMAIL_PASSWORD_PARAMETER: &str = "emailPassword";

/// Password change the body requests.
enum RequestedPassword {
    Generate,
    Set(SecretString),
}

/// A password call in progress and its ledger entry.
struct PasswordCall<'a> {
    state: &'a State,
    entry: LedgerEntry,
    arrival: Arrival,
}

impl PasswordCall<'_> {
    /// Records the call and responds with an error.
    fn reject(mut self, error: MasError) -> Planned {
        self.entry.status = error.status.as_u16();
        if let Some(retry_after) = &error.retry_after {
            self.entry.retry_after = Some(retry_after.clone());
            self.entry.earliest_retry_ms =
                requested_wait_ms(retry_after, std::time::SystemTime::now())
                    .map(|wait_ms| self.state.now_ms() + self.arrival.latency_ms + wait_ms);
        }
        self.record();
        Planned::respond(error.into_response())
    }

    /// Records the call and closes the connection without a response.
    fn reset(mut self) -> Planned {
        self.entry.status = 0;
        self.record();
        Planned::reset()
    }

    fn record(self) {
        let entry = self.entry;
        tracing::debug!(
            seq = entry.seq,
            user_id = entry.user_id,
            status = entry.status,
            applied = entry.applied,
            fault = entry.fault,
            "password call"
        );
        self.state.ledger.record_password_call(entry);
    }
}

/// Serves one password call.
pub async fn set_password(
    state: &State,
    request: Request<Incoming>,
    raw_user_id: &str,
    arrival: Arrival,
) -> Planned {
    let email_query = query_parameter(request.uri().query(), EMAIL_PASSWORD_PARAMETER);
    let mut call = PasswordCall {
        state,
        entry: LedgerEntry {
            seq: state.ledger.next_seq(),
            at_ms: arrival.at_ms,
            method: request.method().to_string(),
            raw_path: raw_target(request.uri()),
            user_id: String::new(),
            body_kind: BodyKind::NotRead,
            email_password: email_query.as_deref() == Some("true"),
            status: 0,
            applied: false,
            fault: None,
            retry_after: None,
            earliest_retry_ms: None,
        },
        arrival,
    };

    let Ok(user_id) = decode_segment(raw_user_id) else {
        return call.reject(MasError::invalid_user_segment(raw_user_id));
    };
    call.entry.user_id = user_id.clone();

    if arrival.over_limit {
        call.entry.fault = Some("concurrency_limit".to_owned());
        let retry_after = state.config.concurrency_retry_after.clone();
        return call.reject(MasError::too_many_requests(retry_after));
    }

    let chosen = state.next_password_fault(&user_id);
    call.entry.fault = chosen.as_ref().map(|chosen| chosen.label());
    let fault = chosen.map(|chosen| chosen.fault);
    if fault == Some(Fault::ResetBeforeRequest) {
        return call.reset();
    }

    let (parts, body) = request.into_parts();
    let body = read_body(body).await;
    let requested = body.and_then(|bytes| parse_body(&bytes));
    call.entry.body_kind = match &requested {
        Ok(RequestedPassword::Generate) => BodyKind::Empty,
        Ok(RequestedPassword::Set(_)) => BodyKind::Password,
        Err(_) => BodyKind::Invalid,
    };

    if let Some(Fault::Status {
        status,
        retry_after,
    }) = &fault
    {
        let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return call.reject(MasError::injected(status, retry_after.clone()));
    }

    let echo = state
        .config
        .echo_credentials_in_errors
        .then(|| echoed_credentials(&parts, &requested));
    let outcome = apply(state, &parts, &user_id, email_query.as_deref(), requested);
    let outcome = outcome.map_err(|mut error| {
        if let Some(echo) = &echo {
            error.text.push_str(echo);
        }
        error
    });
    let reset_after_apply = fault == Some(Fault::ResetAfterApply);
    let mut planned = match (outcome, reset_after_apply) {
        (Err(error), true) => {
            tracing::debug!(user_id, error_id = error.id, "call failed before the reset");
            call.reset()
        }
        (Err(error), false) => call.reject(error),
        (Ok(_), true) => {
            call.entry.applied = true;
            call.reset()
        }
        (Ok(response), false) => {
            call.entry.applied = true;
            call.entry.status = response.status().as_u16();
            call.record();
            Planned::respond(response)
        }
    };
    if let Some(Fault::Delay { ms }) = fault {
        planned.extra_delay_ms = ms;
    }
    planned
}

/// Runs the checks after the injected faults and, when they pass, changes the password.
fn apply(
    state: &State,
    parts: &Parts,
    user_id: &str,
    email_query: Option<&str>,
    requested: Result<RequestedPassword, MasError>,
) -> Result<Response<Full<Bytes>>, MasError> {
    let config = &state.config;
    state.credentials.authorize_user_admin(&parts.headers)?;

    // NOTE: MAS does not document a default for a missing emailPassword; the simulator
    // takes it as false and rejects values other than true and false.
    let email_password = match email_query {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(MasError::invalid_query(EMAIL_PASSWORD_PARAMETER, other)),
    };
    check_content_type(parts)?;
    let requested = requested?;

    let user = state
        .directory
        .get(user_id)
        .ok_or_else(|| MasError::user_not_found(user_id))?;
    if !user.local {
        return Err(MasError::no_local_identity(
            user_id,
            status(config.sso_user_status),
        ));
    }
    if let Some(code) = config.inactive_user_status
        && !user.active
    {
        return Err(MasError::user_inactive(user_id, status(code)));
    }
    if let Some(code) = config.missing_email_status
        && email_password
        && user.email.is_none()
    {
        return Err(MasError::no_email_address(user_id, status(code)));
    }

    let generated = match requested {
        RequestedPassword::Set(password) => {
            config
                .policy
                .check(password.expose(), user_id)
                .map_err(|violation| MasError::policy_violation(&violation))?;
            state.directory.set_password(user_id, password.expose());
            None
        }
        RequestedPassword::Generate => {
            let password = SecretString::new(config.policy.generate(&mut rand::rng()));
            state.directory.set_password(user_id, password.expose());
            Some(password)
        }
    };

    let return_password = !email_password && config.return_generated_password;
    Ok(match generated {
        Some(password) if return_password => {
            json_response(StatusCode::OK, &json!({ "token": password.expose() }))
        }
        _ => success_response(config.success_body),
    })
}

/// Builds the text that `echo_credentials_in_errors` appends to an error message.
fn echoed_credentials(parts: &Parts, requested: &Result<RequestedPassword, MasError>) -> String {
    let token = parts
        .headers
        .get(super::credentials::ACCESS_TOKEN_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let password = match requested {
        Ok(RequestedPassword::Set(password)) => password.expose(),
        _ => "",
    };
    format!(" Request token: {token}. Requested password: \"{password}\".")
}

fn success_response(body: SuccessBody) -> Response<Full<Bytes>> {
    match body {
        SuccessBody::EmptyObject => json_response(StatusCode::OK, &json!({})),
        SuccessBody::Empty => Response::new(Full::new(Bytes::new())),
    }
}

/// Converts a status knob that `SimulatorConfig::validate` has checked.
fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
}

fn check_content_type(parts: &Parts) -> Result<(), MasError> {
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if media_type.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(MasError::unsupported_media_type(content_type))
    }
}

async fn read_body(body: Incoming) -> Result<Bytes, MasError> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(MasError::invalid_body("the body is larger than 64 KiB"))
        }
        Err(_) => Err(MasError::invalid_body("the body could not be read")),
    }
}

/// Reads `{}` or `{"token": "<password>"}`; other members are ignored, as JSON readers
/// commonly do.
fn parse_body(bytes: &[u8]) -> Result<RequestedPassword, MasError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|_| MasError::invalid_body("the body is not valid JSON"))?;
    let Value::Object(members) = value else {
        return Err(MasError::invalid_body("the body is not a JSON object"));
    };
    match members.get("token") {
        None | Some(Value::Null) => Ok(RequestedPassword::Generate),
        Some(Value::String(password)) => {
            Ok(RequestedPassword::Set(SecretString::new(password.as_str())))
        }
        Some(_) => Err(MasError::invalid_body("the member token is not a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_forms_are_classified() {
        assert!(matches!(parse_body(b"{}"), Ok(RequestedPassword::Generate)));
        assert!(matches!(
            parse_body(br#"{"token": null}"#),
            Ok(RequestedPassword::Generate)
        ));
        assert!(matches!(
            parse_body(br#"{"token": "Secret123", "extra": 1}"#),
            Ok(RequestedPassword::Set(password)) if password.expose() == "Secret123"
        ));
    }

    #[test]
    fn bad_bodies_are_rejected() {
        for body in [&b""[..], b"{", b"[]", b"\"x\"", br#"{"token": 5}"#] {
            let error = parse_body(body).err().unwrap();
            assert_eq!(error.id, "AIUCO1011E", "{}", String::from_utf8_lossy(body));
        }
    }
}
