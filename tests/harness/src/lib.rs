//! A local Kubernetes control plane for tests and demos: a real etcd and a
//! real kube-apiserver on 127.0.0.1, with an admin kubeconfig.
//!
//! The binaries come from `tests/control-plane/build.sh`, which builds etcd
//! v3.6 and kube-apiserver and kubectl v1.34 from their Go modules. No kubelet,
//! scheduler or controller-manager runs, so Pods never start and no
//! controller acts on objects: only the API and its validation are real.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! let plane = mas_reset_harness::shared().await;
//! let client = plane.client().await?;
//! # let _ = client;
//! # Ok(())
//! # }
//! ```

mod apiserver;
mod binaries;
mod control_plane;
mod crds;
mod etcd;
mod kubeconfig;
mod logs;
pub mod metrics;
mod pki;
mod process;
mod shared;
mod startup;
mod workdir;

pub use binaries::BIN_DIR_ENV;
pub use control_plane::ControlPlane;
pub use pki::{ADMIN_GROUP, ADMIN_USER};
pub use process::{ChildGuard, free_port, process_is_running};
pub use shared::shared;
