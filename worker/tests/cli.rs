//! The `catalytic-worker` binary as operators run it, against a real Redis
//! (`REDIS_URL`, default redis://127.0.0.1:6379). PostgreSQL is not needed: the pool
//! connects lazily and these tests run no job that touches it.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_catalytic-worker");

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("clitest-{}-{nanos}:", std::process::id())
}

/// A command with a clean, explicit environment (no `.env` from the working directory).
fn worker(prefix: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(std::env::temp_dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REDIS_URL", redis_url())
        .env("REDIS_KEY_PREFIX", prefix)
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/nothing")
        .env("LOG_LEVEL", "info");
    cmd
}

/// A running worker whose JSON log lines are collected.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn catalytic-worker");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("the worker never logged {needle:?}"),
            }
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    fn wait(mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the worker did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn metrics_addr(line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).expect("JSON log line");
    v["metrics_addr"].as_str().expect("metrics_addr").to_owned()
}

fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("write");
    let mut body = String::new();
    stream.read_to_string(&mut body).expect("read");
    body
}

fn redis() -> redis::Connection {
    redis::Client::open(redis_url())
        .expect("REDIS_URL")
        .get_connection()
        .expect("Redis is reachable at REDIS_URL")
}

fn cleanup(prefix: &str) {
    let mut conn = redis();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{prefix}*"))
        .query(&mut conn)
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
    }
}

#[test]
fn a_missing_redis_url_stops_start_up_with_one_line_naming_it() {
    let out = worker(&prefix())
        .env_remove("REDIS_URL")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("REDIS_URL"), "{stderr}");
}

#[test]
fn an_invalid_setting_is_named_in_the_error() {
    let out = worker(&prefix())
        .env("WORKER_CONCURRENCY", "lots")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WORKER_CONCURRENCY=\"lots\""), "{stderr}");

    let out = worker(&prefix())
        .args(["--queues", "lattice,mail"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--queues"));
}

#[test]
fn the_worker_serves_metrics_and_exits_zero_on_sigterm() {
    let p = prefix();
    let mut cmd = worker(&p);
    cmd.args(["run", "--queues", "email,webhooks", "--concurrency", "2"])
        .args(["--metrics-addr", "127.0.0.1:0", "--shutdown-timeout", "5s"]);
    let running = Running::start(cmd);
    let addr = metrics_addr(&running.wait_for_log("metrics_addr"));
    running.wait_for_log("Worker webhooks@");
    let body = http_get(&addr, "/metrics");
    assert!(
        body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"),
        "{body}"
    );
    assert!(
        body.contains("catalytic_queue_depth{queue=\"email\"} 0"),
        "{body}"
    );
    assert!(
        body.contains("catalytic_queue_dead{queue=\"webhooks\"} 0"),
        "{body}"
    );

    let asked = Instant::now();
    running.signal("TERM");
    let status = running.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "took {:?}",
        asked.elapsed()
    );
    cleanup(&p);
}

#[test]
fn a_worker_restarted_at_once_after_sigkill_starts_normally() {
    let p = prefix();
    let start = || {
        let mut cmd = worker(&p);
        cmd.args(["--queues", "email", "--metrics-addr", "127.0.0.1:0"]);
        Running::start(cmd)
    };
    let first = start();
    first.wait_for_log("Worker email@");
    first.signal("KILL");
    first.wait(Duration::from_secs(5));

    let second = start();
    second.wait_for_log("Worker email@");
    std::thread::sleep(Duration::from_millis(300));
    second.signal("INT");
    assert_eq!(second.wait(Duration::from_secs(10)).code(), Some(0));
    cleanup(&p);
}

#[test]
fn dead_list_shows_dead_entries_and_dead_retry_re_drives_them() {
    let p = prefix();
    let mut conn = redis();
    let dead_key = format!("{{{p}email}}:dead");
    let id: String = redis::cmd("XADD")
        .arg(&dead_key)
        .arg("*")
        .arg("i")
        .arg("job-1")
        .arg("a")
        .arg("6")
        .arg("p")
        .arg(r#"{"job_id":null,"kind":"email.send","payload":{"email_id":"x"}}"#)
        .arg("e")
        .arg("smtp: connection refused")
        .arg("o")
        .arg("1-0")
        .query(&mut conn)
        .expect("seed a dead entry");

    let out = worker(&p)
        .args(["dead", "list", "--queue", "email", "--json"])
        .output()
        .expect("dead list");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value =
        serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().unwrap_or_default())
            .expect("one JSON line");
    assert_eq!(listed["id"], id.as_str());
    assert_eq!(listed["attempts"], 6);
    assert_eq!(listed["error"], "smtp: connection refused");
    assert_eq!(listed["payload"]["kind"], "email.send");

    let out = worker(&p)
        .args(["dead", "retry", &id])
        .output()
        .expect("dead retry");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dead: usize = redis::cmd("XLEN")
        .arg(&dead_key)
        .query(&mut conn)
        .expect("XLEN");
    assert_eq!(dead, 0);
    let back: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("{{{p}email}}:stream"))
        .arg("-")
        .arg("+")
        .query(&mut conn)
        .expect("XRANGE");
    assert_eq!(back.ids.len(), 1);
    assert_eq!(back.ids[0].get::<String>("a").as_deref(), Some("0"));

    let out = worker(&p)
        .args(["dead", "retry", "--all"])
        .output()
        .expect("dead retry --all");
    assert!(out.status.success());
    let out = worker(&p)
        .args(["dead", "retry", "123-0"])
        .output()
        .expect("dead retry of nothing");
    assert!(!out.status.success(), "an unknown id is an error");
    cleanup(&p);
}
