//! The operator's command line: serve, migrate, print the spec, manage tenants and
//! platform administrators (no HTTP surface for these).

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "catalytic-api", version, about = "Catalytic HTTP API")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API on HOST:PORT (the default command).
    Serve,
    /// Apply pending database migrations.
    Migrate {
        /// Only report applied and pending migrations.
        #[arg(long)]
        status: bool,
        /// Revert every migration (destroys all data).
        #[arg(long, conflicts_with = "status")]
        revert_all: bool,
    },
    /// Print the OpenAPI spec.
    Openapi {
        #[arg(long, value_enum, default_value_t = SpecFormat::Json)]
        format: SpecFormat,
    },
    /// Print the role table (Markdown).
    Roles,
    /// Manage tenants.
    Tenants {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage users.
    Users {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Create or update the Stripe products and prices of the paid plans (by lookup key)
    /// and store their ids; running it again changes nothing.
    StripeSync,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SpecFormat {
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// List tenants with their plan and status.
    List,
    /// Move a tenant to a plan at once (contracts outside Stripe).
    SetPlan {
        /// Tenant id or slug.
        tenant: String,
        /// free, starter, professional or enterprise.
        plan_code: String,
    },
    /// Suspend a tenant: writes are refused with 402, reads still work.
    Suspend { tenant: String },
    /// Lift a suspension.
    Resume { tenant: String },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Grant or withdraw platform administration.
    SetPlatformAdmin {
        email: String,
        #[arg(action = clap::ArgAction::Set)]
        admin: bool,
    },
}
