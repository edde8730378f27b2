//! Client of the IBM Maximo Application Suite admin API.
//!
//! - [`client`]: [`MasClient`] sends one request and returns an [`Attempt`]:
//!   MAS responded, the request never left, or its outcome is unknown.
//! - [`auth`]: [`TokenProvider`] supplies access tokens, fixed or obtained
//!   from an API key and renewed.
//! - [`retry`]: [`decide`] turns an attempt into the next step.
//!
//! Response bodies and credentials never leave this module except as cleaned
//! [`MasError`] text and as [`SecretString`](crate::secret::SecretString).

pub mod attempt;
pub mod auth;
pub mod client;
pub mod error;
mod jwt;
pub mod path;
pub mod retry;
mod tls;
mod transport;

pub use attempt::{Attempt, IndeterminateKind, NotSentKind, PasswordBody};
pub use auth::{AuthError, Credentials, IssuedToken, RenewOutcome, TokenProvider};
pub use client::{ClientConfig, MasClient};
pub use error::{ClientError, MasError, clean_message};
pub use path::PathError;
pub use retry::{Decision, RetryPolicy, decide, parse_retry_after};
