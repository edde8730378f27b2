//! Kubernetes types of the operator's API, group `masreset.dev`, one file per
//! resource. These files hold types and serde attributes only; every decision
//! that reads them lives in the controller or the domain modules.

pub mod bulk_password_reset;

pub use bulk_password_reset::*;

/// API group of every resource this operator defines.
pub const GROUP: &str = "masreset.dev";

/// Field manager used for every server-side apply the operator sends.
pub const FIELD_MANAGER: &str = "mas-reset-operator";
