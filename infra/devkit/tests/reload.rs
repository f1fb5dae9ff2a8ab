//! Reload on save, as a developer meets it: `make dev`'s devkit running a copy of this repository
//! (so the test can edit its sources), a one-line change in the shared library, and the new
//! behaviour served while the data made before the change is still there. The copy's target
//! directory is seeded with hard links to this workspace's debug build, so only the workspace's own
//! crates are compiled again (their paths changed), not the SDK.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn run(command: &mut Command, what: &str) -> String {
    let out = command.stdin(Stdio::null()).output().expect(what);
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// This repository's tracked files, copied to `to`.
fn copy_repository(to: &Path) {
    let files = run(
        Command::new("git")
            .args(["ls-files", "-z"])
            .current_dir(root()),
        "git ls-files",
    );
    for file in files.split('\0').filter(|f| !f.is_empty()) {
        let (from, dest) = (root().join(file), to.join(file));
        if from.is_file() {
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(&from, &dest).unwrap();
        }
    }
}

/// The functions (each a package with a binary of its name).
fn functions() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("functions"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("src/main.rs").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The devkit process, killed with its environments when dropped.
struct Devkit(std::process::Child);

impl Drop for Devkit {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this test created; no memory is touched.
        unsafe {
            libc::kill(-(self.0.id() as i32), libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: as above.
        unsafe {
            libc::kill(-(self.0.id() as i32), libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

async fn call(
    port: u16,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = client
        .request(
            method.parse().unwrap(),
            format!("http://127.0.0.1:{port}{path}"),
        )
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_change_in_the_shared_library_is_served_and_the_data_stays() {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_some(),
        "run under `make test` (or infra/with-emulators.sh), which starts the emulators"
    );
    // GIVEN a copy of the repository whose target directory starts from this workspace's debug build
    let tmp = std::env::temp_dir().join(format!("orders-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let (repo, target) = (tmp.join("repo"), tmp.join("target"));
    copy_repository(&repo);
    std::fs::create_dir_all(&target).unwrap();
    run(
        Command::new("cp")
            .arg("-al")
            .arg(root().join("target/debug"))
            .arg(&target),
        "hard-linking the debug build",
    );
    let mut build = Command::new("cargo");
    build
        .args(["build", "--locked", "--bins"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&repo);
    for f in functions() {
        build.args(["-p", &f]);
    }
    run(&mut build, "building the copy's functions");

    // AND devkit running it, as make dev does, with an order placed
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log_path = tmp.join("dev.log");
    let devkit = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_devkit"));
        command
            .arg("--root")
            .arg(&repo)
            .arg("--bin-dir")
            .arg(target.join("debug"))
            .arg("--emulator")
            .arg(devkit::rie::default_emulator(&root()))
            .args(args);
        command
    };
    let mut dev = devkit(&[
        "--prefix",
        &format!("reload{port}"),
        "dev",
        "--port",
        &port.to_string(),
        "--chaos-port",
        "0",
        "--console-port",
        "0",
    ]);
    {
        use std::os::unix::process::CommandExt;
        dev.process_group(0);
    }
    let log = std::fs::File::create(&log_path).unwrap();
    let _dev = Devkit(
        dev.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("devkit starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while call(port, "GET", "/products/p-1", "", None).await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "devkit did not come up: {}",
            std::fs::read_to_string(&log_path).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // (once devkit has made the copy's token secret)
    let token = run(
        &mut devkit(&["token", "--sub", "alice"]),
        "a token from the copy's secret",
    );
    let token = token.trim();
    let (status, order) = call(
        port,
        "POST",
        "/orders",
        token,
        Some(json!({"items": [{"productId": "p-1", "quantity": 1}], "paymentMethod": "tok_visa"})),
    )
    .await;
    assert_eq!(status, 201, "{order}");
    let id = order["orderId"].as_str().unwrap().to_owned();
    let (_, missing) = call(port, "GET", "/products/nope", token, None).await;
    assert_eq!(missing["detail"], "product nope does not exist");

    // WHEN a line of the shared library changes on disk
    let source = repo.join("functions/orders-core/src/http/mod.rs");
    let text = std::fs::read_to_string(&source).unwrap();
    let edited = text.replace(
        r#""product {product_id} does not exist""#,
        r#""no product {product_id} in the catalogue""#,
    );
    assert_ne!(
        text, edited,
        "the line to change is where the test expects it"
    );
    std::fs::write(&source, edited).unwrap();

    // THEN devkit rebuilds and swaps the functions it reaches, and says how long it took
    let deadline = Instant::now() + Duration::from_secs(900);
    let said = loop {
        let printed = std::fs::read_to_string(&log_path).unwrap();
        if let Some(line) = printed
            .lines()
            .find(|l| l.contains("running the new build"))
        {
            break line.to_owned();
        }
        assert!(
            !printed.contains("the build failed"),
            "the reload's build failed: {printed}"
        );
        assert!(Instant::now() < deadline, "no reload: {printed}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(said.contains("get-product"), "{said}");
    println!("{said}");
    // AND the new behaviour is served, with the order made before the change still there
    let (status, missing) = call(port, "GET", "/products/nope", token, None).await;
    assert_eq!(status, 404);
    assert_eq!(missing["detail"], "no product nope in the catalogue");
    let (status, again) = call(port, "GET", &format!("/orders/{id}"), token, None).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["orderId"], id.as_str());

    drop(_dev);
    let _ = std::fs::remove_dir_all(&tmp);
}
