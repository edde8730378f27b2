//! `mas-reset-operator results NAME`: the per-user results of a run, for
//! help desks and audits.

use std::io::Write;

use clap::{Args, ValueEnum};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, ResourceExt};

use crate::api::BulkPasswordReset;
use crate::controller::results::{self, ResultRecord};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// CSV with a header row, for spreadsheets.
    Csv,
    /// One JSON array.
    Json,
}

/// Options of `results`.
#[derive(Debug, Args)]
pub struct ResultsArgs {
    /// Name of the BulkPasswordReset.
    pub name: String,

    /// Namespace of the BulkPasswordReset; the kubeconfig's namespace when unset.
    #[arg(short, long)]
    pub namespace: Option<String>,

    /// Output format. In CSV, a cell that starts with `=`, `+`, `-` or `@` is
    /// prefixed with `'` so that a spreadsheet shows it as text.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Format,
}

/// Prints the results of one run to stdout.
pub async fn print(args: ResultsArgs) -> anyhow::Result<()> {
    crate::install_crypto_provider();
    let client = kube::Client::try_default().await?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let resources: Api<BulkPasswordReset> = Api::namespaced(client.clone(), &namespace);
    let resource = resources.get_opt(&args.name).await?.ok_or_else(|| {
        anyhow::anyhow!("BulkPasswordReset {namespace}/{} was not found", args.name)
    })?;

    let config_maps: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let records = results::read_all(
        &config_maps,
        &args.name,
        &resource.uid().unwrap_or_default(),
    )
    .await?;

    let mut out = std::io::stdout().lock();
    match args.output {
        Format::Table => write_table(&mut out, &resource, &records)?,
        Format::Csv => write_csv(&mut out, &records)?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &records)?;
            writeln!(out)?;
        }
    }
    Ok(())
}

fn write_table(
    out: &mut impl Write,
    resource: &BulkPasswordReset,
    records: &[ResultRecord],
) -> anyhow::Result<()> {
    let status = resource.status.clone().unwrap_or_default();
    let phase = status
        .phase
        .map(|phase| format!("{phase:?}"))
        .unwrap_or_else(|| "Pending".to_owned());
    writeln!(
        out,
        "BulkPasswordReset {}/{}: {phase}",
        resource.namespace().unwrap_or_default(),
        resource.name_any()
    )?;
    if let Some(counts) = &status.counts {
        writeln!(
            out,
            "users: {} total, {} succeeded, {} failed, {} unknown, {} not sent; rows: {} blank, {} rejected, {} duplicate",
            counts.total,
            counts.succeeded,
            counts.failed,
            counts.unknown,
            counts.not_sent,
            counts.skipped,
            counts.rejected,
            counts.duplicates
        )?;
    }
    writeln!(out)?;

    let width = records
        .iter()
        .map(|record| record.user_id.chars().count())
        .max()
        .unwrap_or(7)
        .clamp(7, 40);
    writeln!(
        out,
        "{:<6} {:<width$} {:<10} {:<5} {:<11} {:<8} MESSAGE",
        "ROW", "USER ID", "RESULT", "HTTP", "ERROR ID", "ATTEMPTS"
    )?;
    for record in records {
        let outcome = &record.outcome;
        writeln!(
            out,
            "{:<6} {:<width$} {:<10} {:<5} {:<11} {:<8} {}",
            record.row,
            record.user_id,
            format!("{:?}", outcome.result),
            outcome
                .http_status
                .map(|status| status.to_string())
                .unwrap_or_else(|| "-".to_owned()),
            outcome.error_id.as_deref().unwrap_or("-"),
            outcome.attempts,
            outcome.message.as_deref().unwrap_or(""),
        )?;
    }

    if !status.rejected_rows.is_empty() {
        writeln!(out, "\nRows not sent:")?;
        for row in &status.rejected_rows {
            writeln!(out, "  {} row {}: {}", row.source, row.row, row.reason)?;
        }
    }
    Ok(())
}

/// Prefixes a cell that a spreadsheet would run as a formula (`=`, `+`, `-`,
/// `@`, tab or CR first) with `'`, so that opening the export in Excel cannot
/// execute text that came from the user list or from MAS.
fn spreadsheet_safe(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    }
}

fn write_csv(out: &mut impl Write, records: &[ResultRecord]) -> anyhow::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record([
        "source",
        "row",
        "userid",
        "result",
        "httpStatus",
        "errorId",
        "attempts",
        "message",
    ])?;
    for record in records {
        let outcome = &record.outcome;
        writer.write_record([
            record.source.clone(),
            record.row.to_string(),
            spreadsheet_safe(&record.user_id),
            format!("{:?}", outcome.result),
            outcome
                .http_status
                .map(|status| status.to_string())
                .unwrap_or_default(),
            outcome.error_id.clone().unwrap_or_default(),
            outcome.attempts.to_string(),
            spreadsheet_safe(outcome.message.as_deref().unwrap_or_default()),
        ])?;
    }
    writer.flush()?;
    Ok(())
}
