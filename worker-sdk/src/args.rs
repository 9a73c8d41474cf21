//! Launch arguments the host passes to a worker process.
//!
//! Two spellings exist and both are accepted, in any order, as `--flag value`
//! or `--flag=value`:
//!
//! - older: `--host 127.0.0.1 --port P --workerId ID --requestId ID --grpcMaxMessageLength N`
//! - newer: `--functions-uri http://127.0.0.1:P/ --functions-worker-id ID
//!   --functions-request-id ID --functions-grpc-max-message-length N`
//!
//! When both spellings of one setting are given, the newer one wins. Unknown
//! arguments are ignored.

/// Message size limit used when the host does not pass one (`i32::MAX`, the
/// host's own default).
pub const DEFAULT_GRPC_MAX_MESSAGE_LENGTH: usize = i32::MAX as usize;

/// The connection settings a worker is launched with.
///
/// ```no_run
/// let args = fnhost_worker::LaunchArgs::parse([
///     "--host", "127.0.0.1", "--port", "7071",
///     "--workerId", "w1", "--requestId", "r1",
/// ])?;
/// assert_eq!(args.uri, "http://127.0.0.1:7071");
/// # Ok::<(), fnhost_worker::ArgsError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LaunchArgs {
    /// Endpoint of the host's gRPC server, e.g. `http://127.0.0.1:7071`
    /// (no trailing slash).
    pub uri: String,
    /// The worker id to announce in `StartStream`.
    pub worker_id: String,
    /// The request id stamped on every message the worker sends.
    pub request_id: String,
    /// Maximum gRPC message size in bytes, both directions.
    pub grpc_max_message_length: usize,
    /// The launch secret from `FNHOST_WORKER_SECRET`, presented to the host
    /// as gRPC metadata to prove this process is the one it launched.
    pub launch_secret: Option<LaunchSecret>,
}

/// The environment variable the host puts the launch secret in.
pub const LAUNCH_SECRET_ENV: &str = "FNHOST_WORKER_SECRET";

/// A per-launch secret; its `Debug` output never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct LaunchSecret(String);

impl LaunchSecret {
    /// Wraps a secret given by the host.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for LaunchSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LaunchSecret(<redacted>)")
    }
}

/// A launch argument is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArgsError {
    /// A required argument was not given in either spelling.
    #[error("missing required launch argument {arg}")]
    Missing {
        /// The argument(s), e.g. `--workerId (or --functions-worker-id)`.
        arg: &'static str,
    },
    /// A flag was given as the last argument or followed by another flag.
    #[error("launch argument {arg} has no value")]
    MissingValue {
        /// The flag as given.
        arg: String,
    },
    /// A value could not be parsed.
    #[error("launch argument {arg} has invalid value {value:?}: {reason}")]
    Invalid {
        /// The flag as given.
        arg: String,
        /// The value as given.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
}

#[derive(Default)]
struct Raw {
    host: Option<String>,
    port: Option<String>,
    uri: Option<String>,
    worker_id: [Option<String>; 2],
    request_id: [Option<String>; 2],
    max_len: [Option<(String, String)>; 2],
}

impl LaunchArgs {
    /// Settings for connecting to `uri` (e.g. `http://127.0.0.1:7071`) with
    /// the default message size limit.
    ///
    /// ```no_run
    /// let args = fnhost_worker::LaunchArgs::new("http://127.0.0.1:7071", "w1", "r1");
    /// ```
    pub fn new(
        uri: impl Into<String>,
        worker_id: impl Into<String>,
        request_id: impl Into<String>,
    ) -> Self {
        Self {
            uri: uri.into().trim_end_matches('/').to_string(),
            worker_id: worker_id.into(),
            request_id: request_id.into(),
            grpc_max_message_length: DEFAULT_GRPC_MAX_MESSAGE_LENGTH,
            launch_secret: None,
        }
    }

    /// The same settings presenting `secret` to the host.
    ///
    /// ```no_run
    /// use fnhost_worker::{LaunchArgs, LaunchSecret};
    /// let args = LaunchArgs::new("http://127.0.0.1:7071", "w1", "r1")
    ///     .with_launch_secret(LaunchSecret::new("from-the-host"));
    /// ```
    pub fn with_launch_secret(mut self, secret: LaunchSecret) -> Self {
        self.launch_secret = Some(secret);
        self
    }

    /// Parses the process arguments (`std::env::args()` without the program
    /// name) and takes the launch secret from `FNHOST_WORKER_SECRET`.
    ///
    /// ```no_run
    /// let args = fnhost_worker::LaunchArgs::from_env()?;
    /// # Ok::<(), fnhost_worker::ArgsError>(())
    /// ```
    pub fn from_env() -> Result<Self, ArgsError> {
        let args = Self::parse(std::env::args().skip(1))?;
        Ok(match std::env::var(LAUNCH_SECRET_ENV) {
            Ok(secret) if !secret.is_empty() => args.with_launch_secret(LaunchSecret::new(secret)),
            _ => args,
        })
    }

    /// Parses launch arguments (without the program name). Unknown arguments
    /// are ignored.
    ///
    /// ```no_run
    /// let args = fnhost_worker::LaunchArgs::parse([
    ///     "--functions-uri", "http://127.0.0.1:7071/",
    ///     "--functions-worker-id", "w1",
    ///     "--functions-request-id", "r1",
    /// ])?;
    /// # Ok::<(), fnhost_worker::ArgsError>(())
    /// ```
    pub fn parse<I, S>(args: I) -> Result<Self, ArgsError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let tokens: Vec<String> = args.into_iter().map(Into::into).collect();
        let mut raw = Raw::default();
        let mut i = 0;
        while i < tokens.len() {
            let token = &tokens[i];
            i += 1;
            let Some(flag_body) = token.strip_prefix("--") else {
                continue; // stray positional value: ignored
            };
            let (name, inline) = match flag_body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (flag_body, None),
            };
            let known = matches!(
                name,
                "host"
                    | "port"
                    | "workerId"
                    | "requestId"
                    | "grpcMaxMessageLength"
                    | "functions-uri"
                    | "functions-worker-id"
                    | "functions-request-id"
                    | "functions-grpc-max-message-length"
            );
            if !known {
                continue;
            }
            let value = match inline {
                Some(v) => v,
                None => match tokens.get(i) {
                    Some(v) if !v.starts_with("--") => {
                        i += 1;
                        v.clone()
                    }
                    _ => {
                        return Err(ArgsError::MissingValue {
                            arg: format!("--{name}"),
                        })
                    }
                },
            };
            let flag = format!("--{name}");
            match name {
                "host" => raw.host = Some(value),
                "port" => raw.port = Some(value),
                "functions-uri" => raw.uri = Some(value),
                "workerId" => raw.worker_id[0] = Some(value),
                "functions-worker-id" => raw.worker_id[1] = Some(value),
                "requestId" => raw.request_id[0] = Some(value),
                "functions-request-id" => raw.request_id[1] = Some(value),
                "grpcMaxMessageLength" => raw.max_len[0] = Some((flag, value)),
                _ => raw.max_len[1] = Some((flag, value)),
            }
        }
        raw.finish()
    }
}

fn invalid(arg: &str, value: &str, reason: impl Into<String>) -> ArgsError {
    ArgsError::Invalid {
        arg: arg.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

impl Raw {
    fn finish(self) -> Result<LaunchArgs, ArgsError> {
        let uri = match (self.uri, self.host, self.port) {
            (Some(uri), _, _) => parse_uri(&uri)?,
            (None, Some(host), Some(port)) => {
                let port_num: u16 = port
                    .parse()
                    .map_err(|_| invalid("--port", &port, "expected a port number 0-65535"))?;
                if host.is_empty() {
                    return Err(invalid("--host", &host, "host name is empty"));
                }
                let host = if host.contains(':') && !host.starts_with('[') {
                    format!("[{host}]")
                } else {
                    host
                };
                format!("http://{host}:{port_num}")
            }
            (None, None, _) => {
                return Err(ArgsError::Missing {
                    arg: "--host/--port (or --functions-uri)",
                })
            }
            (None, Some(_), None) => {
                return Err(ArgsError::Missing {
                    arg: "--port (or --functions-uri)",
                })
            }
        };
        let [old_w, new_w] = self.worker_id;
        let worker_id = new_w.or(old_w).ok_or(ArgsError::Missing {
            arg: "--workerId (or --functions-worker-id)",
        })?;
        let [old_r, new_r] = self.request_id;
        let request_id = new_r.or(old_r).ok_or(ArgsError::Missing {
            arg: "--requestId (or --functions-request-id)",
        })?;
        let [old_m, new_m] = self.max_len;
        let grpc_max_message_length = match new_m.or(old_m) {
            None => DEFAULT_GRPC_MAX_MESSAGE_LENGTH,
            Some((flag, v)) => match v.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => return Err(invalid(&flag, &v, "expected a positive number of bytes")),
            },
        };
        Ok(LaunchArgs {
            uri,
            worker_id,
            request_id,
            grpc_max_message_length,
            launch_secret: None,
        })
    }
}

fn parse_uri(uri: &str) -> Result<String, ArgsError> {
    let trimmed = uri.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"))
        .ok_or_else(|| invalid("--functions-uri", uri, "expected http://host:port/"))?;
    if rest.is_empty() || rest.contains('/') {
        return Err(invalid(
            "--functions-uri",
            uri,
            "expected http://host:port/",
        ));
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_style() {
        let a = LaunchArgs::parse([
            "--host",
            "127.0.0.1",
            "--port",
            "5123",
            "--workerId",
            "w-1",
            "--requestId",
            "r-1",
            "--grpcMaxMessageLength",
            "1048576",
        ])
        .unwrap();
        assert_eq!(a.uri, "http://127.0.0.1:5123");
        assert_eq!(a.worker_id, "w-1");
        assert_eq!(a.request_id, "r-1");
        assert_eq!(a.grpc_max_message_length, 1_048_576);
    }

    #[test]
    fn newer_style_with_unknown_args_and_equals() {
        let a = LaunchArgs::parse([
            "worker.py",
            "--functions-uri",
            "http://127.0.0.1:5123/",
            "--verbose",
            "--functions-worker-id=w-2",
            "--functions-request-id",
            "r-2",
            "--functions-grpc-max-message-length",
            "2048",
            "--other",
            "x",
        ])
        .unwrap();
        assert_eq!(a.uri, "http://127.0.0.1:5123");
        assert_eq!(a.worker_id, "w-2");
        assert_eq!(a.request_id, "r-2");
        assert_eq!(a.grpc_max_message_length, 2048);
    }

    #[test]
    fn max_length_defaults_and_ipv6_host_is_bracketed() {
        let a = LaunchArgs::parse([
            "--host",
            "::1",
            "--port",
            "1",
            "--workerId",
            "w",
            "--requestId",
            "r",
        ])
        .unwrap();
        assert_eq!(a.uri, "http://[::1]:1");
        assert_eq!(a.grpc_max_message_length, DEFAULT_GRPC_MAX_MESSAGE_LENGTH);
    }

    #[test]
    fn errors_name_the_argument() {
        let e = LaunchArgs::parse(["--host", "h", "--port", "1", "--requestId", "r"]).unwrap_err();
        assert!(e.to_string().contains("--workerId"), "{e}");

        let e = LaunchArgs::parse(["--workerId", "w", "--requestId", "r"]).unwrap_err();
        assert!(e.to_string().contains("--host"), "{e}");

        let e = LaunchArgs::parse(["--host", "h", "--port", "x", "--workerId", "w"]).unwrap_err();
        assert!(
            matches!(&e, ArgsError::Invalid { arg, .. } if arg == "--port"),
            "{e}"
        );

        let e = LaunchArgs::parse(["--functions-uri", "--functions-worker-id", "w"]).unwrap_err();
        assert_eq!(
            e,
            ArgsError::MissingValue {
                arg: "--functions-uri".into()
            }
        );

        let e = LaunchArgs::parse([
            "--functions-uri=ftp://x",
            "--functions-worker-id=w",
            "--functions-request-id=r",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("--functions-uri"), "{e}");

        let e = LaunchArgs::parse([
            "--functions-uri=http://h:1",
            "--workerId=w",
            "--requestId=r",
            "--grpcMaxMessageLength=-5",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("--grpcMaxMessageLength"), "{e}");
    }
}
