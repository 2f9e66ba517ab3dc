//! Lattices and their jobs against the real stack, the worker as a separate process.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use catalytic_db::ids::JobId;
use catalytic_tests::{Owner, TestApp, eventually};
use serde_json::{Value, json};

/// The README's obstacle rule, written again independently of the engine.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn blocked(seed: u64, density: f64, v: u64) -> bool {
    let threshold = (density * 18_446_744_073_709_551_616.0).floor();
    let threshold = if threshold >= 18_446_744_073_709_551_615.0 {
        u64::MAX
    } else {
        threshold as u64
    };
    splitmix64(seed ^ v) < threshold
}

fn index(c: &[u64], n: u64) -> u64 {
    c.iter().rev().fold(0, |acc, &x| acc * n + x)
}

/// A plain BFS over an explicit distance array: the reference.
fn reference_distance(
    d: u32,
    n: u64,
    density: f64,
    seed: u64,
    periodic: bool,
    s: &[u64],
    e: &[u64],
) -> Option<u64> {
    let total = n.pow(d) as usize;
    let (si, ei) = (index(s, n), index(e, n));
    let open = |v: u64| v == si || v == ei || !blocked(seed, density, v);
    let mut dist = vec![u64::MAX; total];
    dist[si as usize] = 0;
    let mut q = VecDeque::from([si]);
    while let Some(v) = q.pop_front() {
        if v == ei {
            return Some(dist[v as usize]);
        }
        let mut stride = 1;
        for _ in 0..d {
            let c = (v / stride) % n;
            let mut next = Vec::new();
            if c + 1 < n {
                next.push(v + stride)
            } else if periodic {
                next.push(v - c * stride)
            }
            if c > 0 {
                next.push(v - stride)
            } else if periodic {
                next.push(v + (n - 1) * stride)
            }
            for w in next {
                if open(w) && dist[w as usize] == u64::MAX {
                    dist[w as usize] = dist[v as usize] + 1;
                    q.push_back(w);
                }
            }
            stride *= n;
        }
    }
    None
}

async fn create_lattice(app: &TestApp, token: &str, body: Value) -> Value {
    let resp = app.post("/api/lattices", token, body).await;
    assert_eq!(
        resp.status(),
        201,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    resp.json().await.unwrap()
}

async fn submit(app: &TestApp, token: &str, lattice: &str, body: Value) -> String {
    let resp = app
        .post(&format!("/api/lattices/{lattice}/jobs"), token, body)
        .await;
    assert_eq!(
        resp.status(),
        202,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["status"], "queued");
    b["job_id"].as_str().unwrap().to_owned()
}

async fn wait_done(app: &TestApp, token: &str, job: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let b: Value = app
            .get(&format!("/api/jobs/{job}?wait=20"), token)
            .await
            .json()
            .await
            .unwrap();
        if ["succeeded", "failed", "cancelled"].contains(&b["status"].as_str().unwrap_or("")) {
            return b;
        }
        assert!(Instant::now() < deadline, "job {job} did not finish: {b}");
    }
}

async fn pro_tenant(app: &TestApp) -> Owner {
    let owner = app.tenant().await;
    app.set_plan(&owner.tenant_id, "enterprise").await;
    owner
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lattice_reports_its_implicit_and_explicit_memory() {
    let app = TestApp::spawn().await;
    let owner = pro_tenant(&app).await;
    let l = create_lattice(
        &app,
        &owner.access,
        json!({"name": "grid", "dimensions": 3, "size": 100}),
    )
    .await;
    assert_eq!(l["vertices"], 1_000_000);
    assert_eq!(l["edges"], 3 * 99 * 100 * 100);
    assert_eq!(l["boundary"], "open");
    assert_eq!(l["obstacle_density"], 0.0);
    let implicit = l["memory_bytes"].as_u64().unwrap();
    let explicit = l["explicit_memory_bytes"].as_u64().unwrap();
    assert!(implicit > 0 && explicit > 10 * implicit, "{l}");
    assert!(
        (l["memory_reduction"].as_f64().unwrap() - explicit as f64 / implicit as f64).abs() < 1e-6
    );
    let id = l["id"].as_str().unwrap();
    let got: Value = app
        .get(&format!("/api/lattices/{id}"), &owner.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["name"], "grid");
    let page: Value = app
        .get("/api/lattices?limit=10", &owner.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 1);
    let resp = app
        .client
        .delete(app.url(&format!("/api/lattices/{id}")))
        .bearer_auth(&owner.access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        app.get(&format!("/api/lattices/{id}"), &owner.access)
            .await
            .status(),
        404
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_lattices_and_plan_bounds_answer_422_and_the_count_limit_403() {
    let app = TestApp::spawn().await;
    let owner = app.tenant().await; // Free: d <= 3, n <= 10, 1 lattice
    for (body, field) in [
        (
            json!({"name": "a", "dimensions": 0, "size": 5}),
            "dimensions",
        ),
        (
            json!({"name": "a", "dimensions": 11, "size": 5}),
            "dimensions",
        ),
        (json!({"name": "a", "dimensions": 2, "size": 1}), "size"),
        (
            json!({"name": "a", "dimensions": 2, "size": 5, "obstacle_density": 0.95}),
            "obstacle_density",
        ),
        (json!({"name": "", "dimensions": 2, "size": 5}), "name"),
        (
            json!({"name": "a", "dimensions": 4, "size": 5}),
            "dimensions",
        ),
        (json!({"name": "a", "dimensions": 2, "size": 11}), "size"),
    ] {
        let resp = app.post("/api/lattices", &owner.access, body.clone()).await;
        assert_eq!(resp.status(), 422, "{body}");
        let b: Value = resp.json().await.unwrap();
        assert_eq!(b["errors"][0]["field"], field, "{body}: {b}");
    }
    create_lattice(
        &app,
        &owner.access,
        json!({"name": "one", "dimensions": 3, "size": 10}),
    )
    .await;
    let resp = app
        .post(
            "/api/lattices",
            &owner.access,
            json!({"name": "two", "dimensions": 2, "size": 5}),
        )
        .await;
    assert_eq!(resp.status(), 403);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["type"], "plan_limit_exceeded");
    assert_eq!(b["limit"], 1);
    // Upgrading lifts the limit at once.
    app.set_plan(&owner.tenant_id, "starter").await;
    create_lattice(
        &app,
        &owner.access,
        json!({"name": "two", "dimensions": 4, "size": 12}),
    )
    .await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shortest_paths_match_a_reference_bfs_step_by_step_and_avoid_obstacles() {
    let app = TestApp::spawn().await;
    let owner = pro_tenant(&app).await;
    let worker = app.spawn_worker("lattice");
    let cases = [
        (
            2u32,
            40u64,
            0.3f64,
            7u64,
            false,
            vec![0u64, 0],
            vec![39u64, 39],
        ),
        (3, 12, 0.25, 11, false, vec![0, 0, 0], vec![11, 5, 11]),
        (2, 25, 0.2, 3, true, vec![0, 0], vec![24, 24]),
        (1, 10, 0.0, 0, true, vec![0], vec![9]),
        (4, 6, 0.15, 5, false, vec![0, 0, 0, 0], vec![5, 5, 5, 5]),
        (2, 30, 0.0, 0, false, vec![3, 4], vec![20, 9]),
    ];
    for (i, (d, n, density, seed, periodic, s, e)) in cases.iter().enumerate() {
        let l = create_lattice(
            &app,
            &owner.access,
            json!({
                "name": format!("case{i}"), "dimensions": d, "size": n, "obstacle_density": density,
                "seed": seed, "boundary": if *periodic { "periodic" } else { "open" }
            }),
        )
        .await;
        let job = submit(
            &app,
            &owner.access,
            l["id"].as_str().unwrap(),
            json!({"operation": "shortest_path", "params": {"start": s, "end": e}}),
        )
        .await;
        let done = wait_done(&app, &owner.access, &job).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        let r = &done["result"];
        let expected = reference_distance(*d, *n, *density, *seed, *periodic, s, e);
        assert_eq!(r["reachable"], expected.is_some(), "case {i}: {r}");
        assert_eq!(r["distance"].as_u64(), expected, "case {i}");
        if let Some(dist) = expected {
            let path: Vec<Vec<u64>> = serde_json::from_value(r["path"].clone()).unwrap();
            assert_eq!(path.len() as u64, dist + 1);
            assert_eq!(r["path_length"], dist + 1);
            assert_eq!(&path[0], s);
            assert_eq!(path.last().unwrap(), e);
            for w in path.windows(2) {
                let diffs: Vec<u64> = w[0]
                    .iter()
                    .zip(&w[1])
                    .map(|(a, b)| {
                        let d = a.abs_diff(*b);
                        if *periodic { d.min(n - d) } else { d }
                    })
                    .collect();
                assert_eq!(
                    diffs.iter().sum::<u64>(),
                    1,
                    "case {i}: step {:?} -> {:?}",
                    w[0],
                    w[1]
                );
            }
            for v in &path[1..path.len() - 1] {
                assert!(
                    !blocked(*seed, *density, index(v, *n)),
                    "case {i}: path crosses blocked {v:?}"
                );
            }
        }
        if *density == 0.0 {
            assert_eq!(
                r["method"], "closed_form",
                "an obstacle-free lattice needs no search"
            );
        }
    }
    worker.terminate().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_end_is_a_result_not_an_error() {
    let app = TestApp::spawn().await;
    let owner = pro_tenant(&app).await;
    // Find a seed whose field walls the corners apart, using the reference.
    let (n, density) = (12u64, 0.6);
    let seed = (0..500)
        .find(|&seed| {
            reference_distance(2, n, density, seed, false, &[0, 0], &[n - 1, n - 1]).is_none()
        })
        .expect("a walled-off seed");
    let l = create_lattice(
        &app,
        &owner.access,
        json!({"name": "walls", "dimensions": 2, "size": n,
        "obstacle_density": density, "seed": seed}),
    )
    .await;
    let worker = app.spawn_worker("lattice");
    let job = submit(
        &app,
        &owner.access,
        l["id"].as_str().unwrap(),
        json!({"operation": "shortest_path", "params": {"start": [0, 0], "end": [n - 1, n - 1]}}),
    )
    .await;
    let done = wait_done(&app, &owner.access, &job).await;
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["result"]["reachable"], false);
    assert!(done["result"]["distance"].is_null());
    worker.terminate().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn components_xor_and_statistics_give_known_answers() {
    let app = TestApp::spawn().await;
    let owner = pro_tenant(&app).await;
    let worker = app.spawn_worker("lattice");
    let open = create_lattice(
        &app,
        &owner.access,
        json!({"name": "open", "dimensions": 3, "size": 20}),
    )
    .await;
    let id = open["id"].as_str().unwrap();
    let comp = wait_done(
        &app,
        &owner.access,
        &submit(
            &app,
            &owner.access,
            id,
            json!({"operation": "connected_components"}),
        )
        .await,
    )
    .await;
    assert_eq!(comp["result"]["count"], 1, "{comp}");
    assert_eq!(comp["result"]["largest"], 8000);
    let stats = wait_done(
        &app,
        &owner.access,
        &submit(&app, &owner.access, id, json!({"operation": "statistics"})).await,
    )
    .await;
    assert_eq!(stats["result"]["vertices"], 8000);
    assert_eq!(stats["result"]["diameter"], 3 * 19);
    assert_eq!(stats["result"]["edges"], 3 * 19 * 400);

    // With obstacles: the reference's component count.
    let (n, density, seed) = (30u64, 0.45, 9u64);
    let holes = create_lattice(
        &app,
        &owner.access,
        json!({"name": "holes", "dimensions": 2, "size": n,
        "obstacle_density": density, "seed": seed}),
    )
    .await;
    let comp = wait_done(
        &app,
        &owner.access,
        &submit(
            &app,
            &owner.access,
            holes["id"].as_str().unwrap(),
            json!({"operation": "connected_components"}),
        )
        .await,
    )
    .await;
    let (count, largest) = reference_components(n, density, seed);
    assert_eq!(comp["result"]["count"], count, "{comp}");
    assert_eq!(comp["result"]["largest"], largest);

    let xor = wait_done(&app, &owner.access, &submit(&app, &owner.access, id,
        json!({"operation": "xor_transform", "params": {"key": "c0ffee", "key_format": "hex", "rounds": 3}})).await).await;
    let r = &xor["result"];
    assert_eq!(r["restored"], true, "{r}");
    assert_eq!(r["checksum_before"], r["checksum_restored"]);
    assert_ne!(r["checksum_before"], r["checksum_after"]);
    worker.terminate().await;
    app.cleanup().await;
}

fn reference_components(n: u64, density: f64, seed: u64) -> (u64, u64) {
    let total = (n * n) as usize;
    let mut seen = vec![false; total];
    let (mut count, mut largest) = (0, 0);
    for s in 0..total {
        if seen[s] || blocked(seed, density, s as u64) {
            continue;
        }
        count += 1;
        let mut size = 0;
        let mut q = VecDeque::from([s]);
        seen[s] = true;
        while let Some(v) = q.pop_front() {
            size += 1;
            let (x, y) = (v as u64 % n, v as u64 / n);
            let mut nb = Vec::new();
            if x > 0 {
                nb.push(v - 1)
            }
            if x + 1 < n {
                nb.push(v + 1)
            }
            if y > 0 {
                nb.push(v - n as usize)
            }
            if y + 1 < n {
                nb.push(v + n as usize)
            }
            for w in nb {
                if !seen[w] && !blocked(seed, density, w as u64) {
                    seen[w] = true;
                    q.push_back(w);
                }
            }
        }
        largest = largest.max(size);
    }
    (count, largest)
}

#[tokio::test(flavor = "multi_thread")]
async fn operation_parameters_are_validated_before_queueing() {
    let app = TestApp::spawn().await;
    let owner = pro_tenant(&app).await;
    let l = create_lattice(
        &app,
        &owner.access,
        json!({"name": "v", "dimensions": 2, "size": 10}),
    )
    .await;
    let id = l["id"].as_str().unwrap();
    for (body, field) in [
        (
            json!({"operation": "shortest_path", "params": {"start": [0, 10], "end": [1, 1]}}),
            "params.start",
        ),
        (
            json!({"operation": "shortest_path", "params": {"start": [0, 0, 0], "end": [1, 1]}}),
            "params.start",
        ),
        (
            json!({"operation": "shortest_path", "params": {"start": [0, 0]}}),
            "params.end",
        ),
        (
            json!({"operation": "xor_transform", "params": {"key": "", "rounds": 1}}),
            "params.key",
        ),
        (
            json!({"operation": "xor_transform", "params": {"key": "zz", "key_format": "hex", "rounds": 1}}),
            "params.key",
        ),
        (
            json!({"operation": "xor_transform", "params": {"key": "k", "rounds": 65}}),
            "params.rounds",
        ),
    ] {
        let resp = app
            .post(
                &format!("/api/lattices/{id}/jobs"),
                &owner.access,
                body.clone(),
            )
            .await;
        assert_eq!(resp.status(), 422, "{body}");
        let b: Value = resp.json().await.unwrap();
        assert_eq!(b["errors"][0]["field"], field, "{body}: {b}");
    }
    let resp = app
        .post(
            &format!("/api/lattices/{id}/jobs"),
            &owner.access,
            json!({"operation": "teleport"}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let jobs: Value = app
        .get("/api/jobs", &owner.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        jobs["items"].as_array().unwrap().len(),
        0,
        "nothing was queued"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_returns_the_same_job_and_refuses_another_body() {
    let app = TestApp::spawn().await;
    let owner = pro_tenant(&app).await;
    let l = create_lattice(
        &app,
        &owner.access,
        json!({"name": "i", "dimensions": 2, "size": 10}),
    )
    .await;
    let url = app.url(&format!("/api/lattices/{}/jobs", l["id"].as_str().unwrap()));
    let send = |body: Value| {
        let app = &app;
        let url = url.clone();
        let token = owner.access.clone();
        async move {
            app.client
                .post(url)
                .bearer_auth(token)
                .header("idempotency-key", "abc-1")
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let a: Value = send(json!({"operation": "statistics"}))
        .await
        .json()
        .await
        .unwrap();
    let b: Value = send(json!({"operation": "statistics"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a["job_id"], b["job_id"]);
    let resp = send(json!({"operation": "connected_components"})).await;
    assert_eq!(resp.status(), 409);
    let jobs: Value = app
        .get("/api/jobs", &owner.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(jobs["items"].as_array().unwrap().len(), 1);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queued_job_cancels_at_once_and_a_running_one_between_chunks() {
    let app = TestApp::spawn().await;
    let owner = pro_tenant(&app).await;
    let big = create_lattice(
        &app,
        &owner.access,
        json!({"name": "big", "dimensions": 3, "size": 300,
        "obstacle_density": 0.2, "seed": 1}),
    )
    .await;
    let id = big["id"].as_str().unwrap();
    // No worker yet: the job stays queued and cancels at once.
    let queued = submit(&app, &owner.access, id, json!({"operation": "statistics"})).await;
    let resp = app
        .client
        .delete(app.url(&format!("/api/jobs/{queued}")))
        .bearer_auth(&owner.access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["status"], "cancelled");

    let worker = app.spawn_worker("lattice");
    let running = submit(&app, &owner.access, id, json!({"operation": "statistics"})).await;
    eventually(Duration::from_secs(30), "the job to run", || async {
        let b: Value = app
            .get(&format!("/api/jobs/{running}"), &owner.access)
            .await
            .json()
            .await
            .ok()?;
        (b["status"] == "running").then_some(())
    })
    .await;
    let resp = app
        .client
        .delete(app.url(&format!("/api/jobs/{running}")))
        .bearer_auth(&owner.access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let done = wait_done(&app, &owner.access, &running).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(done["result"].is_null());
    worker.terminate().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_poll_wakes_when_the_job_finishes() {
    let app = TestApp::spawn().await;
    let owner = pro_tenant(&app).await;
    let l = create_lattice(
        &app,
        &owner.access,
        json!({"name": "w", "dimensions": 2, "size": 50, "obstacle_density": 0.1}),
    )
    .await;
    let job = submit(
        &app,
        &owner.access,
        l["id"].as_str().unwrap(),
        json!({"operation": "connected_components"}),
    )
    .await;
    let started = Instant::now();
    let waiter = {
        let client = app.client.clone();
        let url = app.url(&format!("/api/jobs/{job}?wait=50"));
        let token = owner.access.clone();
        tokio::spawn(async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let worker = app.spawn_worker("lattice");
    let b = waiter.await.unwrap();
    assert_eq!(b["status"], "succeeded", "{b}");
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "woken early, not at the end of the wait"
    );
    worker.terminate().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_synchronous_endpoints_answer_200_with_the_result_or_202_with_the_job() {
    let app = TestApp::spawn().await;
    let owner = pro_tenant(&app).await;
    let l = create_lattice(
        &app,
        &owner.access,
        json!({"name": "s", "dimensions": 2, "size": 20, "obstacle_density": 0.1, "seed": 4}),
    )
    .await;
    let id = l["id"].as_str().unwrap();
    // No worker: 202 after the bound.
    let resp = app
        .post(
            "/api/lattices/path",
            &owner.access,
            json!({"lattice_id": id, "start": [0, 0], "end": [19, 19]}),
        )
        .await;
    assert_eq!(resp.status(), 202);
    let worker = app.spawn_worker("lattice");
    let resp = app
        .post(
            "/api/lattices/path",
            &owner.access,
            json!({"lattice_id": id, "start": [0, 0], "end": [5, 5]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["status"], "succeeded");
    assert_eq!(
        b["result"]["distance"].as_u64(),
        reference_distance(2, 20, 0.1, 4, false, &[0, 0], &[5, 5])
    );
    let resp = app
        .post(
            &format!("/api/lattices/{id}/transform"),
            &owner.access,
            json!({"key": "secret", "rounds": 2}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(b["result"]["restored"], true);
    worker.terminate().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lattices_and_jobs_of_another_tenant_answer_404() {
    let app = TestApp::spawn().await;
    let a = pro_tenant(&app).await;
    let b = pro_tenant(&app).await;
    let l = create_lattice(
        &app,
        &b.access,
        json!({"name": "b", "dimensions": 2, "size": 10}),
    )
    .await;
    let lid = l["id"].as_str().unwrap();
    let job = submit(&app, &b.access, lid, json!({"operation": "statistics"})).await;
    let c = &app.client;
    let probes = vec![
        (
            "GET lattice",
            c.get(app.url(&format!("/api/lattices/{lid}"))),
        ),
        (
            "DELETE lattice",
            c.delete(app.url(&format!("/api/lattices/{lid}"))),
        ),
        (
            "submit",
            c.post(app.url(&format!("/api/lattices/{lid}/jobs")))
                .json(&json!({"operation": "statistics"})),
        ),
        (
            "transform",
            c.post(app.url(&format!("/api/lattices/{lid}/transform")))
                .json(&json!({"key": "k"})),
        ),
        (
            "path",
            c.post(app.url("/api/lattices/path"))
                .json(&json!({"lattice_id": lid, "start": [0, 0], "end": [1, 1]})),
        ),
        ("GET job", c.get(app.url(&format!("/api/jobs/{job}")))),
        (
            "GET job wait",
            c.get(app.url(&format!("/api/jobs/{job}?wait=1"))),
        ),
        ("DELETE job", c.delete(app.url(&format!("/api/jobs/{job}")))),
    ];
    for (name, req) in probes {
        let resp = req.bearer_auth(&a.access).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{name}");
    }
    let jobs: Value = app
        .get(&format!("/api/jobs?lattice_id={lid}"), &a.access)
        .await
        .json()
        .await
        .unwrap();
    assert!(jobs["items"].as_array().unwrap().is_empty());
    let still: Value = app
        .get(&format!("/api/jobs/{job}"), &b.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(still["status"], "queued");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_whose_worker_is_sigkilled_mid_computation_restarts_and_finishes_once() {
    let app = TestApp::spawn().await;
    let owner = pro_tenant(&app).await;
    let l = create_lattice(
        &app,
        &owner.access,
        json!({"name": "k", "dimensions": 3, "size": 300,
        "obstacle_density": 0.2, "seed": 2}),
    )
    .await;
    let first = app.spawn_worker("lattice");
    let job = submit(
        &app,
        &owner.access,
        l["id"].as_str().unwrap(),
        json!({"operation": "statistics"}),
    )
    .await;
    eventually(Duration::from_secs(30), "the job to run", || async {
        let b: Value = app
            .get(&format!("/api/jobs/{job}"), &owner.access)
            .await
            .json()
            .await
            .ok()?;
        (b["status"] == "running").then_some(())
    })
    .await;
    first.kill_hard().await;
    let killed_at = Instant::now();
    let second = app.spawn_worker("lattice");
    let done = wait_done(&app, &owner.access, &job).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["attempts"], 2,
        "one interrupted attempt, one that finished"
    );
    assert!(
        killed_at.elapsed() < Duration::from_secs(75),
        "reclaimed within idle time + margin"
    );
    assert_eq!(done["result"]["vertices"], 27_000_000);
    second.terminate().await;
    app.cleanup().await;
}

/// The `updated_at` of a job row (every progress write sets it).
async fn job_updated_at(pool: &catalytic_db::Pool, id: JobId) -> chrono::DateTime<chrono::Utc> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    let mut conn = pool.get().await.unwrap();
    catalytic_db::schema::jobs::table
        .find(id)
        .select(catalytic_db::schema::jobs::updated_at)
        .first(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_lattice_run_stops_its_computation_and_its_progress_writes() {
    let app = TestApp::spawn().await;
    let owner = pro_tenant(&app).await;
    let l = create_lattice(
        &app,
        &owner.access,
        json!({"name": "dropped", "dimensions": 3, "size": 700,
        "obstacle_density": 0.2, "seed": 3}),
    )
    .await;
    let job = submit(
        &app,
        &owner.access,
        l["id"].as_str().unwrap(),
        json!({"operation": "statistics"}),
    )
    .await;
    let id: JobId = job.parse().unwrap();
    let pool = app.pool();
    let job = {
        let mut conn = pool.get().await.unwrap();
        catalytic_db::jobs::start_attempt(&mut conn, id)
            .await
            .unwrap()
            .expect("claimed")
    };
    let config = catalytic_jobs::WorkerConfig {
        database_url: app.db.url.clone(),
        database_pool_size: 2,
        redis_url: app.redis_url.clone(),
        redis_key_prefix: app.prefix.clone(),
        ..Default::default()
    };
    // The handler runs in a runtime of its own, as in a worker: its future is dropped by a
    // timeout (what the job timeout and the worker's shutdown timeout do), then the
    // runtime shuts down (SIGTERM), which waits for blocking tasks still running.
    let (quiet_writes, shutdown) = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let quiet_writes = rt.block_on(async {
            let ctx = catalytic_jobs::HandlerContext::connect(&config).unwrap();
            let handle = catalytic_jobs::handler::JobHandle::new(ctx.clone(), id, 1);
            let run = tokio::time::timeout(
                Duration::from_millis(1500),
                catalytic_jobs::kinds::lattice::run(&handle, &job),
            )
            .await;
            assert!(run.is_err(), "the computation outlasts the timeout");
            // A write in flight at the drop lands; after that, nothing writes any more.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let after_drop = job_updated_at(&ctx.db, id).await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
            job_updated_at(&ctx.db, id).await == after_drop
        });
        let started = Instant::now();
        drop(rt);
        (quiet_writes, started.elapsed())
    })
    .await
    .unwrap();
    assert!(
        quiet_writes,
        "no progress is written for a run whose future was dropped"
    );
    assert!(
        shutdown < Duration::from_secs(3),
        "the runtime shut down in {shutdown:?}: the computation went on after its run was dropped"
    );
    drop(pool);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn compute_time_is_metered_once_when_a_retry_records_the_result() {
    let app = TestApp::spawn().await;
    let owner = pro_tenant(&app).await;
    // PostgreSQL refuses the first attempt's result: the job runs again and succeeds.
    for sql in [
        "CREATE SEQUENCE refuse_once",
        "CREATE FUNCTION refuse_first_success() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN IF nextval('refuse_once') = 1 THEN \
         RAISE EXCEPTION 'test: the first result cannot be written'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER refuse_first_success BEFORE UPDATE ON jobs FOR EACH ROW \
         WHEN (NEW.status = 'succeeded') EXECUTE FUNCTION refuse_first_success()",
    ] {
        catalytic_db::provision::execute_raw(&app.db.url, sql)
            .await
            .unwrap();
    }
    let l = create_lattice(
        &app,
        &owner.access,
        json!({"name": "metered", "dimensions": 2, "size": 300, "obstacle_density": 0.1}),
    )
    .await;
    let worker = app.spawn_worker("lattice");
    let job = submit(
        &app,
        &owner.access,
        l["id"].as_str().unwrap(),
        json!({"operation": "connected_components"}),
    )
    .await;
    let done = wait_done(&app, &owner.access, &job).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 2, "the first result was refused");
    let compute_ms = done["result"]["compute_ms"].as_i64().unwrap().max(1);
    // Every minute bucket's compute time of the tenant: the recorded attempt's only.
    let ctx = app.handler_context();
    let mut redis = ctx.queue.connection();
    let minutes: Vec<i64> = redis::cmd("ZRANGE")
        .arg(catalytic_jobs::usage::minutes_key(&app.prefix))
        .arg(0)
        .arg(-1)
        .query_async(&mut redis)
        .await
        .unwrap();
    let field = format!("{}|{}", owner.tenant_id, catalytic_jobs::usage::COMPUTE_MS);
    let mut metered = 0;
    for minute in minutes {
        let v: Option<i64> = redis::cmd("HGET")
            .arg(catalytic_jobs::usage::bucket_key(&app.prefix, minute))
            .arg(&field)
            .query_async(&mut redis)
            .await
            .unwrap();
        metered += v.unwrap_or(0);
    }
    assert_eq!(
        metered, compute_ms,
        "compute time metered once, for the recorded result"
    );
    worker.terminate().await;
    app.cleanup().await;
}
