//! The integration-test harness: a `TestApp` serves the real API on port 0 against its
//! own database (cloned from a migrated template) and its own Redis key prefix, so tests
//! run in parallel and never wipe shared state. Workers run as real processes.

pub mod stripe;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use catalytic_api::config::Config;
use serde_json::{Value, json};

/// A variable the test script exports; tests cannot run without it.
pub fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the suite through ./scripts/test, which provisions services")
    })
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn unique(tag: &str) -> String {
    format!("{tag}{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A fresh migrated database; dropped by [`TestDb::drop_now`].
pub struct TestDb {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl TestDb {
    pub async fn create() -> Self {
        let admin_url = env("TEST_PG_ADMIN_URL");
        let template = catalytic_db::provision::template_name();
        catalytic_db::provision::ensure_template(&admin_url, &template)
            .await
            .expect("template database");
        let name = unique("catalytic_test_");
        catalytic_db::provision::create(&admin_url, &name, Some(&template))
            .await
            .expect("test database");
        let url = catalytic_db::provision::url_for(&admin_url, &name);
        Self {
            name,
            url,
            admin_url,
        }
    }

    /// An empty database (no migrations), for migration tests.
    pub async fn create_empty() -> Self {
        let admin_url = env("TEST_PG_ADMIN_URL");
        let name = unique("catalytic_test_");
        catalytic_db::provision::create(&admin_url, &name, None)
            .await
            .expect("test database");
        let url = catalytic_db::provision::url_for(&admin_url, &name);
        Self {
            name,
            url,
            admin_url,
        }
    }

    pub async fn drop_now(&self) {
        let _ = catalytic_db::provision::drop(&self.admin_url, &self.name).await;
    }

    pub fn pool(&self) -> catalytic_db::Pool {
        catalytic_db::Pool::new(&self.url, 4).expect("pool")
    }
}

/// The environment the API reads, for a test app.
pub fn base_env(db_url: &str, redis_url: &str, prefix: &str) -> HashMap<&'static str, String> {
    HashMap::from([
        ("DATABASE_URL", db_url.to_owned()),
        ("DATABASE_POOL_SIZE", "8".to_owned()),
        ("REDIS_URL", redis_url.to_owned()),
        ("REDIS_KEY_PREFIX", prefix.to_owned()),
        ("JWT_PRIVATE_KEY_PATH", env("JWT_PRIVATE_KEY_PATH")),
        ("JWT_PUBLIC_KEY_PATH", env("JWT_PUBLIC_KEY_PATH")),
        ("APP_ENV", "test".to_owned()),
        ("LOG_LEVEL", "warn".to_owned()),
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", "0".to_owned()),
        ("AUTH_RATE_LIMIT_PER_MINUTE", "10000".to_owned()),
        ("FRONTEND_URL", "http://app.test".to_owned()),
        (
            "EMAIL_FROM",
            "Catalytic <no-reply@catalytic.test>".to_owned(),
        ),
        ("SHUTDOWN_TIMEOUT_SECS", "5".to_owned()),
        ("TENANT_CACHE_TTL_MS", "0".to_owned()),
    ])
}

/// A running API with its own database and Redis namespace.
pub struct TestApp {
    pub base: String,
    pub db: TestDb,
    pub prefix: String,
    pub redis_url: String,
    pub client: reqwest::Client,
    pub env: HashMap<&'static str, String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// A registered tenant owner and their tokens.
#[derive(Debug, Clone)]
pub struct Owner {
    pub tenant_id: String,
    pub user_id: String,
    pub slug: String,
    pub email: String,
    pub password: String,
    pub access: String,
    pub refresh: String,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns with the environment adjusted by `f` (e.g. a closed Redis port).
    pub async fn spawn_with(f: impl FnOnce(&mut HashMap<&'static str, String>)) -> Self {
        let db = TestDb::create().await;
        let prefix = format!("{}:", unique("t"));
        let mut vars = base_env(&db.url, &redis_url(), &prefix);
        f(&mut vars);
        let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("test config");
        let redis_url = config.redis_url.expose().to_owned();
        let running = catalytic_api::server::start(config).await.expect("server");
        Self {
            base: format!("http://{}", running.addr),
            db,
            prefix,
            redis_url,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(90))
                .build()
                .expect("client"),
            env: vars,
            shutdown: Some(running.shutdown),
            handle: Some(running.handle),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn pool(&self) -> catalytic_db::Pool {
        self.db.pool()
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_anon(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// Registers a tenant whose owner has `email`.
    pub async fn register(&self, company: &str, email: &str) -> Owner {
        let password = "Sup3r-secret".to_owned();
        let resp = self
            .post_anon(
                "/api/auth/register",
                json!({
                    "company_name": company,
                    "email": email,
                    "password": password,
                    "first_name": "Ada",
                    "last_name": "Lovelace",
                }),
            )
            .await;
        assert_eq!(
            resp.status(),
            201,
            "register: {}",
            resp.text().await.unwrap_or_default()
        );
        let b: Value = resp.json().await.expect("json");
        Owner {
            tenant_id: b["tenant_id"].as_str().expect("tenant_id").to_owned(),
            user_id: b["user_id"].as_str().expect("user_id").to_owned(),
            slug: b["tenant_slug"].as_str().expect("slug").to_owned(),
            email: email.to_owned(),
            password,
            access: b["access_token"].as_str().expect("access").to_owned(),
            refresh: b["refresh_token"].as_str().expect("refresh").to_owned(),
        }
    }

    /// A tenant with a random owner email.
    pub async fn tenant(&self) -> Owner {
        let email = format!("{}@example.com", unique("owner"));
        self.register("Test Org", &email).await
    }

    /// Logs in; returns (access, refresh).
    pub async fn login(&self, email: &str, password: &str) -> (String, String) {
        let resp = self
            .post_anon(
                "/api/auth/login",
                json!({ "email": email, "password": password }),
            )
            .await;
        assert_eq!(
            resp.status(),
            200,
            "login: {}",
            resp.text().await.unwrap_or_default()
        );
        let b: Value = resp.json().await.expect("json");
        (
            b["access_token"].as_str().expect("access").to_owned(),
            b["refresh_token"].as_str().expect("refresh").to_owned(),
        )
    }

    /// Moves a tenant to a plan (as the operator CLI does).
    pub async fn set_plan(&self, tenant: &str, code: &str) {
        let pool = self.pool();
        let mut conn = pool.get().await.unwrap();
        let plan = catalytic_db::plans::by_code(&mut conn, code).await.unwrap();
        catalytic_db::plans::set_plan(&mut conn, tenant.parse().unwrap(), plan.id)
            .await
            .unwrap();
    }

    /// Creates a user of `owner`'s tenant with `role`; returns (user id, access token).
    pub async fn user_with_role(&self, owner: &Owner, role: &str) -> (String, String) {
        let email = format!("{}@example.com", unique(role));
        let resp = self
            .post(
                "/api/users",
                &owner.access,
                json!({"email": email, "first_name": "U", "last_name": role, "role": role,
                       "password": "Us3r-password"}),
            )
            .await;
        assert_eq!(
            resp.status(),
            201,
            "create {role}: {}",
            resp.text().await.unwrap_or_default()
        );
        let b: Value = resp.json().await.unwrap();
        let (access, _) = self.login(&email, "Us3r-password").await;
        (b["id"].as_str().unwrap().to_owned(), access)
    }

    /// A handler context like a worker's, for running job code in the test process.
    pub fn handler_context(&self) -> catalytic_jobs::HandlerContext {
        catalytic_jobs::HandlerContext::connect(&catalytic_jobs::WorkerConfig {
            database_url: self.db.url.clone(),
            database_pool_size: 4,
            redis_url: self.redis_url.clone(),
            redis_key_prefix: self.prefix.clone(),
            ..Default::default()
        })
        .expect("handler context")
    }

    /// Sets platform-administrator overrides of a tenant's limits.
    pub async fn set_overrides(&self, tenant: &str, overrides: Value) {
        catalytic_db::provision::execute_raw(
            &self.db.url,
            &format!(
                "UPDATE tenants SET limit_overrides = '{}'::jsonb WHERE id = '{tenant}'",
                overrides.to_string().replace('\'', "''")
            ),
        )
        .await
        .expect("overrides");
    }

    /// The worker environment matching this app.
    pub fn worker_env(&self) -> Vec<(String, String)> {
        vec![
            ("DATABASE_URL".into(), self.db.url.clone()),
            ("REDIS_URL".into(), self.redis_url.clone()),
            ("REDIS_KEY_PREFIX".into(), self.prefix.clone()),
            ("LOG_LEVEL".into(), "info".into()),
        ]
    }

    /// Starts a real worker process serving `queues`.
    pub fn spawn_worker(&self, queues: &str) -> Worker {
        Worker::spawn(&self.worker_env(), queues, &[])
    }

    /// Stops the server and drops the database and every Redis key of the test.
    pub async fn cleanup(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
        }
        self.db.drop_now().await;
        delete_prefix(&self.redis_url, &self.prefix).await;
    }
}

/// Deletes every key under `prefix` (and hash-tagged `{prefix...}` keys).
pub async fn delete_prefix(redis_url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(redis_url) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    for pattern in [format!("{prefix}*"), format!("{{{prefix}*")] {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        for chunk in keys.chunks(500) {
            let _: Result<i64, _> = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await;
        }
    }
}

/// A worker process, killed when dropped.
pub struct Worker {
    pub child: tokio::process::Child,
}

impl Worker {
    pub fn spawn(env: &[(String, String)], queues: &str, extra: &[&str]) -> Self {
        let bin = env_or_default(
            "CATALYTIC_WORKER_BIN",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/debug/catalytic-worker"
            ),
        );
        let mut cmd = tokio::process::Command::new(bin);
        cmd.arg("run")
            .arg("--queues")
            .arg(queues)
            .arg("--concurrency")
            .arg("2")
            .arg("--metrics-addr")
            .arg("127.0.0.1:0")
            .args(extra)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        Self {
            child: cmd
                .spawn()
                .expect("spawn catalytic-worker (built by scripts/test)"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// SIGKILL: no chance to hand anything back.
    pub async fn kill_hard(mut self) {
        let _ = self.child.kill().await;
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.pid();
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        tokio::time::timeout(Duration::from_secs(40), self.child.wait())
            .await
            .expect("worker exits after SIGTERM")
            .expect("wait")
    }
}

/// The `catalytic-api` binary scripts/test built.
pub fn api_bin() -> String {
    env_or_default(
        "CATALYTIC_API_BIN",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug/catalytic-api"),
    )
}

/// A fresh empty directory under the system temp dir.
pub fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("catalytic-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn env_or_default(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
