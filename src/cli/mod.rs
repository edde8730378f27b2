//! Command line of the `mas-reset-operator` binary.

mod operator;
mod results;

use clap::{Parser, Subcommand};

pub use operator::RunArgs;
pub use results::ResultsArgs;

/// Resets IBM Maximo Application Suite passwords in bulk from
/// BulkPasswordReset resources.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator (controller, metrics and health endpoints).
    Run(RunArgs),
    /// Print the CustomResourceDefinition as YAML.
    Crd,
    /// Print the per-user results of a run as a table, CSV or JSON.
    Results(ResultsArgs),
}

/// Runs the parsed command line.
pub async fn main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => operator::run(args).await,
        Command::Crd => {
            print!("{}", crd_yaml()?);
            Ok(())
        }
        Command::Results(args) => results::print(args).await,
    }
}

/// Returns the CRD as YAML, as committed in `crds/`.
pub fn crd_yaml() -> anyhow::Result<String> {
    use kube::CustomResourceExt;
    Ok(serde_yaml::to_string(&crate::api::BulkPasswordReset::crd())?)
}
