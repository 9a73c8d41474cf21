//! `fnhost`: the function host's command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod cli;
use fnhost::admin_key::{self, KeySource};
use fnhost::config::{AppConfig, LoadOptions};
use fnhost::{EventStoreLocation, Host, HostOptions, ScfCredentials, StartError};

/// mimalloc, not the system allocator: the request path allocates small
/// short-lived buffers on every call, and glibc's malloc/free took about a
/// fifth of the host's CPU on the HTTP path (BENCHMARKS.md, "Performance").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "fnhost",
    version,
    about = "A function host for out-of-process language workers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How the host writes its log to stderr: `text` (coloured only on a
    /// terminal) or `json` (one object per line, with its fields).
    #[arg(long, global = true, env = "FNHOST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Invoke a function on a running host.
    Invoke {
        #[command(flatten)]
        args: cli::InvokeArgs,
        #[command(flatten)]
        target: cli::Target,
    },
    /// Manage async events on a running host.
    Events {
        #[command(subcommand)]
        command: cli::EventsCommand,
        #[command(flatten)]
        target: cli::Target,
    },
    /// Manage function and host keys on a running host.
    Keys {
        #[command(subcommand)]
        command: cli::KeysCommand,
        #[command(flatten)]
        target: cli::Target,
    },
    /// Run the function app in APP_DIR.
    Start {
        /// The function app: host.json, <function>/function.json,
        /// local.settings.json, worker.config.json (or --workers-dir).
        #[arg(default_value = ".")]
        app_dir: PathBuf,
        /// A Core Tools-style workers directory: DIR/<runtime>/worker.config.json,
        /// the runtime named by FUNCTIONS_WORKER_RUNTIME (local.settings.json
        /// Values or the environment). Used when the app has no
        /// worker.config.json of its own.
        #[arg(long, env = "FNHOST_WORKERS_DIR", value_name = "DIR")]
        workers_dir: Option<PathBuf>,
        /// HTTP port (0: pick a free one).
        #[arg(long, default_value_t = 7071)]
        port: u16,
        /// The address the HTTP listener binds: 127.0.0.1 by default; an
        /// interface's address, or 0.0.0.0 / :: for every one (in a
        /// container). Workers' gRPC stays on 127.0.0.1.
        #[arg(
            long,
            env = "FNHOST_BIND",
            default_value = "127.0.0.1",
            value_name = "ADDR"
        )]
        bind: std::net::IpAddr,
        /// gRPC port on 127.0.0.1 for workers (0: pick a free one).
        #[arg(long, default_value_t = 0)]
        grpc_port: u16,
        /// Where the host keeps its state (default: APP_DIR/.fnhost-data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Where async events are stored: sqlite:PATH (default: the data
        /// dir's events.db), or a PostgreSQL database shared with other
        /// hosts, as a postgres:// URL or libpq's key=value form
        /// (host=/socket/dir dbname=...). Keep a password out of the
        /// command line: use FNHOST_EVENT_STORE or PGPASSFILE.
        #[arg(long, env = "FNHOST_EVENT_STORE", hide_env_values = true, value_name = "URL",
              value_parser = EventStoreLocation::parse)]
        event_store: Option<EventStoreLocation>,
        /// The admin key for /admin routes (else stored in the data dir).
        /// On the command line it is visible to every local user: prefer
        /// FNHOST_ADMIN_KEY or --admin-key-file.
        #[arg(long, env = "FNHOST_ADMIN_KEY", hide_env_values = true)]
        admin_key: Option<String>,
        /// Read the admin key from this file (its first line).
        #[arg(long, conflicts_with = "admin_key")]
        admin_key_file: Option<PathBuf>,
        /// SecretId for the SCF-compatible API on `POST /` (with --scf-secret-key).
        #[arg(long, env = "FNHOST_SCF_SECRET_ID", requires = "scf_secret_key")]
        scf_secret_id: Option<String>,
        /// SecretKey for the SCF-compatible API (TC3-HMAC-SHA256 signatures).
        #[arg(
            long,
            env = "FNHOST_SCF_SECRET_KEY",
            hide_env_values = true,
            requires = "scf_secret_id"
        )]
        scf_secret_key: Option<String>,
        /// Require the admin key on `GET /metrics` (open by default, like
        /// the probes; set it when the HTTP port is reachable from outside
        /// the operator's network).
        #[arg(long, env = "FNHOST_METRICS_KEY_REQUIRED")]
        metrics_key_required: bool,
        /// Also serve `GET /metrics` alone on this port (same bind address;
        /// 0 picks a free one), for a scraper kept off the API port.
        #[arg(long, env = "FNHOST_METRICS_PORT")]
        metrics_port: Option<u16>,
        /// Serve the API's OpenAPI document (`GET /admin/openapi.json`)
        /// without the admin key.
        #[arg(long, env = "FNHOST_OPENAPI_PUBLIC")]
        openapi_public: bool,
    },
}

/// Flags whose values every local user can read in `/proc/<pid>/cmdline`
/// when given on the command line rather than through the environment.
const SECRET_FLAGS: &[(&str, &str)] = &[
    (
        "admin_key",
        "--admin-key (use FNHOST_ADMIN_KEY, --admin-key-file, or the data dir's admin.key)",
    ),
    (
        "scf_secret_key",
        "--scf-secret-key (use FNHOST_SCF_SECRET_KEY)",
    ),
    (
        "value",
        "--value (leave it out and the host generates the key)",
    ),
];

fn main() -> ExitCode {
    if fnhost::init::needed() {
        return fnhost::init::run();
    }
    let matches = Cli::command().get_matches();
    // Every level of the command line: `start`, and the client commands
    // (`invoke`, `events ...`, `keys set --value`).
    let mut secrets_on_argv: Vec<&str> = Vec::new();
    let mut level = &matches;
    while let Some((_, sub)) = level.subcommand() {
        for (id, flag) in SECRET_FLAGS {
            let given = sub.try_get_raw(id).is_ok_and(|v| v.is_some())
                && sub.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
            if given && !secrets_on_argv.contains(flag) {
                secrets_on_argv.push(flag);
            }
        }
        level = sub;
    }
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let filter = std::env::var("FNHOST_LOG").unwrap_or_else(|_| "info".to_string());
    let targets: tracing_subscriber::filter::Targets = match filter.parse() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("fnhost: FNHOST_LOG=\"{filter}\" is not a valid filter: {e}");
            return ExitCode::from(2);
        }
    };
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => tracing_subscriber::registry()
            .with(layer.with_ansi(std::io::stderr().is_terminal()))
            .with(targets)
            .init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(layer.json().flatten_event(true).with_current_span(false))
            .with(targets)
            .init(),
    }
    for flag in secrets_on_argv {
        tracing::warn!("{flag}: a secret on the command line is readable by every local user");
    }
    if let Some(start) = matches.subcommand_matches("start") {
        let on_argv =
            start.value_source("event_store") == Some(clap::parser::ValueSource::CommandLine);
        let with_password = start
            .get_one::<EventStoreLocation>("event_store")
            .is_some_and(EventStoreLocation::has_password);
        if on_argv && with_password {
            tracing::warn!(
                "--event-store: a database password on the command line is readable by every local user \
                 (use FNHOST_EVENT_STORE or a PGPASSFILE)"
            );
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fnhost: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Invoke { args, target } => runtime.block_on(cli::invoke(target, args)),
        Command::Events { command, target } => runtime.block_on(cli::events(target, command)),
        Command::Keys { command, target } => runtime.block_on(cli::keys(target, command)),
        Command::Start {
            app_dir,
            workers_dir,
            port,
            grpc_port,
            data_dir,
            event_store,
            admin_key,
            admin_key_file,
            scf_secret_id,
            scf_secret_key,
            metrics_key_required,
            metrics_port,
            openapi_public,
            bind,
        } => {
            let scf = scf_secret_id
                .zip(scf_secret_key)
                .map(|(secret_id, secret_key)| ScfCredentials {
                    secret_id,
                    secret_key,
                });
            let admin_key = match admin_key_file {
                Some(path) => match admin_key::read_key_file(&path) {
                    Ok(k) => Some(k),
                    Err(e) => {
                        eprintln!(
                            "fnhost: cannot read the admin key file {}: {e}",
                            path.display()
                        );
                        return ExitCode::from(2);
                    }
                },
                None => admin_key,
            };
            let load = LoadOptions {
                workers_dir,
                environment: std::env::vars_os()
                    .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                    .collect(),
            };
            let storage = Storage {
                data_dir,
                event_store: event_store.unwrap_or_default(),
            };
            let serve = Serve {
                bind,
                port,
                grpc_port,
                metrics_key_required,
                metrics_port,
                openapi_public,
            };
            runtime.block_on(start(app_dir, load, serve, storage, admin_key, scf))
        }
    }
}

/// Where the host keeps its state and its async events.
struct Storage {
    data_dir: Option<PathBuf>,
    event_store: EventStoreLocation,
}

/// Where and how the host listens.
struct Serve {
    bind: std::net::IpAddr,
    port: u16,
    grpc_port: u16,
    metrics_key_required: bool,
    metrics_port: Option<u16>,
    openapi_public: bool,
}

async fn start(
    app_dir: PathBuf,
    load: LoadOptions,
    serve: Serve,
    storage: Storage,
    admin_key: Option<String>,
    scf_credentials: Option<ScfCredentials>,
) -> ExitCode {
    let signal = match shutdown_signal() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fnhost: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let app = match AppConfig::load_with(&app_dir, &load) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("fnhost: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let spans = match fnhost::otel::install() {
        Ok(spans) => spans,
        Err(e) => {
            eprintln!("fnhost: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(s) = &spans {
        tracing::info!(endpoint = s.endpoint(), "exporting spans over OTLP/gRPC");
    }
    let data_dir = storage
        .data_dir
        .unwrap_or_else(|| app.app_dir.join(".fnhost-data"));
    if let Err(e) = fnhost::data_dir::prepare(&data_dir) {
        eprintln!("fnhost: {e}");
        return ExitCode::from(2);
    }
    let admin_key = match admin_key.filter(|k| !k.is_empty()) {
        Some(k) => k,
        None => match admin_key::load_or_generate(&data_dir) {
            Ok((k, KeySource::Generated(path))) => {
                println!(
                    "fnhost: generated an admin key, stored in {}: {k}",
                    path.display()
                );
                k
            }
            Ok((k, KeySource::Stored(_))) => k,
            Err(e) => {
                eprintln!(
                    "fnhost: cannot read or create the admin key in {}: {e}",
                    data_dir.display()
                );
                return ExitCode::from(2);
            }
        },
    };
    if !serve.bind.is_loopback() {
        tracing::warn!(
            bind = %serve.bind,
            "the HTTP API is reachable beyond this machine: /admin needs the admin key, function \
             routes their authLevel; /metrics and the probes are open unless \
             --metrics-key-required"
        );
    }
    let opts = HostOptions {
        app,
        http_addr: SocketAddr::new(serve.bind, serve.port),
        grpc_addr: SocketAddr::from(([127, 0, 0, 1], serve.grpc_port)),
        metrics_key_required: serve.metrics_key_required,
        openapi_public: serve.openapi_public,
        metrics_addr: serve.metrics_port.map(|p| SocketAddr::new(serve.bind, p)),
        metrics: true,
        admin_key,
        data_dir: data_dir.clone(),
        scf_credentials,
        event_store: storage.event_store,
    };
    let host = match Host::start(opts).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("fnhost: {e}");
            return ExitCode::from(match e {
                StartError::DataDir(_) | StartError::Keys(_) => 2,
                StartError::Bind { .. } => 3,
                StartError::Store { .. } => 4,
            });
        }
    };
    // Recorded before the announcement, so a CLI started by whoever reads
    // the "listening" line finds the address; written aside and renamed,
    // so it never sees a half-written file.
    let endpoint = data_dir.join(cli::ENDPOINT_FILE);
    let address = format!("http://{}\n", host.http_addr());
    if let Err(e) = fnhost::data_dir::write_private(&endpoint, address.as_bytes()) {
        tracing::warn!("cannot record the address in {}: {e}", endpoint.display());
    }
    if let Some(addr) = host.metrics_addr() {
        println!("fnhost: metrics on http://{addr}/metrics");
    }
    println!(
        "fnhost: listening on http://{} (workers on {})",
        host.http_addr(),
        host.grpc_addr()
    );
    // READY once it can serve (a worker is ready), as `/readyz` says.
    let handle = host.handle().clone();
    tokio::spawn(async move {
        loop {
            if handle.status().await.is_some_and(|s| s.can_serve()) {
                fnhost::notify::notify("READY=1");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    fnhost::notify::spawn_watchdog(host.handle().clone());
    signal.await;
    tracing::info!("signal received; shutting down");
    fnhost::notify::notify("STOPPING=1");
    host.shutdown().await;
    if let Some(s) = spans {
        s.shutdown(std::time::Duration::from_secs(5)).await;
    }
    ExitCode::SUCCESS
}

/// Installs the SIGTERM/SIGINT handlers; the returned future resolves on
/// the first of them. Installed before the host announces itself, so a
/// signal sent right after the "listening" line is never lost.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
