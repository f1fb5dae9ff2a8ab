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
    /// The web console's port.
    console: u16,
}

impl RunningApp {
    /// `make dev` on the debug build with ports and a table prefix of its own, in its own process
    /// group, once the sample catalog answers; its console goes to the answered log file.
    async fn start(name: &str) -> (Self, Http, PathBuf) {
        use std::os::unix::process::CommandExt;
        let (port, console) = (free_port(), free_port());
        let log_path = std::env::temp_dir().join(format!("orders-make-{name}-{port}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new("make")
            .args([
                "dev",
                "PROFILE=debug",
                &format!("PORT={port}"),
                "CHAOS_PORT=0",
                &format!("CONSOLE_PORT={console}"),
                &format!("DEV_PREFIX={name}{port}"),
            ])
            .current_dir(root())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("make dev starts");
        let mut dev = RunningApp { child, console };
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
        // The console comes up just after the API, and says where it is.
        let said = format!("the console is on http://127.0.0.1:{console}");
        eventually(
            "make dev saying where its console is",
            Duration::from_secs(10),
            || async {
                std::fs::read_to_string(&log_path)
                    .unwrap()
                    .contains(&said)
                    .then_some(())
            },
        )
        .await;
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
        let content_type = body.as_ref().map(|_| "application/json");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let (status, text) = self.send(method, path, token, content_type, body).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A page of the console, as text.
    async fn page(&self, path: &str) -> (u16, String) {
        self.send("GET", path, None, None, String::new()).await
    }

    /// A form posted to the console, as a browser posts it.
    /// A form posted as a browser would: the status and where it redirects to.
    async fn post_form(&self, path: &str, form: &str) -> (u16, String) {
        let form_type = Some("application/x-www-form-urlencoded");
        let Some(response) = self
            .respond("POST", path, None, form_type, form.to_owned())
            .await
        else {
            return (0, String::new());
        };
        let location = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (response.status().as_u16(), location)
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: String,
    ) -> (u16, String) {
        let Some(response) = self.respond(method, path, token, content_type, body).await else {
            return (0, String::new());
        };
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn respond(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: String,
    ) -> Option<hyper::Response<hyper::body::Incoming>> {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("http://127.0.0.1:{}{path}", self.1));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        self.0
            .request(request.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .ok()
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

/// Polls `check` every 200 ms until it answers `Some`, for at most `limit`.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_follows_an_order_and_redrives_its_dead_letter() {
    require_emulators();
    let _guard = ONE_AT_A_TIME.lock().await;
    // GIVEN make dev, whose console said where it is
    let (dev, http, _log) = RunningApp::start("devconsole").await;
    let console = Http(
        Client::builder(TokioExecutor::new()).build_http(),
        dev.console,
    );
    let alice = token("alice", "orders:write orders:read");

    // AND, switched on from the console's page, every order-events runtime killed as it starts
    let (status, _) = console
        .post_form(
            "/chaos/rules",
            "service=lambda&operation=order-events&fault=kill-runtime&ms=0&probability=1",
        )
        .await;
    assert_eq!(status, 303);
    let (_, switches) = console.page("/chaos").await;
    assert!(switches.contains("kill-runtime"), "{switches}");

    // WHEN alice orders: payments authorizes, but orders never hears of it, and after 5 receives
    // the payment.authorized message is a dead letter (or shipment.created, the next event orders
    // hears of, when order-events' cold start answered before the fault found its runtime)
    let (status, order) = http
        .call(
            "POST",
            "/orders",
            Some(&alice),
            Some(json!({"items": [{"productId": "p-2", "quantity": 1}], "paymentMethod": "tok_visa"})),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    let id = order["orderId"].as_str().unwrap().to_owned();
    let queues = eventually(
        "the dead letter on the queues page",
        Duration::from_secs(60),
        || async {
            let (_, page) = console.page("/queues").await;
            page.contains("Redrive 1 to the source queue")
                .then_some(page)
        },
    )
    .await;
    assert!(
        queues.contains(&id)
            && ["payment.authorized", "shipment.created"]
                .iter()
                .any(|event| queues.contains(event)),
        "{queues}"
    );
    // THEN the timeline shows the hops so far, the failed ones among them
    let (_, hops) = console.page(&format!("/orders/{id}/hops")).await;
    for hop in [
        "POST /orders → 201",
        "outbox-relay",
        "payment-events",
        "order.created",
    ] {
        assert!(
            hops.contains(hop),
            "{hop} missing from the timeline: {hops}"
        );
    }
    assert!(
        ["error", "failed"]
            .iter()
            .any(|s| hops.contains(&format!(r#"class="hop {s}" data-function="order-events""#))),
        "the killed order-events invocations: {hops}"
    );

    // WHEN the switch is off and the dead letter is redriven from the page
    assert_eq!(console.post_form("/chaos/off", "").await.0, 303);
    let (status, _) = console
        .post_form("/queues/OrderEventsDeadLetterQueue/redrive", "")
        .await;
    assert_eq!(status, 303);
    // THEN the order completes, and its timeline has every service's hop
    eventually("the order fulfilled", Duration::from_secs(60), || async {
        let (_, order) = http
            .call("GET", &format!("/orders/{id}"), Some(&alice), None)
            .await;
        (order["status"] == "FULFILLED").then_some(())
    })
    .await;
    let hops = eventually(
        "the capture on the timeline",
        Duration::from_secs(10),
        || async {
            let (_, hops) = console.page(&format!("/orders/{id}/hops")).await;
            hops.contains("payment.captured").then_some(hops)
        },
    )
    .await;
    for function in ["order-events", "shipment-events"] {
        assert!(
            hops.contains(&format!(r#"class="hop ok" data-function="{function}""#)),
            "{function} missing from the timeline: {hops}"
        );
    }
    // AND each hop holds the requests it made, as the fault proxies passed them: create-order's
    // transaction, the relay's publish, payments' calls to the provider (authorize, capture)
    for request in [
        "→ dynamodb TransactWriteItems → 200",
        "→ sns PublishBatch → 200",
        "→ payments POST /v1/charges → 200",
        "→ payments POST /v1/charges/{id}/capture → 200",
    ] {
        assert!(
            hops.contains(request),
            "{request} missing from the timeline: {hops}"
        );
    }
    let (_, page) = console.page(&format!("/orders/{id}")).await;
    assert!(
        page.contains("EventSource('/live')"),
        "the timeline is live"
    );

    // AND the invocations carry the real figures: create-order's cold start has its INIT and a
    // peak memory below the function's memory size (the emulator says 128 MB of 128 MB)
    let (_, rows) = console
        .page("/invocations/rows?function=create-order&status=ok")
        .await;
    let request_id = rows
        .split("/invocations/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a create-order invocation")
        .to_owned();
    let (status, detail) = console.page(&format!("/invocations/{request_id}")).await;
    assert_eq!(status, 200);
    let report = detail
        .lines()
        .find(|l| l.contains("REPORT RequestId"))
        .unwrap_or_default()
        .to_owned();
    let used: u64 = report
        .split("Max Memory Used: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|mb| mb.parse().ok())
        .unwrap_or_else(|| panic!("no Max Memory Used: {detail}"));
    assert!(used > 0 && used < 128, "{report}");
    assert!(report.contains("Init Duration"), "a cold start: {report}");

    // AND a recorded request replays from its page: the same GET again
    let _ = http.call("GET", "/products/p-3", None, None).await;
    let (_, rows) = console.page("/invocations/rows?function=get-product").await;
    let request_id = rows
        .split("/invocations/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let (_, detail) = console.page(&format!("/invocations/{request_id}")).await;
    let event = detail
        .split("<textarea name=\"event\" rows=\"18\">")
        .nth(1)
        .and_then(|rest| rest.split("</textarea>").next())
        .expect("the event to replay")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">");
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("function", "get-product")
        .append_pair("event", &event)
        .finish();
    let (status, to) = console.post_form("/replay", &form).await;
    assert_eq!(status, 303);
    let (_, rows) = console.page("/invocations/rows?function=get-product").await;
    assert_eq!(rows.matches("GET /products/p-3 → 200").count(), 2, "{rows}");
    // AND the replay opens its own invocation: a new request id, with the same event
    assert!(
        to.starts_with("/invocations/") && to != format!("/invocations/{request_id}"),
        "{to}"
    );
    let (status, replayed) = console.page(&to).await;
    assert_eq!(status, 200);
    assert!(replayed.contains("GET /products/p-3 → 200"), "{replayed}");

    // AND the orders table is browsable
    let (status, table) = console.page("/tables/OrdersTable").await;
    assert_eq!(status, 200);
    assert!(table.contains(&id), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_in_a_browser() {
    require_emulators();
    let python = root().join(".tools/browser/bin/python");
    assert!(
        python.is_file() && Path::new("/usr/bin/chromedriver").is_file(),
        "Selenium or Chromium is not installed: infra/bootstrap.sh --browser (make test does it)"
    );
    let _guard = ONE_AT_A_TIME.lock().await;
    // GIVEN make dev and its console
    let (dev, http, _log) = RunningApp::start("devbrowser").await;
    // WHEN headless Chromium flips a fault switch, follows an order's live timeline, sees the
    // fault, redrives the dead letter and watches the order complete (console_browser.py)
    let screenshot = root().join("target/console-timeline.png");
    let run = Command::new(python)
        .arg(root().join("infra/devkit/tests/console_browser.py"))
        .args(["--console", &format!("http://127.0.0.1:{}", dev.console)])
        .args(["--api", &format!("http://127.0.0.1:{}", http.1)])
        .args(["--token", &token("alice", "orders:write orders:read")])
        .arg("--screenshot")
        .arg(&screenshot)
        .env("SE_OFFLINE", "true")
        .stdin(Stdio::null())
        .output()
        .expect("the browser test runs");
    // THEN every step happened in the browser
    assert!(
        run.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(screenshot.is_file(), "the timeline's screenshot");
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
