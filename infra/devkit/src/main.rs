//! `devkit`: the project's local tooling (`make dev`, `make invoke`, `make token`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use devkit::cpu::CpuShare;
use devkit::dev::{self, DevOptions};
use devkit::jwt;

#[derive(Parser)]
#[command(about = "Runs the orders app locally from template.yaml, without Docker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The repository root.
    #[arg(long, global = true, default_value_os_t = default_root())]
    root: PathBuf,
    /// Where the function binaries are (default: the folder this devkit was built into).
    #[arg(long, global = true)]
    bin_dir: Option<PathBuf>,
    /// The aws-lambda-rie binary (default: .tools/rie's, taken from the aws-sam-cli wheel).
    #[arg(long, global = true)]
    emulator: Option<PathBuf>,
    /// Prefix of the local table and queue names.
    #[arg(long, global = true, default_value = "dev")]
    prefix: String,
    /// A template parameter's value instead of its default, `Name=Value` (repeatable), as
    /// `sam deploy --parameter-overrides` takes them.
    #[arg(long = "parameter", global = true, value_parser = parameter)]
    parameters: Vec<(String, String)>,
}

fn parameter(raw: &str) -> Result<(String, String), String> {
    let (name, value) = raw
        .split_once('=')
        .ok_or_else(|| format!("{raw:?} is not Name=Value"))?;
    Ok((name.trim().to_owned(), value.trim().to_owned()))
}

#[derive(Subcommand)]
enum Command {
    /// The whole app: HTTP API, functions, stream and queue mappings, until Ctrl-C.
    Dev {
        #[arg(long, env = "PORT", default_value_t = 3000)]
        port: u16,
        /// Environments per HTTP function.
        #[arg(long, default_value_t = 4)]
        environments: usize,
        /// Each environment's CPU, as Lambda gives it: `memory` (its function's MemorySize share
        /// of a core, 1,769 MB being one), a size in MB for every function, or `off`.
        #[arg(long, default_value = "off", value_parser = CpuShare::parse)]
        cpu_share: CpuShare,
        /// The port of the chaos switches (the fault proxies' control endpoint; 0: any free one).
        #[arg(long, env = "CHAOS_PORT", default_value_t = 3001)]
        chaos_port: u16,
        /// The port of the web console (0: any free one).
        #[arg(long, env = "CONSOLE_PORT", default_value_t = 3002)]
        console_port: u16,
    },
    /// One function (logical id or binary name) with one event; prints the response.
    Invoke {
        #[arg(long)]
        function: String,
        #[arg(long)]
        event: PathBuf,
    },
    /// Prints a bearer token for the local API.
    Token {
        #[arg(long, default_value = "alice")]
        sub: String,
        #[arg(long, default_value = "orders:write orders:read")]
        scopes: String,
        #[arg(long, default_value_t = 3600)]
        ttl_secs: i64,
    },
}

fn default_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn options(
    cli: &Cli,
    port: u16,
    environments: usize,
    cpu_share: CpuShare,
    chaos_port: Option<u16>,
    console_port: Option<u16>,
) -> DevOptions {
    DevOptions {
        root: cli.root.clone(),
        bin_dir: cli
            .bin_dir
            .clone()
            .unwrap_or_else(|| built_beside(&cli.root)),
        emulator: cli
            .emulator
            .clone()
            .unwrap_or_else(|| devkit::rie::default_emulator(&cli.root)),
        port,
        prefix: cli.prefix.clone(),
        http_environments: environments,
        catalog: cli.root.join("infra/sample-catalog.json"),
        parameters: cli.parameters.iter().cloned().collect(),
        cpu_share,
        chaos_port,
        console_port,
        queue_retry_secs: 0,
        function_env: std::collections::BTreeMap::new(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Dev {
            port,
            environments,
            cpu_share,
            chaos_port,
            console_port,
        } => dev::run(options(
            &cli,
            *port,
            *environments,
            *cpu_share,
            Some(*chaos_port),
            Some(*console_port),
        ))
        .await
        .map(|()| None),
        Command::Invoke { function, event } => dev::invoke(
            options(&cli, 0, 1, CpuShare::Off, None, None),
            function,
            event,
        )
        .await
        .map(Some),
        Command::Token {
            sub,
            scopes,
            ttl_secs,
        } => {
            let secret_path = options(&cli, 0, 1, CpuShare::Off, None, None).secret_path();
            jwt::secret(&secret_path)
                .and_then(|secret| {
                    let scopes: Vec<&str> = scopes.split_whitespace().collect();
                    jwt::issue(&secret, sub, &scopes, *ttl_secs)
                })
                .map(|token| {
                    println!("{token}");
                    None
                })
                .map_err(dev::DevError::from)
        }
    };
    match result {
        Ok(Some(response)) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&response).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("devkit: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The profile folder devkit itself was built into (the functions are built beside it), or
/// target/release under the root when that cannot be told.
fn built_beside(root: &std::path::Path) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(std::path::Path::to_path_buf))
        .unwrap_or_else(|| root.join("target/release"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_name_equals_value() {
        assert_eq!(
            parameter("OrdersPerMinute=100"),
            Ok(("OrdersPerMinute".into(), "100".into()))
        );
        assert!(parameter("OrdersPerMinute").is_err());
        let cli = Cli::parse_from([
            "devkit",
            "--parameter",
            "OrdersPerMinute=100",
            "--parameter",
            "ReconcileAfterMinutes=6",
            "token",
        ]);
        let options = options(&cli, 0, 1, CpuShare::Off, None, None);
        assert_eq!(options.parameters["OrdersPerMinute"], "100");
        assert_eq!(options.parameters["ReconcileAfterMinutes"], "6");
    }
}
