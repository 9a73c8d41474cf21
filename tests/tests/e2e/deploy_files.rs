//! The deployment files: `Dockerfile`, `deploy/systemd/` and
//! `deploy/kubernetes/`. Schema-free checks that they parse, agree with the
//! host's routes, flags and port, and give a stopping host more time than
//! its shutdown bound.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use fnhost_e2e::{binary, repo_root, Api, TempDir, TestApp};
use serde_json::json;
use serde_yaml_ng::Value as Yaml;

/// The HTTP port the image exposes and the manifests probe.
const HTTP_PORT: u64 = 7071;

/// Where the Dockerfile puts the app.
const WWWROOT: &str = "/home/site/wwwroot";

fn read(rel: &str) -> String {
    let path = repo_root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `*.yaml` / `*.yml` in `deploy/kubernetes`, parsed (one document each).
fn manifests() -> Vec<(PathBuf, Yaml)> {
    let dir = repo_root().join("deploy/kubernetes");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let doc: Yaml = serde_yaml_ng::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
            (path, doc)
        })
        .collect()
}

/// The one manifest of `kind`.
fn manifest(kind: &str) -> Yaml {
    let mut found: Vec<Yaml> = manifests()
        .into_iter()
        .map(|(_, doc)| doc)
        .filter(|doc| doc["kind"].as_str() == Some(kind))
        .collect();
    assert_eq!(found.len(), 1, "expected one {kind} in deploy/kubernetes");
    found.remove(0)
}

/// The Deployment's fnhost container.
fn container(deployment: &Yaml) -> &Yaml {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("the Deployment has containers");
    containers
        .iter()
        .find(|c| c["name"].as_str() == Some("fnhost"))
        .expect("a container named fnhost")
}

/// The container port a probe or service names, by number or by name.
fn resolve_port(container: &Yaml, port: &Yaml) -> u64 {
    if let Some(n) = port.as_u64() {
        return n;
    }
    let name = port.as_str().expect("a port is a number or a name");
    container["ports"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|p| p["name"].as_str() == Some(name))
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no container port named {name}"))
}

/// The host's shutdown bound (README "Cancellation and termination") from
/// the real defaults, with a pre-stop hook configured (its timeout counts
/// only then), plus `readiness_delay`.
fn shutdown_bound(readiness_delay: Duration) -> Duration {
    let dir = TempDir::new("fnhost-deploy-bound").unwrap();
    let path = dir.path().join("host.json");
    std::fs::write(&path, json!({"lifecycle": {"preStop": {}}}).to_string()).unwrap();
    let cfg = fnhost::config::HostConfig::load(&path).expect("defaults load");
    let pre_stop = cfg.lifecycle.pre_stop.expect("a pre-stop hook").timeout;
    cfg.cancel_grace + pre_stop + cfg.terminate_grace + Duration::from_secs(3) + readiness_delay
}

/// The `shutdown.readinessDelay` that deployment.yaml tells the app to set.
fn kubernetes_readiness_delay() -> Duration {
    let text = read("deploy/kubernetes/deployment.yaml");
    let value = text
        .split("\"readinessDelay\":")
        .nth(1)
        .and_then(|rest| rest.split('"').nth(1))
        .expect("deployment.yaml says which shutdown.readinessDelay to set in host.json");
    fnhost::config::parse_timespan(value).expect("a valid readinessDelay")
}

/// `(section, key, value)` of a systemd unit, in order.
fn unit_settings(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.trim();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with(';'))
        {
            continue;
        }
        if let Some(continued) = line.strip_suffix('\\') {
            pending.push_str(continued);
            pending.push(' ');
            continue;
        }
        let line = std::mem::take(&mut pending) + line;
        if line.starts_with('[') && line.ends_with(']') {
            section = line[1..line.len() - 1].to_string();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not a setting: {line}"));
        out.push((
            section.clone(),
            key.trim().to_string(),
            value.trim().to_string(),
        ));
    }
    out
}

fn unit() -> Vec<(String, String, String)> {
    unit_settings(&read("deploy/systemd/fnhost.service"))
}

/// The last value of `key` in `[Service]` (later settings override).
fn service_setting(settings: &[(String, String, String)], key: &str) -> Option<String> {
    settings
        .iter()
        .rev()
        .find(|(s, k, _)| s == "Service" && k == key)
        .map(|(_, _, v)| v.clone())
}

/// A systemd time span: `60`, `60s`, `1min 30s`, `500ms`.
fn systemd_span(text: &str) -> Duration {
    let mut total = Duration::ZERO;
    for part in text.split_whitespace() {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        let n: u64 = digits.parse().unwrap_or_else(|_| panic!("bad time {text}"));
        total += match &part[digits.len()..] {
            "" | "s" | "sec" => Duration::from_secs(n),
            "ms" | "msec" => Duration::from_millis(n),
            "m" | "min" => Duration::from_secs(60 * n),
            "h" | "hr" => Duration::from_secs(3600 * n),
            unit => panic!("unknown time unit {unit} in {text}"),
        };
    }
    total
}

/// Dockerfile instructions `(INSTRUCTION, arguments)`, continuations joined.
fn dockerfile() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in read("Dockerfile").lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (pending.is_empty() && trimmed.is_empty()) {
            continue;
        }
        if let Some(continued) = trimmed.strip_suffix('\\') {
            pending.push_str(continued);
            pending.push(' ');
            continue;
        }
        let full = std::mem::take(&mut pending) + trimmed;
        let (instruction, args) = full.split_once(char::is_whitespace).unwrap_or((&full, ""));
        out.push((instruction.to_ascii_uppercase(), args.trim().to_string()));
    }
    out
}

/// The image's `ENTRYPOINT` followed by its `CMD`, in exec form.
fn image_command() -> Vec<String> {
    let exec_form = |instruction: &str| -> Vec<String> {
        dockerfile()
            .into_iter()
            .rfind(|(i, _)| i == instruction)
            .map(|(_, args)| {
                serde_json::from_str(&args).unwrap_or_else(|e| {
                    panic!("{instruction} should be in exec form (a JSON array): {e}")
                })
            })
            .unwrap_or_default()
    };
    let mut command = exec_form("ENTRYPOINT");
    command.extend(exec_form("CMD"));
    command
}

/// The `--flags` that `fnhost start --help` lists.
fn start_flags() -> BTreeSet<String> {
    let out = Command::new(binary("fnhost"))
        .args(["start", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success(), "fnhost start --help failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.split('=').next().unwrap().to_string())
        .collect()
}

/// `--flag`s in a command line, `--flag=value` included.
fn flags_of<'a>(args: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    args.into_iter()
        .filter(|a| a.starts_with("--") && a.len() > 2)
        .map(|a| a.split('=').next().unwrap().to_string())
        .collect()
}

/// The value after `flag` in `args`.
fn flag_value<'a>(args: &[&'a str], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| *a == flag)
        .and_then(|i| args.get(i + 1).copied())
}

#[test]
fn kubernetes_manifests_parse_as_yaml() {
    let docs = manifests();
    let mut kinds = BTreeSet::new();
    for (path, doc) in &docs {
        for field in ["apiVersion", "kind"] {
            assert!(
                doc[field].as_str().is_some(),
                "{} has no {field}",
                path.display()
            );
        }
        assert!(
            doc["metadata"]["name"].as_str().is_some(),
            "{} has no metadata.name",
            path.display()
        );
        kinds.insert(doc["kind"].as_str().unwrap().to_string());
    }
    for kind in ["Deployment", "Service", "Secret", "PodDisruptionBudget"] {
        assert!(kinds.contains(kind), "no {kind} among {kinds:?}");
    }
}

#[test]
fn kubernetes_probes_use_the_host_routes_on_the_container_port() {
    let deployment = manifest("Deployment");
    let c = container(&deployment);
    let ports: Vec<u64> = c["ports"]
        .as_sequence()
        .expect("the container declares its ports")
        .iter()
        .filter_map(|p| p["containerPort"].as_u64())
        .collect();
    assert_eq!(
        ports,
        [HTTP_PORT],
        "the container port is the host's --port"
    );
    let expected = [
        ("startupProbe", "/livez"),
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/livez"),
    ];
    for (probe, path) in expected {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(resolve_port(c, &get["port"]), HTTP_PORT, "{probe}'s port");
        // The host's probes wait up to 2 s for the dispatcher.
        let timeout = c[probe]["timeoutSeconds"].as_u64().unwrap_or(1);
        assert!(
            timeout > 2,
            "{probe} timeoutSeconds {timeout} is not above 2"
        );
    }

    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let service = manifest("Service");
    for (key, value) in service["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(
            &pod_labels[key.as_str().unwrap()],
            value,
            "Service selector"
        );
    }
    for port in service["spec"]["ports"].as_sequence().unwrap() {
        assert_eq!(resolve_port(c, &port["targetPort"]), HTTP_PORT);
    }
    let pdb = manifest("PodDisruptionBudget");
    for (key, value) in pdb["spec"]["selector"]["matchLabels"].as_mapping().unwrap() {
        assert_eq!(&pod_labels[key.as_str().unwrap()], value, "PDB selector");
    }
}

#[tokio::test]
async fn kubernetes_probe_paths_answer_on_a_running_host() {
    let deployment = manifest("Deployment");
    let c = container(&deployment);
    let mut paths: Vec<String> = ["startupProbe", "readinessProbe", "livenessProbe"]
        .iter()
        .map(|p| c[*p]["httpGet"]["path"].as_str().unwrap().to_string())
        .collect();
    paths.push("/healthz".into());
    let app = TestApp::sample(json!({}));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    for path in &paths {
        assert_eq!(api.get_status(path, None).await, 200, "GET {path}");
    }
    host.shutdown().await;
}

#[test]
fn termination_grace_period_exceeds_the_shutdown_bound() {
    let bound = shutdown_bound(kubernetes_readiness_delay());
    let deployment = manifest("Deployment");
    let grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds is set");
    assert!(
        Duration::from_secs(grace) > bound,
        "terminationGracePeriodSeconds {grace} s is not above the shutdown bound {bound:?}"
    );
}

#[test]
fn systemd_unit_has_the_required_settings() {
    let settings = unit();
    let get = |key: &str| service_setting(&settings, key);
    let expected = [
        ("Type", "notify"),
        ("KillMode", "mixed"),
        ("Restart", "on-failure"),
        ("StateDirectory", "fnhost"),
        ("EnvironmentFile", "-/etc/fnhost/fnhost.env"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
    ];
    for (key, value) in expected {
        assert_eq!(get(key).as_deref(), Some(value), "{key}");
    }
    let prevent = get("RestartPreventExitStatus").expect("RestartPreventExitStatus");
    assert!(
        prevent.split_whitespace().any(|s| s == "2"),
        "configuration errors (exit 2) are not restarted: {prevent}"
    );
    let user = get("User");
    assert!(
        get("DynamicUser").as_deref() == Some("yes")
            || user.as_deref().is_some_and(|u| u != "root" && u != "0"),
        "the service runs as a dedicated user, not {user:?}"
    );
    // Node's and Python's JITs need writable executable memory.
    assert_ne!(get("MemoryDenyWriteExecute").as_deref(), Some("yes"));

    let exec = get("ExecStart").expect("ExecStart");
    let args: Vec<&str> = exec.split_whitespace().collect();
    assert!(args[0].ends_with("/fnhost") && args[1] == "start", "{exec}");
    assert_eq!(
        flag_value(&args, "--data-dir"),
        Some("/var/lib/fnhost"),
        "the data directory is the StateDirectory"
    );

    let env = read("deploy/systemd/fnhost.env.example");
    assert!(
        env.contains("FNHOST_ADMIN_KEY="),
        "the example names the admin key"
    );
}

#[test]
fn systemd_stop_timeout_exceeds_the_shutdown_bound() {
    // The unit runs with the default readinessDelay (0).
    let bound = shutdown_bound(Duration::ZERO);
    let settings = unit();
    let stop = service_setting(&settings, "TimeoutStopSec").expect("TimeoutStopSec is set");
    let stop = systemd_span(&stop);
    assert!(
        stop > bound,
        "TimeoutStopSec {stop:?} is not above the shutdown bound {bound:?}"
    );
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("systemd-analyze").is_file()))
        .unwrap_or(false);
    if !found {
        eprintln!("skipping: systemd-analyze is not on PATH");
        return;
    }
    // verify checks that ExecStart's binary exists: point it at the build's.
    let text = read("deploy/systemd/fnhost.service");
    let exec = service_setting(&unit(), "ExecStart").unwrap();
    let installed = exec.split_whitespace().next().unwrap().to_string();
    let fnhost = binary("fnhost");
    let dir = TempDir::new("fnhost-unit").unwrap();
    let path = dir.path().join("fnhost.service");
    let local = text.replace(&installed, &fnhost.display().to_string());
    std::fs::write(&path, local).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed: {stderr}"
    );
    let own: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("fnhost.service"))
        .collect();
    assert!(own.is_empty(), "systemd-analyze verify warned: {own:?}");
}

#[test]
fn dockerfile_builds_in_two_stages_and_runs_as_a_non_root_user() {
    let instructions = dockerfile();
    let froms: Vec<&str> = instructions
        .iter()
        .filter(|(i, _)| i == "FROM")
        .map(|(_, a)| a.as_str())
        .collect();
    assert_eq!(froms.len(), 2, "two stages: {froms:?}");
    let build: Vec<&str> = froms[0].split_whitespace().collect();
    assert_eq!(build[0], "rust:1-bookworm");
    assert!(
        build.len() == 3 && build[1].eq_ignore_ascii_case("AS"),
        "the build stage is named: {}",
        froms[0]
    );
    assert_eq!(froms[1], "debian:bookworm-slim");
    let has = |instruction: &str, needle: &str| {
        instructions
            .iter()
            .any(|(i, a)| i == instruction && a.contains(needle))
    };
    assert!(
        has("COPY", &format!("--from={}", build[2])),
        "the runtime copies from the build stage"
    );
    assert!(has("RUN", "cargo build --release"));
    assert!(has("RUN", "python3") && has("RUN", "nodejs"));
    let user = instructions
        .iter()
        .rfind(|(i, _)| i == "USER")
        .map(|(_, a)| a.clone())
        .expect("a USER");
    let name = user.split(':').next().unwrap();
    assert!(name != "root" && name != "0", "USER {user} is root");
    assert!(
        name.parse::<u32>().is_ok(),
        "USER {user} is numeric, so runAsNonRoot can check it"
    );
    let exposed: Vec<&str> = instructions
        .iter()
        .filter(|(i, _)| i == "EXPOSE")
        .flat_map(|(_, a)| a.split_whitespace())
        .collect();
    assert_eq!(exposed, [HTTP_PORT.to_string()]);
    assert!(has("STOPSIGNAL", "SIGTERM"));
    assert!(!instructions.iter().any(|(i, _)| i == "HEALTHCHECK"));
    assert!(has("COPY", WWWROOT), "the app is copied to {WWWROOT}");

    let command = image_command();
    let args: Vec<&str> = command.iter().map(String::as_str).collect();
    let start = args
        .iter()
        .position(|a| *a == "start")
        .expect("the image runs fnhost start");
    assert!(args[start - 1].ends_with("fnhost"), "{args:?}");
    assert_eq!(args.get(start + 1), Some(&WWWROOT), "the app directory");
    let port = flag_value(&args, "--port").map_or(HTTP_PORT, |p| p.parse().unwrap());
    assert_eq!(port, HTTP_PORT, "EXPOSE matches --port");
    let data_dir = flag_value(&args, "--data-dir").expect("--data-dir");
    assert!(
        has("VOLUME", "/var/lib/fnhost") && data_dir.starts_with("/var/lib/fnhost"),
        "the data directory {data_dir} is on the volume"
    );
}

#[test]
fn deploy_files_pass_only_flags_fnhost_start_accepts() {
    let accepted = start_flags();
    let image = image_command();
    let exec = service_setting(&unit(), "ExecStart").unwrap();
    let deployment = manifest("Deployment");
    let container_args: Vec<String> = ["command", "args"]
        .iter()
        .flat_map(|k| container(&deployment)[*k].as_sequence().cloned())
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let sources = [
        ("Dockerfile", flags_of(image.iter().map(String::as_str))),
        ("fnhost.service", flags_of(exec.split_whitespace())),
        (
            "deployment.yaml",
            flags_of(container_args.iter().map(String::as_str)),
        ),
    ];
    for (file, flags) in sources {
        for flag in flags {
            assert!(
                accepted.contains(&flag),
                "{file} passes {flag}, which `fnhost start --help` does not list ({accepted:?})"
            );
        }
    }
}

/// At this commit the host binds HTTP to 127.0.0.1 only, so a container's
/// port cannot be reached from outside it. Once `fnhost start` offers a
/// bind option, the image must use it to listen on every interface.
#[test]
fn the_image_listens_on_all_interfaces() {
    let accepted = start_flags();
    let flag = "--bind";
    assert!(accepted.contains(flag), "`fnhost start` takes {flag}");
    let command = image_command();
    let args: Vec<&str> = command.iter().map(String::as_str).collect();
    let value = flag_value(&args, flag);
    assert!(
        value.is_some_and(|v| v.starts_with("0.0.0.0") || v.starts_with("[::]") || v == "::"),
        "the Dockerfile's ENTRYPOINT should pass {flag} 0.0.0.0 (it has {value:?})"
    );
}
