//! `GET /v1/authenticate` and `GET /v3/users/{userid}`.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;

use super::credentials::Credentials;
use super::directory::profile_json;
use super::dispatch::{Arrival, Planned};
use super::ledger::{AuthenticationEntry, LookupEntry};
use super::mas_error::{MasError, json_response};
use super::routes::{decode_segment, raw_target};
use super::state::State;

/// Exchanges API key credentials (HTTP Basic) for a JWT: `200 {"token": "<JWT>"}`.
pub fn authenticate(state: &State, request: &Request<Incoming>, arrival: Arrival) -> Planned {
    let headers = request.headers();
    let api_key_id = Credentials::basic_user_name(headers).unwrap_or_default();
    let result = state.credentials.exchange_api_key(headers);

    let (status, lifetime_secs) = match &result {
        Ok(issued) => (StatusCode::OK, Some(issued.lifetime_secs)),
        Err(error) => (error.status, None),
    };
    state.ledger.record_authentication(AuthenticationEntry {
        at_ms: arrival.at_ms,
        api_key_id: api_key_id.clone(),
        status: status.as_u16(),
        lifetime_secs,
    });
    tracing::debug!(api_key_id, status = status.as_u16(), "authenticate call");

    match result {
        Ok(issued) => Planned::respond(json_response(
            StatusCode::OK,
            &json!({ "token": issued.jwt }),
        )),
        Err(error) => Planned::respond(error.into_response()),
    }
}

/// Returns a user's profile, or 404.
///
/// NOTE: this requires the `userAdmin` permission like the password call. MAS may let a
/// token with fewer permissions read users.
pub fn get_user(
    state: &State,
    request: &Request<Incoming>,
    raw_user_id: &str,
    arrival: Arrival,
) -> Planned {
    let raw_path = raw_target(request.uri());
    let user_id = decode_segment(raw_user_id).ok();

    let result = look_up(state, request, raw_user_id, user_id.as_deref());
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(error) => error.status,
    };
    state.ledger.record_lookup(LookupEntry {
        at_ms: arrival.at_ms,
        raw_path,
        user_id: user_id.unwrap_or_default(),
        status: status.as_u16(),
    });

    match result {
        Ok(profile) => Planned::respond(json_response(StatusCode::OK, &profile)),
        Err(error) => Planned::respond(error.into_response()),
    }
}

fn look_up(
    state: &State,
    request: &Request<Incoming>,
    raw_user_id: &str,
    user_id: Option<&str>,
) -> Result<serde_json::Value, MasError> {
    state.credentials.authorize_user_admin(request.headers())?;
    let user_id = user_id.ok_or_else(|| MasError::invalid_user_segment(raw_user_id))?;
    let user = state
        .directory
        .get(user_id)
        .ok_or_else(|| MasError::user_not_found(user_id))?;
    Ok(profile_json(&user))
}
