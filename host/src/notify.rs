//! systemd's readiness protocol (`sd_notify`): with `NOTIFY_SOCKET` set,
//! the host sends `READY=1` once it listens and can serve, `STOPPING=1`
//! as it begins to shut down, and `WATCHDOG=1` every half `WATCHDOG_USEC`
//! while its dispatcher answers. Without `NOTIFY_SOCKET` nothing is sent.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::HostHandle;

/// Sends `state` (e.g. `READY=1`) to the service manager; false when there
/// is none or it cannot be reached (logged).
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let path = path.to_string_lossy().into_owned();
    let sent = UnixDatagram::unbound().and_then(|socket| {
        if let Some(name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            socket.send_to_addr(state.as_bytes(), &addr)
        } else {
            socket.send_to(state.as_bytes(), &path)
        }
    });
    match sent {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(socket = %path, "cannot notify the service manager ({state}): {e}");
            false
        }
    }
}

/// The watchdog interval the service manager asks for, if it asks this
/// process (`WATCHDOG_PID`, when set, names it).
fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Pings the watchdog every half its interval while the dispatcher answers
/// a status request within that time; a host whose dispatcher hangs stops
/// pinging, and the service manager restarts it.
pub fn spawn_watchdog(host: HostHandle) {
    let Some(every) = watchdog_interval() else {
        return;
    };
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match tokio::time::timeout(every, host.status()).await {
                Ok(Some(_)) => {
                    notify("WATCHDOG=1");
                }
                _ => tracing::warn!("the dispatcher did not answer; the watchdog is not pinged"),
            }
        }
    });
}
