//! A function's environments as Lambda keeps them: an environment whose emulator died is replaced
//! (the invocation it failed stays failed, the next one is served), and `recycle` gives every
//! environment a new emulator and runtime without failing an invocation under way.

mod hello;

use std::sync::Arc;

use devkit::console::Console;
use devkit::rie::{FunctionPool, default_emulator};

fn hello_pool(name: &str) -> Arc<FunctionPool> {
    let console = Arc::new(Console::recording());
    FunctionPool::start(
        &hello::launch(name, None),
        &default_emulator(&hello::root()),
        1,
        &console,
    )
    .unwrap()
}

#[tokio::test]
async fn an_environment_whose_emulator_died_is_replaced() {
    // GIVEN an environment that served an invocation
    let pool = hello_pool("replaced");
    pool.invoke(b"{}").await.expect("hello-floor answers");
    // WHEN its aws-lambda-rie dies (it can panic when a runtime is killed as it starts)
    let emulator = pool.emulator_pids()[0];
    // SAFETY: kill(2) on the emulator this pool started; no memory is touched.
    unsafe {
        libc::kill(emulator as i32, libc::SIGKILL);
    }
    // THEN the invocation it was given fails, as on Lambda, and the next one is served by a new
    // environment
    assert!(pool.invoke(b"{}").await.is_err());
    pool.invoke(b"{}").await.expect("a new environment answers");
    assert_ne!(pool.emulator_pids(), vec![emulator]);
    pool.stop();
}

#[tokio::test]
async fn recycled_environments_fail_no_invocation() {
    // GIVEN an environment busy with invocations, one after another
    let pool = hello_pool("recycled");
    pool.invoke(b"{}").await.expect("hello-floor answers");
    let before = pool.emulator_pids();
    let load = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut failed = 0;
            for _ in 0..200 {
                if pool.invoke(b"{}").await.is_err() {
                    failed += 1;
                }
            }
            failed
        })
    };
    // WHEN it is recycled meanwhile (a reload)
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    pool.recycle().await.expect("new environments");
    // THEN a new emulator serves, and no invocation failed
    assert_eq!(load.await.unwrap(), 0);
    assert_ne!(pool.emulator_pids(), before);
    pool.stop();
}
