//! `make dev` and `make invoke`, run the way a developer runs them, against the emulators that
//! `make test` started (the targets reuse them). The functions are the debug build.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// The tests start function environments; one at a time keeps the process checks exact.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn require_emulators() {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_some()
            && std::env::var_os("AWS_ENDPOINT_URL_SQS").is_some(),
        "run under `make test` (or infra/with-emulators.sh), which starts the emulators"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Processes of aws-lambda-rie running this checkout's binaries.
/// The emulators left after a run, once those already killed have had a moment to go (a process
/// sent SIGKILL may still be listed while the kernel tears it down).
fn emulators_left(before: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = emulator_processes();
        if now <= before || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn emulator_processes() -> usize {
    let ours = root().canonicalize().unwrap().display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|cmd| String::from_utf8_lossy(&cmd).replace('\0', " "))
        .filter(|cmd| cmd.contains("aws-lambda-rie") && cmd.contains(&ours))
        .count()
}

/// `make dev` in its own process group, stopped like Ctrl-C when dropped — also when an assertion
/// fails half-way, so a failing test leaves nothing running.
struct RunningApp {
    child: std::process::Child,
}

impl RunningApp {
    /// `make dev` on the debug build with ports and a table prefix of its own, in its own process
    /// group, once the sample catalog answers; its console goes to the answered log file.
    async fn start(name: &str) -> (Self, Http, PathBuf) {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let log_path = std::env::temp_dir().join(format!("orders-make-{name}-{port}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new("make")
            .args([
                "dev",
                "PROFILE=debug",
                &format!("PORT={port}"),
                "CHAOS_PORT=0",
                &format!("DEV_PREFIX={name}{port}"),
            ])
            .current_dir(root())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("make dev starts");
        let mut dev = RunningApp { child };
        let http = Http(Client::builder(TokioExecutor::new()).build_http(), port);
        let started = Instant::now();
        while http.call("GET", "/products/p-1", None, None).await.0 != 200 {
            if let Ok(Some(status)) = dev.child.try_wait() {
                panic!(
                    "make dev exited with {status}: {}",
                    std::fs::read_to_string(&log_path).unwrap()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "make dev did not come up"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        (dev, http, log_path)
    }

    fn group(&self) -> i32 {
        self.child.id() as i32
    }

    /// Ctrl-C to the whole group; answers whether it exited within `limit`.
    fn interrupt(&mut self, limit: Duration) -> bool {
        // SAFETY: kill(2) on the process group this test created; no memory is touched.
        unsafe {
            libc::kill(-self.group(), libc::SIGINT);
        }
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.child.try_wait().ok().flatten().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        let running = self.child.try_wait().ok().flatten().is_none();
        if running && !self.interrupt(Duration::from_secs(15)) {
            // SAFETY: as above.
            unsafe {
                libc::kill(-self.group(), libc::SIGKILL);
            }
            let _ = self.child.wait();
        }
    }
}

fn make(args: &[&str]) -> std::process::Output {
    Command::new("make")
        .args(args)
        .current_dir(root())
        .stdin(Stdio::null())
        .output()
        .expect("make runs")
}

struct Http(Client<HttpConnector, Full<Bytes>>, u16);

impl Http {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("http://127.0.0.1:{}{path}", self.1));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let response = self
            .0
            .request(request.body(Full::new(Bytes::from(body))).unwrap())
            .await;
        let Ok(response) = response else {
            return (0, Value::Null);
        };
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

fn token(sub: &str, scopes: &str) -> String {
    let out = make(&[
        "-s",
        "token",
        "PROFILE=debug",
        &format!("SUB={sub}"),
        &format!("SCOPES={scopes}"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.trim();
    assert_eq!(
        stdout.lines().count(),
        1,
        "make token prints only the token"
    );
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    token.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_dev_runs_the_whole_app() {
    require_emulators();
    let _guard = ONE_AT_A_TIME.lock().await;
    let before = emulator_processes();
    // GIVEN make dev, up once the sample catalog answers
    let (mut dev, http, log_path) = RunningApp::start("devtest").await;
    let alice = token("alice", "orders:write orders:read");

    // WHEN alice orders 2 × p-1 with the emulator's test card, THEN 201, and with no further call
    // the saga runs through every function: payments authorizes, fulfillment ships, payments
    // captures, and the order is FULFILLED
    let place = |payment_method: &'static str| {
        let http = &http;
        let alice = &alice;
        async move {
            let (status, order) = http
                .call(
                    "POST",
                    "/orders",
                    Some(alice),
                    Some(json!({"items": [{"productId": "p-1", "quantity": 2}], "paymentMethod": payment_method})),
                )
                .await;
            assert_eq!(status, 201, "{order}");
            order["orderId"].as_str().unwrap().to_owned()
        }
    };
    let settled = |id: String, status: &'static str| {
        let http = &http;
        let alice = &alice;
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let (code, order) = http
                    .call("GET", &format!("/orders/{id}"), Some(alice), None)
                    .await;
                assert_eq!(code, 200);
                if order["status"] == status {
                    return order;
                }
                assert!(
                    Instant::now() < deadline,
                    "not {status} within 60 s: {order}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let id = place("tok_visa").await;
    let fulfilled = settled(id.clone(), "FULFILLED").await;
    assert_eq!(fulfilled["payment"]["status"], "captured", "{fulfilled}");
    assert!(fulfilled["shipmentId"].is_string(), "{fulfilled}");
    assert_eq!(
        http.call("GET", "/products/p-1", None, None).await.1["stock"],
        98
    );
    // AND a fulfilled order can no longer be cancelled
    let (status, refused) = http
        .call("POST", &format!("/orders/{id}/cancel"), Some(&alice), None)
        .await;
    assert_eq!(status, 409, "{refused}");

    // AND a declined card cancels the order and puts the stock back
    let declined = settled(place("tok_chargeDeclined").await, "CANCELLED").await;
    assert_eq!(
        declined["cancellationReason"], "payment_declined",
        "{declined}"
    );
    assert_eq!(declined["payment"]["status"], "declined", "{declined}");
    assert_eq!(
        http.call("GET", "/products/p-1", None, None).await.1["stock"],
        98
    );

    // AND cancelling a pending order puts the stock back (its authorization is voided)
    let id = place("tok_visa").await;
    let (status, cancelled) = http
        .call("POST", &format!("/orders/{id}/cancel"), Some(&alice), None)
        .await;
    assert!(
        status == 200 && cancelled["status"] == "CANCELLED" || status == 409,
        "{status} {cancelled}"
    );
    if status == 200 {
        assert_eq!(
            http.call("GET", "/products/p-1", None, None).await.1["stock"],
            98
        );
    }

    // AND the authorizer answers 401 without a token, or with a forged one
    assert_eq!(
        http.call(
            "POST",
            "/orders",
            None,
            Some(json!({"productId": "p-1", "quantity": 1}))
        )
        .await
        .0,
        401
    );
    assert_eq!(
        http.call("GET", "/orders", Some("e30.e30.forged"), None)
            .await
            .0,
        401
    );
    let reader = token("alice", "orders:read");
    assert_eq!(
        http.call(
            "POST",
            "/orders",
            Some(&reader),
            Some(json!({"productId": "p-1", "quantity": 1}))
        )
        .await
        .0,
        403
    );

    // AND a flash sale of 100 buyers on stock 20 sells exactly 20
    let mut tokens = Vec::new();
    for i in 0..100 {
        tokens.push(token(&format!("buyer-{i}"), "orders:write"));
    }
    let http = std::sync::Arc::new(http);
    let sales = tokens.into_iter().map(|t| {
        let http = http.clone();
        tokio::spawn(async move {
            http.call(
                "POST",
                "/orders",
                Some(&t),
                Some(json!({"productId": "flash-1", "quantity": 1, "paymentMethod": "tok_visa"})),
            )
            .await
            .0
        })
    });
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for status in futures::future::join_all(sales).await {
        *statuses.entry(status.unwrap()).or_default() += 1;
    }
    assert_eq!(statuses.get(&201), Some(&20), "{statuses:?}");
    assert_eq!(statuses.get(&409), Some(&80), "{statuses:?}");
    assert_eq!(
        http.call("GET", "/products/flash-1", None, None).await.1["stock"],
        0
    );

    // AND the chaos switches reach the functions: with every order transaction cancelled for a
    // conflict, an order is a 503 to retry later and the fault is counted; switched off, it is gone
    let printed = std::fs::read_to_string(&log_path).unwrap();
    let control: u16 = printed
        .lines()
        .find_map(|l| l.split("chaos switches on http://127.0.0.1:").nth(1))
        .and_then(|rest| rest.split('/').next())
        .and_then(|port| port.parse().ok())
        .expect("make dev prints where its chaos switches are");
    let switches = Http(Client::builder(TokioExecutor::new()).build_http(), control);
    let conflict = json!({"rules": [{
        "service": "dynamodb",
        "operation": "TransactWriteItems",
        "fault": {"kind": "transaction-conflict"},
        "probability": 1.0
    }]});
    assert_eq!(
        switches.call("PUT", "/chaos", None, Some(conflict)).await.0,
        200
    );
    let carol = token("carol", "orders:write");
    let order = json!({"productId": "p-1", "quantity": 1, "paymentMethod": "tok_visa"});
    let (status, problem) = http
        .call("POST", "/orders", Some(&carol), Some(order.clone()))
        .await;
    assert_eq!(status, 503, "{problem}");
    let (_, state) = switches.call("GET", "/chaos", None, None).await;
    assert!(
        state["fired"][0]["count"].as_u64() >= Some(1),
        "the conflict is counted: {state}"
    );
    let bad = json!({"rules": [{"service": "sqs", "fault": {"kind": "transaction-conflict"}, "probability": 1}]});
    assert_eq!(switches.call("PUT", "/chaos", None, Some(bad)).await.0, 400);
    assert_eq!(switches.call("DELETE", "/chaos", None, None).await.0, 200);
    let (status, body) = http
        .call("POST", "/orders", Some(&carol), Some(order))
        .await;
    assert_eq!(status, 201, "{body}");

    // AND schemathesis finds no 5xx and no answer that breaks infra/openapi.yaml
    let all = token("schemathesis", "orders:write orders:read products:write");
    let st = Command::new(root().join(".tools/venv/bin/schemathesis"))
        .args([
            "--config-file",
            "infra/schemathesis.toml",
            "run",
            "infra/openapi.yaml",
        ])
        .args(["--url", &format!("http://127.0.0.1:{}", http.1)])
        .args(["--header", &format!("Authorization: Bearer {all}")])
        .args(["--max-examples", "30", "--seed", "20261124", "--no-color"])
        .current_dir(root())
        .stdin(Stdio::null())
        .output()
        .expect("schemathesis runs");
    assert!(
        st.status.success(),
        "schemathesis: {}\n{}",
        String::from_utf8_lossy(&st.stdout),
        String::from_utf8_lossy(&st.stderr)
    );

    // THEN the console shows the invocations' REPORT lines and the order's hops
    let console = std::fs::read_to_string(&log_path).unwrap();
    assert!(console.contains("create-order#"), "{console}");
    assert!(
        console.lines().any(|l| l.contains("REPORT RequestId")),
        "{console}"
    );
    assert!(
        console
            .lines()
            .any(|l| l.contains("event relayed") && l.contains(&id))
    );
    assert!(
        console
            .lines()
            .any(|l| l.contains("event consumed") && l.contains(&id))
    );
    assert!(
        !console.contains("\x1b["),
        "no colours when the console is not a terminal"
    );

    // AND Ctrl-C stops everything it started
    assert!(
        dev.interrupt(Duration::from_secs(20)),
        "make dev did not stop on Ctrl-C"
    );
    std::thread::sleep(Duration::from_millis(300));
    let after = emulators_left(before);
    assert!(
        after <= before,
        "aws-lambda-rie processes left behind: {before} before, {after} after"
    );
}

#[test]
fn every_event_file_invokes_its_function() {
    require_emulators();
    let _guard = ONE_AT_A_TIME.blocking_lock();
    let before = emulator_processes();
    let template = devkit::Template::load_default().unwrap();
    let functions = template.functions().unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("events"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "an event per function");
    for file in files {
        let stem = file.file_stem().unwrap().to_str().unwrap().to_owned();
        let function = functions
            .iter()
            .find(|f| f.binary.as_deref() == Some(&stem))
            .unwrap_or_else(|| panic!("events/{stem}.json names no function's binary"));
        let out = make(&[
            "-s",
            "invoke",
            "PROFILE=debug",
            &format!("FN={}", function.logical_id),
            &format!("EVENT=events/{stem}.json"),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "make invoke {stem}: {stderr}");
        let response: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{stem}: the response is JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        assert!(
            response.get("errorType").is_none(),
            "{stem}: function error {response}"
        );
        assert!(
            stderr.contains("REPORT RequestId"),
            "{stem}: the invocation is reported"
        );
        match response.get("statusCode").and_then(Value::as_u64) {
            Some(status) => assert!(status < 500, "{stem}: {response}"),
            None if stem == "outbox-reconciler" => {
                assert!(response.get("republished").is_some(), "{stem}: {response}")
            }
            None if stem == "expire-orders" => {
                assert!(response.get("cancelled").is_some(), "{stem}: {response}")
            }
            None if stem == "payments-reconciler" => {
                assert!(response.get("stranded").is_some(), "{stem}: {response}")
            }
            None => assert!(
                response.get("batchItemFailures").is_some(),
                "{stem}: {response}"
            ),
        }
        if stem == "create-order" {
            assert_eq!(
                response["statusCode"], 201,
                "the sample catalog has the fixture's products"
            );
        }
        if stem == "outbox-relay" {
            assert_eq!(
                response["batchItemFailures"],
                json!([]),
                "the fixture's INSERT is relayed"
            );
        }
    }
    let after = emulators_left(before);
    assert!(
        after <= before,
        "aws-lambda-rie processes left behind: {before} before, {after} after"
    );
}

/// The functions' runtimes of this checkout's debug build (their own processes, children of the
/// emulators), by the executable they run.
fn runtime_processes() -> usize {
    let bin_dir = root().canonicalize().unwrap().join("target/debug");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_link(e.path().join("exe")).ok())
        .filter(|exe| exe.parent() == Some(bin_dir.as_path()))
        .filter(|exe| exe.file_name().is_some_and(|n| n != "devkit"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_dev_killed_with_sigkill_leaves_no_emulator_or_runtime_behind() {
    require_emulators();
    let _guard = ONE_AT_A_TIME.lock().await;
    let (emulators, runtimes) = (emulator_processes(), runtime_processes());
    // GIVEN make dev serving, so its environments and a runtime are running
    let (mut dev, _http, _log) = RunningApp::start("devkill").await;
    assert!(
        emulator_processes() > emulators,
        "no emulator found running"
    );
    assert!(runtime_processes() > runtimes, "no runtime found running");
    // WHEN make dev and devkit are killed with SIGKILL (no handler, no drop runs)
    // SAFETY: kill(2) on the process group this test created; no memory is touched.
    unsafe {
        libc::kill(-dev.group(), libc::SIGKILL);
    }
    let _ = dev.child.wait();
    // THEN every emulator it started goes with it, and every runtime with its emulator
    assert!(
        emulators_left(emulators) <= emulators,
        "aws-lambda-rie processes left behind after SIGKILL"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while runtime_processes() > runtimes && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        runtime_processes() <= runtimes,
        "function runtimes left behind after SIGKILL"
    );
}
