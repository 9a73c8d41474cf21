//! Launching worker processes: the published argument set, a clean
//! environment, output forwarded to the host's log, exit reported to the
//! dispatcher.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::oneshot;

use crate::config::{ArgumentStyle, WorkerLaunchConfig};
use crate::ids::WorkerId;

/// Variables that switch published workers into cloud-platform code paths;
/// a local host must not pass them on.
const STRIPPED_ENV: &[&str] = &[
    "CONTAINER_NAME",
    "WEBSITE_INSTANCE_ID",
    "WEBSITE_PLACEHOLDER_MODE",
];

/// The host's own secrets: a worker runs user code and must not inherit
/// them from the host's environment.
const HOST_SECRETS_ENV: &[&str] = &[
    "FNHOST_ADMIN_KEY",
    "FNHOST_SCF_SECRET_ID",
    "FNHOST_SCF_SECRET_KEY",
    LAUNCH_SECRET_ENV,
];

/// Whether the host keeps variable `name` from its workers: cloud-platform
/// switches and the host's own secrets.
pub(crate) fn is_withheld(name: &str) -> bool {
    STRIPPED_ENV.contains(&name) || HOST_SECRETS_ENV.contains(&name) || name.starts_with("WEBSITE_")
}

/// The OTLP exporter's headers (`OTEL_EXPORTER_OTLP_HEADERS`,
/// `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, ...) usually carry the collector's
/// credentials: the host's own, not inherited by user code. An app that
/// wants its workers to export too names them in its local settings'
/// `Values`, which are passed on.
pub(crate) fn is_exporter_credential(name: &str) -> bool {
    name.starts_with("OTEL_EXPORTER_OTLP") && name.ends_with("HEADERS")
}

/// A launched worker process ended (or was killed).
#[derive(Debug)]
pub(crate) struct WorkerExit {
    /// The worker id it was launched with.
    pub worker_id: WorkerId,
    /// "exit code 3" or "killed by signal 9".
    pub status: String,
}

/// What the dispatcher keeps of a launched process.
#[derive(Debug)]
pub(crate) struct WorkerProcess {
    /// The OS process id.
    pub pid: Option<u32>,
    /// Firing (or dropping) this kills the process.
    pub kill: oneshot::Sender<()>,
}

/// Identity and limits of one launch.
pub(crate) struct LaunchSpec<'a> {
    pub config: &'a WorkerLaunchConfig,
    pub app_dir: &'a Path,
    pub grpc_addr: SocketAddr,
    pub worker_id: &'a WorkerId,
    pub request_id: &'a str,
    pub launch_secret: &'a str,
    pub max_message_bytes: usize,
}

/// The variable that carries the launch secret (the environment, never
/// argv: `/proc/<pid>/environ` is readable by the process's owner only).
pub(crate) const LAUNCH_SECRET_ENV: &str = "FNHOST_WORKER_SECRET";

/// The command line, in the order published workers expect: executable,
/// its arguments, the worker path, the protocol arguments, worker arguments.
pub(crate) fn command_line(spec: &LaunchSpec<'_>) -> Vec<String> {
    let cfg = spec.config;
    let mut args: Vec<String> = cfg.arguments.clone();
    if let Some(p) = &cfg.worker_path {
        args.push(p.display().to_string());
    }
    let (host, port) = (
        spec.grpc_addr.ip().to_string(),
        spec.grpc_addr.port().to_string(),
    );
    let max = spec.max_message_bytes.to_string();
    if cfg.argument_style != ArgumentStyle::Functions {
        for (k, v) in [
            ("--host", host.as_str()),
            ("--port", port.as_str()),
            ("--workerId", spec.worker_id.as_str()),
            ("--requestId", spec.request_id),
            ("--grpcMaxMessageLength", max.as_str()),
        ] {
            args.push(k.to_string());
            args.push(v.to_string());
        }
    }
    if cfg.argument_style != ArgumentStyle::Classic {
        let uri = format!("http://{}:{}/", host, port);
        for (k, v) in [
            ("--functions-uri", uri.as_str()),
            ("--functions-worker-id", spec.worker_id.as_str()),
            ("--functions-request-id", spec.request_id),
            ("--functions-grpc-max-message-length", max.as_str()),
        ] {
            args.push(k.to_string());
            args.push(v.to_string());
        }
    }
    args.extend(cfg.worker_arguments.iter().cloned());
    args
}

/// Starts the worker; its exit (or the kill) is reported as
/// a [`WorkerExit`] handed to `on_exit`.
pub(crate) fn spawn_worker<F, Fut>(
    spec: &LaunchSpec<'_>,
    on_exit: F,
) -> std::io::Result<WorkerProcess>
where
    F: FnOnce(WorkerExit) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let mut cmd = Command::new(&spec.config.executable);
    cmd.args(command_line(spec))
        .current_dir(spec.app_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group: a terminal's Ctrl-C reaches the host only,
        // and the host ends its workers in order.
        .process_group(0);
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if is_withheld(&name) || is_exporter_credential(&name) {
            cmd.env_remove(&key);
        }
    }
    cmd.envs(&spec.config.environment);
    cmd.env("FUNCTIONS_WORKER_ID", spec.worker_id.as_str());
    cmd.env(LAUNCH_SECRET_ENV, spec.launch_secret);
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let short = short_id(spec.worker_id).to_string();
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward_output(out, short.clone(), "stdout"));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward_output(err, short, "stderr"));
    }
    let (kill, kill_rx) = oneshot::channel::<()>();
    let worker_id = spec.worker_id.clone();
    tokio::spawn(async move {
        // A fired or dropped kill handle both mean: end the process now.
        let status = tokio::select! {
            status = child.wait() => status,
            _ = kill_rx => {
                // The group first: a wrapper (a shell, a launcher) must not
                // leave the real worker running.
                kill_group(pid).await;
                let _ = child.start_kill();
                child.wait().await
            }
        };
        // Whatever the worker left behind in its group goes with it. The
        // group id cannot be reused while any member of the group lives.
        kill_group(pid).await;
        let status = match status {
            Ok(s) => describe_exit(s),
            Err(e) => format!("exit status unknown ({e})"),
        };
        on_exit(WorkerExit { worker_id, status }).await;
    });
    Ok(WorkerProcess { pid, kill })
}

/// SIGKILL to the worker's process group (its own, see `process_group(0)`).
async fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid else { return };
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

async fn forward_output(stream: impl AsyncRead + Unpin, worker: String, which: &'static str) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "fnhost::worker_output", worker = %worker, stream = which, "{line}");
    }
}

/// "exit code 3" or "killed by signal 9".
pub(crate) fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => "unknown exit status".to_string(),
    }
}

/// The first 8 characters of an id, for log lines.
pub(crate) fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    fn cfg(style: ArgumentStyle) -> WorkerLaunchConfig {
        WorkerLaunchConfig {
            language: "python".into(),
            executable: PathBuf::from("/usr/bin/python3"),
            arguments: vec!["-m".into(), "worker".into()],
            worker_path: None,
            worker_arguments: vec!["--x".into()],
            argument_style: style,
            environment: BTreeMap::new(),
            directory: PathBuf::from("/w"),
            extensions: vec![],
            worker_indexing: false,
        }
    }

    fn line(style: ArgumentStyle) -> Vec<String> {
        let c = cfg(style);
        command_line(&LaunchSpec {
            config: &c,
            app_dir: Path::new("/app"),
            grpc_addr: "127.0.0.1:5000".parse().unwrap(),
            worker_id: &WorkerId::from("w1"),
            request_id: "r1",
            launch_secret: "s3cret",
            max_message_bytes: 1024,
        })
    }

    #[test]
    fn classic_style_uses_the_older_argument_set_only() {
        let l = line(ArgumentStyle::Classic).join(" ");
        assert!(
            !l.contains("s3cret"),
            "the secret never goes on the command line"
        );
        assert_eq!(
            l,
            "-m worker --host 127.0.0.1 --port 5000 --workerId w1 --requestId r1 --grpcMaxMessageLength 1024 --x"
        );
    }

    #[test]
    fn functions_style_uses_the_uri_set() {
        let l = line(ArgumentStyle::Functions).join(" ");
        assert!(
            l.contains("--functions-uri http://127.0.0.1:5000/ --functions-worker-id w1"),
            "{l}"
        );
        assert!(!l.contains("--workerId"), "{l}");
        let both = line(ArgumentStyle::Both).join(" ");
        assert!(
            both.contains("--workerId w1") && both.contains("--functions-worker-id w1"),
            "{both}"
        );
    }
}
