//! `catalytic-worker`: runs Catalytic's job queues.
//!
//! ```text
//! catalytic-worker [run] --queues lattice,webhooks,email,usage --concurrency 4 \
//!                        --metrics-addr 127.0.0.1:9101 --shutdown-timeout 30s
//! catalytic-worker dead list [--queue email] [--limit 50] [--json]
//! catalytic-worker dead retry <entry-id> | --all  [--queue email]
//! ```
//!
//! Configuration comes from flags, then the environment (a `.env` file in the working
//! directory is read when present; the real environment wins). A missing or invalid value
//! stops start-up with one line naming it.

mod cli;
mod config;
mod dead;
mod handlers;
mod logging;
mod metrics;
mod run;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    if let Err(e) = config::load_dotenv() {
        eprintln!("catalytic-worker: {e}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Run(cli.run));
    let result = match command {
        Command::Run(args) => match config::RunSettings::resolve(&args) {
            Ok(settings) => {
                logging::init(&settings.common.log_level);
                run::run(settings).await
            }
            Err(e) => return config_error(&e),
        },
        Command::Dead(dead) => match config::Common::from_env() {
            Ok(common) => {
                logging::init(&common.log_level);
                dead::run(common, dead).await
            }
            Err(e) => return config_error(&e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "catalytic-worker failed");
            eprintln!("catalytic-worker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn config_error(e: &config::ConfigError) -> ExitCode {
    eprintln!("catalytic-worker: configuration error: {e}");
    ExitCode::from(2)
}
