//! Command line.

use clap::{Args, Parser, Subcommand};

/// Runs Catalytic's job queues.
#[derive(Debug, Parser)]
#[command(
    name = "catalytic-worker",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `run` (the default command).
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the chosen queues until SIGTERM/SIGINT (the default).
    Run(RunArgs),
    /// Inspect and re-drive dead-lettered jobs.
    #[command(subcommand)]
    Dead(DeadCommand),
}

/// Options of `run`; each falls back to an environment variable, then a default.
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// Queues to serve, comma separated [env: WORKER_QUEUES] [default: all]
    #[arg(long, value_name = "LIST")]
    pub queues: Option<String>,
    /// Jobs run at once per queue [env: WORKER_CONCURRENCY] [default: 4]
    #[arg(long, value_name = "N")]
    pub concurrency: Option<String>,
    /// Address of the Prometheus /metrics endpoint; port 0 picks a free one
    /// [env: WORKER_METRICS_ADDR] [default: 127.0.0.1:0]
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    /// How long in-flight jobs may take to finish on shutdown, e.g. `30s`
    /// [env: WORKER_SHUTDOWN_TIMEOUT] [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub shutdown_timeout: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DeadCommand {
    /// List dead-lettered jobs, newest first.
    List {
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// At most this many per queue.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Put dead-lettered jobs back on their queue with a fresh attempt count.
    Retry {
        /// The dead entry id (as listed).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every dead entry (of `--queue`, or of all queues).
        #[arg(long)]
        all: bool,
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
    },
}
