//! Control endpoints under `/_sim/` for scripts that run the simulator as a process.
//!
//! | endpoint | effect |
//! |---|---|
//! | `GET /_sim/ledger` | password calls in arrival order, as a JSON array of ledger entries |
//! | `GET /_sim/ledger?user=ID` | the same for one decoded user ID (percent-encode `+` as `%2B`) |
//! | `GET /_sim/lookups` | `GET /v3/users/{userid}` calls |
//! | `GET /_sim/applied` | applied password changes per user ID, as a JSON object |
//! | `POST /_sim/faults` | replaces the fault plan with the JSON body |
//! | `POST /_sim/users` | replaces the users with the JSON array in the body |
//! | `POST /_sim/revoke-tokens` | makes every issued JWT and static token fail with 401 |
//!
//! They need no token, so the simulator must listen on loopback only. They have no latency,
//! no concurrency limit and no faults. Errors have the body `{"error": "<reason>"}`.

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::config::{SimUser, validate_users};
use super::faults::FaultPlan;
use super::mas_error::json_response;
use super::routes::{AdminRoute, query_parameter};
use super::state::State;

/// Largest accepted body, enough for a user list of a few hundred thousand entries.
const MAX_ADMIN_BODY_BYTES: usize = 64 * 1024 * 1024;

pub async fn handle(
    state: &State,
    route: AdminRoute,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    match route {
        AdminRoute::Ledger => {
            let mut entries = state.ledger.password_calls();
            if let Some(user_id) = query_parameter(request.uri().query(), "user") {
                entries.retain(|entry| entry.user_id == user_id);
            }
            json_response(StatusCode::OK, &json!(entries))
        }
        AdminRoute::Lookups => json_response(StatusCode::OK, &json!(state.ledger.lookups())),
        AdminRoute::AppliedCounts => {
            json_response(StatusCode::OK, &json!(state.ledger.applied_counts()))
        }
        AdminRoute::Faults => match read_json::<FaultPlan>(request).await {
            Ok(plan) => match plan.validate() {
                Ok(()) => {
                    state.set_faults(plan);
                    tracing::info!("fault plan replaced");
                    no_content()
                }
                Err(error) => bad_request(&error.to_string()),
            },
            Err(reason) => bad_request(&reason),
        },
        AdminRoute::Users => match read_json::<Vec<SimUser>>(request).await {
            Ok(users) => match validate_users(&users) {
                Ok(()) => {
                    tracing::info!(users = users.len(), "users replaced");
                    state.directory.replace(users);
                    no_content()
                }
                Err(error) => bad_request(&error.to_string()),
            },
            Err(reason) => bad_request(&reason),
        },
        AdminRoute::RevokeTokens => {
            state.credentials.revoke_all();
            tracing::info!("all tokens revoked");
            no_content()
        }
    }
}

async fn read_json<T: DeserializeOwned>(request: Request<Incoming>) -> Result<T, String> {
    let bytes = Limited::new(request.into_body(), MAX_ADMIN_BODY_BYTES)
        .collect()
        .await
        .map_err(|error| format!("cannot read the request body: {error}"))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|error| format!("invalid JSON body: {error}"))
}

fn no_content() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

fn bad_request(reason: &str) -> Response<Full<Bytes>> {
    json_response(StatusCode::BAD_REQUEST, &json!({ "error": reason }))
}
