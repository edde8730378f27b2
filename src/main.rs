use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mas_reset_operator::cli::main(mas_reset_operator::cli::Cli::parse()).await
}
