//! Request entry point: routes a request, applies the concurrency limit and latency, and
//! turns a planned reset into a dropped connection.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use thiserror::Error;

use super::admin;
use super::endpoints;
use super::mas_error::MasError;
use super::password;
use super::routes::{Route, route};
use super::state::State;

/// Returned to hyper to close the connection without a response; hyper then drops the
/// connection, which the connection wrapper turns into a TCP reset.
#[derive(Debug, Error)]
#[error("connection closed without a response by an injected fault")]
pub struct InjectedReset;

/// What a handler decided.
pub enum Reply {
    Respond(Response<Full<Bytes>>),
    Reset,
}

/// A handler's decision and any extra delay before carrying it out.
pub struct Planned {
    pub reply: Reply,
    pub extra_delay_ms: u64,
}

impl Planned {
    pub fn respond(response: Response<Full<Bytes>>) -> Self {
        Self {
            reply: Reply::Respond(response),
            extra_delay_ms: 0,
        }
    }

    pub fn reset() -> Self {
        Self {
            reply: Reply::Reset,
            extra_delay_ms: 0,
        }
    }
}

/// Facts about a MAS request known when it arrives.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// Arrival time in ms since start.
    pub at_ms: u64,
    /// Latency planned for the response, in ms.
    pub latency_ms: u64,
    /// Whether the request is over the concurrency limit.
    pub over_limit: bool,
}

/// Serves one request. Admin endpoints respond at once, MAS endpoints after the configured
/// latency.
pub async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, InjectedReset> {
    let at_ms = state.now_ms();
    let path = request.uri().path().to_owned();
    let route = route(request.method(), &path);

    if let Route::Admin(admin_route) = route {
        return Ok(admin::handle(&state, admin_route, request).await);
    }

    let slot = state.enter_request();
    let arrival = Arrival {
        at_ms,
        latency_ms: state.sample_latency_ms(),
        over_limit: slot.over_limit,
    };

    let planned = match route {
        Route::SetPassword { raw_user_id } => {
            password::set_password(&state, request, raw_user_id, arrival).await
        }
        _ if arrival.over_limit => Planned::respond(
            MasError::too_many_requests(state.config.concurrency_retry_after.clone())
                .into_response(),
        ),
        Route::Authenticate => endpoints::authenticate(&state, &request, arrival),
        Route::GetUser { raw_user_id } => {
            endpoints::get_user(&state, &request, raw_user_id, arrival)
        }
        Route::Unknown | Route::Admin(_) => {
            Planned::respond(MasError::unknown_path(&path).into_response())
        }
    };

    let delay_ms = arrival.latency_ms + planned.extra_delay_ms;
    if delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    drop(slot);

    match planned.reply {
        Reply::Respond(response) => Ok(response),
        Reply::Reset => Err(InjectedReset),
    }
}
