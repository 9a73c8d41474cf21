//! Client subcommands: talk to a running host's admin API.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

mod keys;
pub use keys::{keys, KeysCommand};

/// File in the data directory where a running host records its address.
pub const ENDPOINT_FILE: &str = "endpoint";

/// Where the host is and how to authenticate.
#[derive(Args, Clone)]
pub struct Target {
    /// The host's HTTP address (default: read from the data dir, else http://127.0.0.1:7071).
    #[arg(long, env = "FNHOST_URL", global = true)]
    url: Option<String>,
    /// The admin key (default: read from the data dir).
    #[arg(long, env = "FNHOST_ADMIN_KEY", hide_env_values = true, global = true)]
    admin_key: Option<String>,
    /// The host's data dir, for its address and admin key.
    #[arg(long, default_value = ".fnhost-data", global = true)]
    data_dir: PathBuf,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

/// `fnhost events ...`.
#[derive(Subcommand)]
pub enum EventsCommand {
    /// List async events.
    List {
        /// Only this function.
        #[arg(long)]
        function: Option<String>,
        /// Only these statuses (repeatable): QUEUED, RUNNING, RETRYING, FINISHED, FAILED, ABORTED.
        #[arg(long)]
        status: Vec<String>,
        /// Only these invoke types (repeatable).
        #[arg(long)]
        invoke_type: Vec<String>,
        /// Started at or after (RFC 3339 or ms).
        #[arg(long)]
        since: Option<String>,
        /// Started before (RFC 3339 or ms).
        #[arg(long)]
        until: Option<String>,
        /// asc or desc.
        #[arg(long, default_value = "desc")]
        order: String,
        /// startTime or endTime.
        #[arg(long, default_value = "startTime")]
        order_by: String,
        /// Rows to skip.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Rows to show (at most 100).
        #[arg(long, default_value_t = 20)]
        limit: u64,
    },
    /// Show one event.
    Status {
        /// The request id.
        id: String,
    },
    /// Terminate an event (forced unless --grace).
    Terminate {
        /// The request id.
        id: String,
        /// Graceful: send a cancel and wait the grace period before killing.
        #[arg(long)]
        grace: bool,
    },
    /// Show an event's log.
    Logs {
        /// The request id.
        id: String,
    },
}

/// `fnhost invoke` arguments.
#[derive(Args)]
pub struct InvokeArgs {
    /// The function.
    function: String,
    /// Queue it as an async event and print the request id.
    #[arg(long = "async")]
    asynchronous: bool,
    /// The trigger input (`@file` reads a file; default: empty).
    #[arg(long, default_value = "")]
    data: String,
}

struct ApiClient {
    base: String,
    key: String,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl ApiClient {
    fn new(t: &Target) -> Result<Self> {
        let base = match &t.url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => read_trimmed(&t.data_dir.join(ENDPOINT_FILE))
                .unwrap_or_else(|| "http://127.0.0.1:7071".into()),
        };
        let key = match &t.admin_key {
            Some(k) => k.clone(),
            None => read_trimmed(&t.data_dir.join(fnhost::admin_key::KEY_FILE)).with_context(|| {
                format!(
                    "no admin key: pass --admin-key, set FNHOST_ADMIN_KEY, or point --data-dir at the host's data dir (looked in {})",
                    t.data_dir.display()
                )
            })?,
        };
        Ok(Self {
            base,
            key,
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Bytes,
    ) -> Result<(u16, hyper::HeaderMap, Bytes)> {
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path))
            .header("x-functions-key", &self.key)
            .body(Full::new(body))?;
        let resp = self
            .client
            .request(req)
            .await
            .with_context(|| format!("cannot reach the host at {}", self.base))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, headers, body))
    }

    /// A call whose success has no body (a 204): fails with the API's message.
    async fn call_ok(&self, method: &str, path: &str) -> Result<()> {
        let (status, _, body) = self.call(method, path, Bytes::new()).await?;
        if status >= 400 {
            let v: Value = serde_json::from_slice(&body).unwrap_or_default();
            let msg = v["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            bail!("{msg} (HTTP {status})");
        }
        Ok(())
    }

    async fn json(&self, method: &str, path: &str, body: Bytes) -> Result<Value> {
        let (status, _, body) = self.call(method, path, body).await?;
        let v: Value = serde_json::from_slice(&body)
            .unwrap_or(Value::String(String::from_utf8_lossy(&body).into()));
        if status >= 400 {
            let msg = v["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            bail!("{msg} (HTTP {status})");
        }
        Ok(v)
    }
}

fn read_trimmed(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn print_or_fail(r: Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fnhost: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `fnhost invoke`.
pub async fn invoke(t: Target, a: InvokeArgs) -> ExitCode {
    print_or_fail(
        async {
            let c = ApiClient::new(&t)?;
            let data = match a.data.strip_prefix('@') {
                Some(file) => std::fs::read(file).with_context(|| format!("cannot read {file}"))?,
                None => a.data.into_bytes(),
            };
            let route = if a.asynchronous {
                "invoke-async"
            } else {
                "invoke"
            };
            let (status, headers, body) = c
                .call(
                    "POST",
                    &format!("/admin/functions/{}/{route}", a.function),
                    data.into(),
                )
                .await?;
            let outcome = headers
                .get("x-fnhost-outcome")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if t.json || a.asynchronous || status >= 400 {
                println!("{}", String::from_utf8_lossy(&body));
            } else {
                println!("{}", String::from_utf8_lossy(&body));
                eprintln!("outcome: {outcome}");
            }
            if status >= 400 {
                bail!(
                    "the invocation ended {} (HTTP {status})",
                    if outcome.is_empty() {
                        "with an error"
                    } else {
                        outcome
                    }
                );
            }
            Ok(())
        }
        .await,
    )
}

/// Percent-encodes everything but unreserved characters: safe as a query
/// value and as a path segment.
fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn query_string(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", path_segment(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Runs `fnhost events ...`.
pub async fn events(t: Target, cmd: EventsCommand) -> ExitCode {
    print_or_fail(
        async {
            let c = ApiClient::new(&t)?;
            match cmd {
                EventsCommand::List {
                    function,
                    status,
                    invoke_type,
                    since,
                    until,
                    order,
                    order_by,
                    offset,
                    limit,
                } => {
                    let mut q: Vec<(&str, String)> = vec![
                        ("order", order),
                        ("orderBy", order_by),
                        ("offset", offset.to_string()),
                        ("limit", limit.to_string()),
                    ];
                    q.extend(function.map(|f| ("function", f)));
                    q.extend(status.into_iter().map(|s| ("status", s)));
                    q.extend(invoke_type.into_iter().map(|s| ("invokeType", s)));
                    q.extend(since.map(|s| ("startTimeFrom", s)));
                    q.extend(until.map(|s| ("startTimeTo", s)));
                    let v = c
                        .json(
                            "GET",
                            &format!("/admin/async-events?{}", query_string(&q)),
                            Bytes::new(),
                        )
                        .await?;
                    if t.json {
                        println!("{v}");
                        return Ok(());
                    }
                    println!(
                        "{:<36}  {:<16}  {:<9}  {:>4}  {:<24}  {:<24}",
                        "REQUEST ID", "FUNCTION", "STATUS", "CODE", "START", "END"
                    );
                    for e in v["events"].as_array().into_iter().flatten() {
                        println!(
                            "{:<36}  {:<16}  {:<9}  {:>4}  {:<24}  {:<24}",
                            cell(&e["requestId"]),
                            cell(&e["function"]),
                            cell(&e["status"]),
                            cell(&e["statusCode"]),
                            cell(&e["startTime"]),
                            cell(&e["endTime"])
                        );
                    }
                    println!(
                        "({} shown of {})",
                        v["events"].as_array().map_or(0, Vec::len),
                        cell(&v["totalCount"])
                    );
                }
                EventsCommand::Status { id } => {
                    let v = c
                        .json("GET", &format!("/admin/async-events/{id}"), Bytes::new())
                        .await?;
                    if t.json {
                        println!("{v}");
                    } else {
                        for k in [
                            "requestId",
                            "function",
                            "qualifier",
                            "invokeType",
                            "status",
                            "statusCode",
                            "attempts",
                            "startTime",
                            "endTime",
                            "nextAttemptTime",
                            "error",
                            "result",
                        ] {
                            println!("{k:<16} {}", cell(&v[k]));
                        }
                    }
                }
                EventsCommand::Terminate { id, grace } => {
                    let body = serde_json::json!({ "graceShutdown": grace }).to_string();
                    let v = c
                        .json(
                            "POST",
                            &format!("/admin/async-events/{id}/terminate"),
                            body.into(),
                        )
                        .await?;
                    if t.json {
                        println!("{v}");
                    } else if v["outcome"] == "already-completed" {
                        println!("{id}: already completed ({})", cell(&v["status"]));
                    } else {
                        println!(
                            "{id}: terminate {}",
                            if grace {
                                "signalled (graceful)"
                            } else {
                                "done (forced)"
                            }
                        );
                    }
                }
                EventsCommand::Logs { id } => {
                    let v = c
                        .json(
                            "GET",
                            &format!("/admin/async-events/{id}/logs"),
                            Bytes::new(),
                        )
                        .await?;
                    if t.json {
                        println!("{v}");
                    } else {
                        for l in v["lines"].as_array().into_iter().flatten() {
                            println!("{}  {}", cell(&l["time"]), cell(&l["line"]));
                        }
                    }
                }
            }
            Ok(())
        }
        .await,
    )
}
