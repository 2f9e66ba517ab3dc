//! The `catalytic-api` binary.

use std::process::ExitCode;

use catalytic_api::cli::{Cli, Command, SpecFormat, TenantCommand, UserCommand};
use catalytic_api::config::{Config, EnvReader};
use catalytic_api::{admin, app, server, telemetry};
use clap::Parser;

fn main() -> ExitCode {
    // `.env` from the working directory, when present; the real environment wins.
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("configuration error: cannot read .env: {e}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::from(2)
        }
    }
}

fn database_url() -> anyhow::Result<String> {
    Ok(EnvReader::new(|k| std::env::var(k).ok()).required("DATABASE_URL")?)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Migrate { status, revert_all } => {
            let url = database_url()?;
            if status {
                let s = catalytic_db::migrate::status(&url).await?;
                println!("applied: {}", s.applied.len());
                for p in &s.pending {
                    println!("pending: {p}");
                }
            } else if revert_all {
                for v in catalytic_db::migrate::revert_all(&url).await? {
                    println!("reverted {v}");
                }
            } else {
                let applied = catalytic_db::migrate::run_pending(&url).await?;
                if applied.is_empty() {
                    println!("migrations: up to date");
                }
                for v in applied {
                    println!("applied {v}");
                }
            }
            Ok(())
        }
        Command::Openapi { format } => {
            match format {
                SpecFormat::Json => println!("{}", app::spec_json()),
                SpecFormat::Yaml => print!("{}", app::spec_yaml()),
            }
            Ok(())
        }
        Command::Roles => {
            print!("{}", catalytic_api::auth::roles::markdown_table());
            Ok(())
        }
        Command::Tenants { command } => {
            let url = database_url()?;
            match command {
                TenantCommand::List => admin::tenants_list(&url).await,
                TenantCommand::SetPlan { tenant, plan_code } => {
                    admin::tenants_set_plan(&url, &tenant, &plan_code).await
                }
                TenantCommand::Suspend { tenant } => {
                    admin::tenants_suspend(&url, &tenant, true).await
                }
                TenantCommand::Resume { tenant } => {
                    admin::tenants_suspend(&url, &tenant, false).await
                }
            }
        }
        Command::StripeSync => admin::stripe_sync(&database_url()?).await,
        Command::Users { command } => {
            let url = database_url()?;
            match command {
                UserCommand::SetPlatformAdmin { email, admin } => {
                    admin::users_set_platform_admin(&url, &email, admin).await
                }
            }
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    telemetry::init(&config.log_level);
    server::check_migrations(&config).await?;
    let running = server::start(config).await?;
    tracing::info!(address = %running.addr, docs = %format!("http://{}/docs", running.addr), "catalytic-api listening");
    server::shutdown_signal().await;
    tracing::info!("shutting down: draining in-flight requests");
    let _ = running.shutdown.send(());
    running.handle.await??;
    tracing::info!("stopped");
    Ok(())
}
