//! `make dev` and `make invoke`: the whole app from template.yaml on the local emulators — tables
//! and queues, every function's real binary under aws-lambda-rie, the HTTP API with its JWT
//! authorizer, and the stream and queue mappings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::SqsBatchResponse;
use aws_lambda_events::streams::DynamoDbEventResponse;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::api::{ApiRoute, Gateway, serve, serve_on_free_port};
use crate::console::Console;
use crate::mapping::{SqsMapping, StreamMapping};
use crate::rie::{FunctionLaunch, FunctionPool, RieError};
use crate::template::{FunctionSpec, PhysicalNames, Template, Trigger};
use crate::{jwt, provision, queues};

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error(transparent)]
    Template(#[from] crate::TemplateError),
    #[error(transparent)]
    Provision(#[from] provision::ProvisionError),
    #[error(transparent)]
    Queues(#[from] queues::QueueError),
    #[error(transparent)]
    Topics(#[from] crate::topics::TopicError),
    #[error(transparent)]
    Rie(#[from] RieError),
    #[error(transparent)]
    Token(#[from] jwt::TokenError),
    #[error("{0}")]
    Setup(String),
}

/// Where things are and how many environments to run.
#[derive(Debug, Clone)]
pub struct DevOptions {
    pub root: PathBuf,
    /// Where the function binaries were built (target/release or target/debug).
    pub bin_dir: PathBuf,
    pub emulator: PathBuf,
    pub port: u16,
    /// Prefix of the local table and queue names.
    pub prefix: String,
    /// Environments per HTTP function (concurrent requests are served concurrently).
    pub http_environments: usize,
    pub catalog: PathBuf,
    /// Template parameters other than their defaults (say, `OrdersPerMinute` for `make bench`).
    pub parameters: BTreeMap<String, String>,
    /// The CPU share each environment runs at (Lambda's, by memory size, or none).
    pub cpu_share: crate::cpu::CpuShare,
    /// Fault proxies in front of the emulators, switched on the control endpoint at this port
    /// (0: any free port); none when `None` (the bench measures without the extra hop).
    pub chaos_port: Option<u16>,
    /// The web console (`devkit::web`) on this port (0: any free port); none when `None`.
    pub console_port: Option<u16>,
    /// A queue message a function failed is received again after this many seconds (0: at once),
    /// not after the queue's visibility timeout (minutes) — unless the function spaces its own
    /// retries (it is given its queue's URL). The receive count, and so the redrive to the DLQ,
    /// is Lambda's.
    pub queue_retry_secs: i32,
    /// Variables added to some functions' environments, by logical id (`make chaos` skews
    /// clocks with libfaketime this way).
    pub function_env: BTreeMap<String, BTreeMap<String, String>>,
}

impl DevOptions {
    pub fn secret_path(&self) -> PathBuf {
        self.root.join(".tools/dev-jwt-secret")
    }
}

/// The running app.
pub struct LocalApp {
    pub pools: BTreeMap<String, Arc<FunctionPool>>,
    /// How each function (by logical id) was started.
    pub launches: BTreeMap<String, FunctionLaunch>,
    pub names: PhysicalNames,
    pub queue_arns: BTreeMap<String, String>,
    pub template: Template,
    pub gateway: Arc<Gateway>,
    pub console: Arc<Console>,
    /// The fault proxies the functions reach the emulators through, if on.
    pub proxies: Option<crate::chaos::Proxies>,
    /// See [`DevOptions::queue_retry_secs`].
    pub queue_retry_secs: i32,
}

impl LocalApp {
    pub fn stop(&self) {
        self.console.silence_functions();
        for pool in self.pools.values() {
            pool.stop();
        }
    }
}

/// Variables the functions get from the developer's environment (credentials, region and
/// emulator endpoints), as Lambda would give them a role and a region.
const PASSED_THROUGH: &[&str] = &[
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_SNS",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "PAYMENT_API_BASE",
    "AWS_EC2_METADATA_DISABLED",
];

/// The template's resources, provisioned, and how to start each function.
pub struct Prepared {
    pub template: Template,
    pub names: PhysicalNames,
    pub queue_arns: BTreeMap<String, String>,
    /// Each function's launch, and whether it serves an HTTP route.
    pub launches: Vec<(FunctionSpec, FunctionLaunch, bool)>,
    /// The fault proxies the launches' endpoint variables point at (with `chaos_port` set).
    pub proxies: Option<crate::chaos::Proxies>,
}

/// Provisions the template's tables and queues (under `options.prefix`) and works out each
/// function's binary and environment, without starting anything.
pub async fn prepare(options: &DevOptions, console: &Console) -> Result<Prepared, DevError> {
    let template = Template::load(&options.root.join("template.yaml"))?;
    if let Some(unknown) = options
        .parameters
        .keys()
        .find(|p| !template.has_parameter(p))
    {
        return Err(DevError::Setup(format!(
            "template.yaml has no parameter {unknown} (PARAMS)"
        )));
    }
    let functions = template.functions()?;
    let routes = template.http_routes()?;

    // Every route and trigger needs a function with a binary: say so now, not at the first request.
    let mut missing = Vec::new();
    for f in &functions {
        let Some(binary) = &f.binary else {
            missing.push(format!(
                "{} has no Metadata.BuildProperties.Binary",
                f.logical_id
            ));
            continue;
        };
        let path = options.bin_dir.join(binary);
        if !path.is_file() {
            missing.push(format!(
                "{} ({}) has no binary at {}",
                f.logical_id,
                binary,
                path.display()
            ));
        }
    }
    for route in &routes {
        if !functions.iter().any(|f| f.logical_id == route.function) {
            missing.push(format!(
                "route {} {} names no function",
                route.method, route.path
            ));
        }
    }
    if !missing.is_empty() {
        return Err(DevError::Setup(format!(
            "cannot run the app: {} (build with cargo build)",
            missing.join("; ")
        )));
    }

    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let sns = aws_sdk_sns::Client::new(&config);
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let mut names = provision::create_tables(&dynamo, &template, &options.prefix).await?;
    names.extend(
        crate::secrets::create_secrets(&secrets, &template, &options.prefix)
            .await
            .map_err(|e| DevError::Setup(e.to_string()))?,
    );
    let queues = queues::create_queues(&sqs, &template, &options.prefix).await?;
    let topics = crate::topics::create_topics(&sns, &template, &options.prefix, &queues).await?;
    names.extend(queues.urls.clone());
    names.extend(topics);
    console.info(&format!(
        "created {} tables and {} queues from template.yaml (prefix {})",
        template.tables()?.len(),
        queues.urls.len(),
        options.prefix
    ));

    let mut passed: BTreeMap<String, String> = PASSED_THROUGH
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_owned(), v)))
        .collect();
    // The functions reach the emulators through the fault proxies, by the same variables.
    let proxies = match options.chaos_port {
        Some(_) => {
            // With a console, every request the functions make is kept for its timeline.
            let journal = options.console_port.map(|_| console.journal().clone());
            let proxies = crate::chaos::Proxies::start(&passed, journal)
                .await
                .map_err(|e| DevError::Setup(format!("cannot start the fault proxies: {e}")))?;
            passed.extend(proxies.endpoints.clone());
            Some(proxies)
        }
        None => None,
    };
    let log_level = template
        .parameter_default("LogLevel")
        .unwrap_or_else(|| "INFO".into());
    let mut launches = Vec::new();
    for f in functions {
        let mut env = template.function_env(&f.logical_id, &names, &options.parameters)?;
        env.extend(passed.clone());
        if let Some(extra) = options.function_env.get(&f.logical_id) {
            env.extend(extra.clone());
        }
        env.insert("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into());
        env.insert("AWS_LAMBDA_LOG_LEVEL".into(), log_level.clone());
        let serves_http = routes.iter().any(|r| r.function == f.logical_id);
        let launch = FunctionLaunch {
            name: f.binary.clone().unwrap_or_else(|| f.logical_id.clone()),
            binary: options
                .bin_dir
                .join(f.binary.as_deref().unwrap_or_default()),
            env,
            timeout_secs: f.timeout_secs,
            memory_mb: f.memory_mb,
            cpu_share_mb: options.cpu_share.for_function(f.memory_mb),
        };
        launches.push((f, launch, serves_http));
    }
    Ok(Prepared {
        template,
        names,
        queue_arns: queues.arns,
        launches,
        proxies,
    })
}

/// Provisions the template's resources and starts every function's environments.
pub async fn start(options: &DevOptions, console: Arc<Console>) -> Result<LocalApp, DevError> {
    let Prepared {
        template,
        names,
        queue_arns,
        launches,
        proxies,
    } = prepare(options, &console).await?;
    let routes = template.http_routes()?;
    let mut pools = BTreeMap::new();
    for (f, launch, serves_http) in &launches {
        let count = if *serves_http {
            options.http_environments.max(1)
        } else {
            1
        };
        pools.insert(
            f.logical_id.clone(),
            FunctionPool::start(launch, &options.emulator, count, &console)?,
        );
    }
    if let Some(proxies) = &proxies {
        for pool in pools.values() {
            pool.inject(proxies.chaos.clone());
        }
    }

    let gateway = Arc::new(Gateway {
        routes: routes
            .iter()
            .map(|r| ApiRoute {
                method: r.method.clone(),
                path: r.path.clone(),
                scopes: r.scopes.clone(),
                function: pools[&r.function].clone(),
            })
            .collect(),
        secret: jwt::secret(&options.secret_path())?,
        console: console.clone(),
    });
    Ok(LocalApp {
        pools,
        launches: launches
            .into_iter()
            .map(|(f, launch, _)| (f.logical_id, launch))
            .collect(),
        names,
        queue_arns,
        template,
        gateway,
        console,
        proxies,
        queue_retry_secs: options.queue_retry_secs,
    })
}

async fn seed(
    options: &DevOptions,
    port: u16,
    secret: &[u8],
    console: &Console,
) -> Result<(), DevError> {
    let text = std::fs::read_to_string(&options.catalog)
        .map_err(|e| DevError::Setup(format!("cannot read {}: {e}", options.catalog.display())))?;
    let products: Vec<Value> = serde_json::from_str(&text).map_err(|e| {
        DevError::Setup(format!(
            "{} is not a JSON list: {e}",
            options.catalog.display()
        ))
    })?;
    let token = jwt::issue(secret, "dev-seed", &["products:write"], 300)?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    for product in &products {
        let id = product["productId"].as_str().unwrap_or_default();
        let mut body = product.clone();
        if let Some(o) = body.as_object_mut() {
            o.remove("productId");
        }
        let request = hyper::Request::put(format!("http://127.0.0.1:{port}/products/{id}"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| DevError::Setup(e.to_string()))?;
        let response = client
            .request(request)
            .await
            .map_err(|e| DevError::Setup(format!("seeding {id}: {e}")))?;
        let status = response.status();
        let _ = response.into_body().collect().await;
        if !status.is_success() {
            return Err(DevError::Setup(format!(
                "seeding {id}: the API answered {status}"
            )));
        }
    }
    console.info(&format!(
        "loaded {} sample products from {}",
        products.len(),
        options.catalog.display()
    ));
    Ok(())
}

fn function_error(payload: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(payload).ok()?;
    value.get("errorType")?;
    Some(value.to_string())
}

/// Plays one DynamoDB stream mapping until the process ends: TRIM_HORIZON, the batch size and the
/// `eventName` filter of the template, retry from the reported sequence number, and after
/// `MaximumRetryAttempts` the batch's description goes to the on-failure queue and the batch is skipped.
async fn run_stream(
    app: Arc<LocalApp>,
    function: String,
    trigger: Trigger,
) -> Result<(), DevError> {
    let Trigger::Stream {
        table,
        batch_size,
        event_names,
        maximum_retry_attempts,
        on_failure_queue,
    } = trigger
    else {
        return Ok(());
    };
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let streams = aws_sdk_dynamodbstreams::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    // Like Lambda's poller, the mapping outlives a failed read: it says so and tries again.
    let mut mapping = loop {
        match StreamMapping::for_table(&dynamo, streams.clone(), &app.names[&table], batch_size)
            .await
        {
            Ok(mapping) => break mapping,
            Err(e) => {
                app.console
                    .error(&format!("{table} stream: {e}; trying again"));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    mapping.event_names = event_names;
    mapping.maximum_retry_attempts = maximum_retry_attempts;
    let pool = app.pools[&function].clone();
    loop {
        let delivery = mapping
            .deliver_once(|event| {
                at_least_once::<DynamoDbEventResponse, _>(&pool, &app.console, event)
            })
            .await;
        let delivery = match delivery {
            Ok(delivery) => delivery,
            Err(e) => {
                app.console
                    .error(&format!("{table} stream: {e}; trying again"));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some(delivery) = delivery else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        if let Some(batch) = delivery.gave_up {
            app.console.error(&format!(
                "{}: giving up on the batch from {} after {} attempts",
                pool.name(),
                batch.start_sequence_number,
                batch.attempts
            ));
            if let Some(queue) = &on_failure_queue {
                let info = json!({
                    "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": batch.attempts},
                    "DDBStreamBatchInfo": {
                        "shardId": batch.shard_id,
                        "startSequenceNumber": batch.start_sequence_number,
                        "endSequenceNumber": batch.end_sequence_number,
                        "batchSize": batch.batch_size,
                    },
                });
                let _ = sqs
                    .send_message()
                    .queue_url(&app.names[queue])
                    .message_body(info.to_string())
                    .send()
                    .await;
            }
        } else if delivery.retry_from.is_some() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Hands an event to one of the function's environments; a function error (or none answering)
/// is an `Err`, which the mapping treats as a failure of the whole batch.
async fn hand_over<R: DeserializeOwned, E: Serialize>(
    pool: &FunctionPool,
    console: &Console,
    event: E,
) -> Result<R, String> {
    let payload = serde_json::to_vec(&event).map_err(|e| e.to_string())?;
    let answer = pool.invoke(&payload).await.map_err(|e| {
        console.error(&e.to_string());
        e.to_string()
    })?;
    if let Some(error) = function_error(&answer) {
        console.error(&format!("{} failed: {error}", pool.name()));
        return Err(error);
    }
    serde_json::from_slice::<R>(&answer).map_err(|e| e.to_string())
}

/// Hands a batch over like [`hand_over`]; when the switches say `duplicate-delivery`, a batch that
/// succeeded is handed over once more (at-least-once delivery) and the first answer counts.
async fn at_least_once<R: DeserializeOwned, E: Serialize>(
    pool: &FunctionPool,
    console: &Console,
    event: E,
) -> Result<R, String> {
    let answer = hand_over::<R, _>(pool, console, &event).await;
    if answer.is_ok() && pool.fault() == Some(crate::chaos::Fault::DuplicateDelivery) {
        let _ = hand_over::<R, _>(pool, console, &event).await;
    }
    answer
}

/// Plays one SQS mapping until the process ends (long polling, the template's batch size).
async fn run_queue(app: Arc<LocalApp>, function: String, trigger: Trigger) -> Result<(), DevError> {
    let Trigger::Queue { queue, batch_size } = trigger else {
        return Ok(());
    };
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let mut mapping = SqsMapping::new(
        aws_sdk_sqs::Client::new(&config),
        app.names[&queue].clone(),
        app.queue_arns[&queue].clone(),
        batch_size,
    );
    // Locally a failed message is not held for the whole visibility timeout — unless the function
    // spaces its own retries (it is given its queue's URL to change the visibility).
    mapping.retry_after_secs =
        (!app.launches[&function].env.contains_key("QUEUE_URL")).then_some(app.queue_retry_secs);
    let pool = app.pools[&function].clone();
    loop {
        let delivered = mapping
            .deliver_once(1, |event| {
                at_least_once::<SqsBatchResponse, _>(&pool, &app.console, event)
            })
            .await;
        if let Err(e) = delivered {
            app.console.error(&format!("{queue}: {e}"));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Plays one schedule until the process ends: the function is invoked every `every`, first one
/// period after start (as EventBridge Scheduler does), with a scheduled-event payload.
async fn run_schedule(
    app: Arc<LocalApp>,
    function: String,
    every: Duration,
) -> Result<(), DevError> {
    let pool = app.pools[&function].clone();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        ticks.tick().await;
        let event = json!({
            "version": "0",
            "id": uuid::Uuid::new_v4().to_string(),
            "detail-type": "Scheduled Event",
            "source": "aws.scheduler",
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "resources": [format!("arn:aws:scheduler:us-east-1:000000000000:schedule/default/{function}")],
            "detail": {},
        });
        // A failure is on the console already; the next tick runs it again.
        let _ = hand_over::<serde_json::Value, _>(&pool, &app.console, event).await;
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

/// `make dev`: runs until Ctrl-C, then stops every process it started.
/// Starts the template's event source mappings (the outbox stream → relay, the queue → consumer);
/// they run until their tasks are aborted.
pub fn start_triggers(
    app: &Arc<LocalApp>,
) -> Result<Vec<tokio::task::JoinHandle<Result<(), DevError>>>, DevError> {
    let mut mappings = Vec::new();
    for f in app.template.functions()? {
        for trigger in f.triggers {
            let (app, name) = (app.clone(), f.logical_id.clone());
            let task = match trigger {
                Trigger::Stream { .. } => tokio::spawn(run_stream(app, name, trigger)),
                Trigger::Queue { .. } => tokio::spawn(run_queue(app, name, trigger)),
                Trigger::Schedule { every_secs } => {
                    tokio::spawn(run_schedule(app, name, Duration::from_secs(every_secs)))
                }
            };
            mappings.push(task);
        }
    }
    Ok(mappings)
}

pub async fn run(options: DevOptions) -> Result<(), DevError> {
    let console = Arc::new(Console::new());
    let app = Arc::new(start(&options, console.clone()).await?);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port))
        .await
        .map_err(|e| {
            DevError::Setup(format!("cannot listen on 127.0.0.1:{}: {e}", options.port))
        })?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, app.gateway.clone(), async {
        let _ = stop_rx.await;
    }));
    if let Err(e) = seed(&options, options.port, &app.gateway.secret, &console).await {
        app.stop();
        return Err(e);
    }
    let mappings = start_triggers(&app)?;
    let _chaos_control = match (&app.proxies, options.chaos_port) {
        (Some(proxies), Some(port)) => {
            let (url, stop) = crate::chaos::serve_control(proxies.chaos.clone(), port)
                .await
                .map_err(|e| {
                    DevError::Setup(format!(
                        "cannot listen on 127.0.0.1:{port} for the chaos switches: {e}"
                    ))
                })?;
            console.info(&format!(
                "chaos switches on {url}/chaos: the functions reach every emulator through a fault \
                 proxy (GET reads the rules and what fired, PUT {{\"rules\": [...]}} switches \
                 faults on, DELETE switches them off; README: Faults)"
            ));
            Some(stop)
        }
        _ => None,
    };
    let (console_stop, console_stopped) = tokio::sync::oneshot::channel::<()>();
    let console_url = match options.console_port {
        Some(port) => {
            let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let web = Arc::new(crate::web::Web {
                app: app.clone(),
                sqs: aws_sdk_sqs::Client::new(&config),
                dynamo: aws_sdk_dynamodb::Client::new(&config),
            });
            let stopped = async {
                let _ = console_stopped.await;
            };
            let (url, _) = crate::web::serve(web, port, stopped).await.map_err(|e| {
                DevError::Setup(format!(
                    "cannot listen on 127.0.0.1:{port} for the console: {e}"
                ))
            })?;
            Some(url)
        }
        None => None,
    };
    for route in &app.gateway.routes {
        let auth = match &route.scopes {
            None => "public".to_owned(),
            Some(s) => s.join(" "),
        };
        console.info(&format!(
            "{:6} {:28} → {} ({auth})",
            route.method,
            route.path,
            route.function.name()
        ));
    }
    console.info(&match options.cpu_share {
        crate::cpu::CpuShare::Off => "CPU shares off: every environment runs as fast as this \
            machine lets it (make dev CPU_SHARE=memory: Lambda's share of a core by MemorySize)"
            .to_owned(),
        crate::cpu::CpuShare::MemorySize => "each environment runs at its function's MemorySize \
            share of a core, as on Lambda (128 MB: 7.2 %; make dev CPU_SHARE=off lifts it)"
            .to_owned(),
        crate::cpu::CpuShare::Fixed(mb) => format!(
            "every environment runs at {mb} MB's share of a core ({:.1} %)",
            crate::cpu::share_of(mb) * 100.0
        ),
    });
    let build = crate::reload::Build {
        root: options.root.clone(),
        bin_dir: options.bin_dir.clone(),
    };
    let pools = app.pools.values().cloned().collect();
    let _reloads = crate::reload::watch(build, pools, console.clone())
        .map_err(|e| DevError::Setup(format!("cannot watch functions/ for changes: {e}")))?;
    console.info(
        "a save under functions/ rebuilds what it reaches and swaps those functions' environments",
    );
    if let Some(url) = &console_url {
        console.info(&format!(
            "the console is on {url}: an order's timeline, invocations, queues and dead letters, \
             replay, fault switches, tables (CONSOLE_PORT)"
        ));
    }
    console.info(&format!(
        "the API is on http://127.0.0.1:{} — a token: make token SUB=alice — stop with Ctrl-C",
        options.port
    ));
    shutdown_signal().await;
    console.info("stopping");
    let _ = stop_tx.send(());
    let _ = console_stop.send(());
    for task in mappings {
        task.abort();
    }
    let _ = server.await;
    app.stop();
    Ok(())
}

/// `make invoke`: one function's real binary, one event, the response printed.
pub async fn invoke(
    options: DevOptions,
    function: &str,
    event_file: &Path,
) -> Result<Value, DevError> {
    let console = Arc::new(Console::on_stderr());
    let app = start(&options, console.clone()).await?;
    let result = invoke_in(&app, &options, function, event_file).await;
    app.stop();
    result
}

async fn invoke_in(
    app: &LocalApp,
    options: &DevOptions,
    function: &str,
    event_file: &Path,
) -> Result<Value, DevError> {
    let (port, stop_tx, server) = serve_on_free_port(app.gateway.clone())
        .await
        .map_err(|e| DevError::Setup(e.to_string()))?;
    seed(options, port, &app.gateway.secret, &app.console).await?;
    let _ = stop_tx.send(());
    let _ = server.await;

    let event = std::fs::read(event_file)
        .map_err(|e| DevError::Setup(format!("cannot read {}: {e}", event_file.display())))?;
    let pool = app
        .pools
        .get(function)
        .or_else(|| app.pools.values().find(|p| p.name() == function))
        .ok_or_else(|| {
            let known: Vec<_> = app.pools.keys().cloned().collect();
            DevError::Setup(format!(
                "no function {function} in template.yaml (functions: {})",
                known.join(", ")
            ))
        })?;
    let payload = pool.invoke(&event).await?;
    // Give the console a moment to show the invocation's REPORT line.
    tokio::time::sleep(Duration::from_millis(200)).await;
    serde_json::from_slice(&payload)
        .map_err(|e| DevError::Setup(format!("the function answered non-JSON: {e}")))
}
