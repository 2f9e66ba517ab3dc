//! `catalytic-worker dead list|retry`.

use catalytic_jobs::{QueueName, queue::QueueClient};

use crate::{cli::DeadCommand, config::Common};

fn queues(filter: Option<&String>) -> anyhow::Result<Vec<QueueName>> {
    match filter {
        None => Ok(QueueName::ALL.to_vec()),
        Some(q) => Ok(vec![
            q.parse::<QueueName>()
                .map_err(|e| anyhow::anyhow!("--queue: {e}"))?,
        ]),
    }
}

pub async fn run(common: Common, command: DeadCommand) -> anyhow::Result<()> {
    let client = QueueClient::connect(&common.redis_url, &common.queue_prefix).await?;
    match command {
        DeadCommand::List { queue, limit, json } => {
            for q in queues(queue.as_ref())? {
                for entry in client.dead_list(q.as_str(), limit).await? {
                    let payload: serde_json::Value = serde_json::from_slice(&entry.payload)
                        .unwrap_or_else(|_| {
                            serde_json::Value::String(
                                String::from_utf8_lossy(&entry.payload).into_owned(),
                            )
                        });
                    if json {
                        let line = serde_json::json!({
                            "queue": q.as_str(),
                            "id": entry.id,
                            "job_id": entry.job_id,
                            "attempts": entry.attempts,
                            "failed_at": entry.failed_at.to_rfc3339(),
                            "error": entry.error,
                            "payload": payload,
                        });
                        println!("{line}");
                    } else {
                        println!(
                            "{:<9} {}  attempts={}  failed_at={}  job={}\n          error: {}\n          payload: {}",
                            q.as_str(),
                            entry.id,
                            entry.attempts,
                            entry.failed_at.to_rfc3339(),
                            entry.job_id,
                            entry.error,
                            payload,
                        );
                    }
                }
            }
        }
        DeadCommand::Retry { id, all, queue } => {
            let queues = queues(queue.as_ref())?;
            // Jobs with a PostgreSQL row go back to `queued` there first, or the worker
            // would take the re-driven entry for a duplicate of a finished job.
            let db = std::env::var("DATABASE_URL")
                .ok()
                .map(|url| catalytic_db::Pool::new(&url, 1))
                .transpose()?;
            for q in &queues {
                for entry in client.dead_list(q.as_str(), 100_000).await? {
                    if !all && id.as_deref() != Some(entry.id.as_str()) {
                        continue;
                    }
                    let Ok(env) = entry.decode::<catalytic_jobs::Envelope>() else {
                        continue;
                    };
                    if env.kind == catalytic_jobs::enqueue::EMAIL_SEND {
                        // A failed email goes back to `pending` with fresh attempts.
                        let Some(pool) = &db else {
                            anyhow::bail!(
                                "DATABASE_URL is not set: it is needed to re-drive emails"
                            );
                        };
                        if let Some(email) = env.payload["email_id"]
                            .as_str()
                            .and_then(|s| s.parse::<catalytic_db::ids::EmailId>().ok())
                        {
                            let mut conn = pool.get().await?;
                            catalytic_db::outbox::requeue_failed(&mut conn, email).await?;
                        }
                        continue;
                    }
                    let Some(job) = env.job_id else { continue };
                    let Some(pool) = &db else {
                        anyhow::bail!(
                            "DATABASE_URL is not set: it is needed to re-drive jobs that have a PostgreSQL row"
                        );
                    };
                    let mut conn = pool.get().await?;
                    catalytic_db::jobs::requeue_failed(&mut conn, job.into()).await?;
                }
            }
            if all {
                for q in queues {
                    let n = client.dead_retry_all(q.as_str()).await?;
                    println!("{}: re-drove {n}", q.as_str());
                }
            } else if let Some(id) = id {
                let mut found = false;
                for q in queues {
                    if client.dead_retry(q.as_str(), &id).await? {
                        println!("{}: re-drove {id}", q.as_str());
                        found = true;
                        break;
                    }
                }
                if !found {
                    anyhow::bail!("no dead entry {id}");
                }
            }
        }
    }
    Ok(())
}
