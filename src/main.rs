//! Command line of the operator.

use clap::{Parser, Subcommand};
use kube::CustomResourceExt;
use mas_reset_operator::api::BulkPasswordReset;

#[derive(Parser)]
#[command(
    version,
    about = "Resets IBM Maximo Application Suite user passwords in bulk"
)]
struct Cli {
    #[command(subcommand)]
    command: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Print the BulkPasswordReset CustomResourceDefinition as YAML, for
    /// `kubectl apply -f -` or `cargo run -- crd > crds/bulkpasswordreset.yaml`.
    Crd,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Action::Crd => print!("{}", serde_yaml::to_string(&BulkPasswordReset::crd())?),
    }
    Ok(())
}
