//! Process 1. In a container without an init, the host is PID 1: orphans
//! that its workers leave behind (a worker's own children, a shell
//! wrapper's) are re-parented to it, and each turns into a zombie unless
//! PID 1 waits for it. The host's runtime waits only for the children it
//! spawned, so as PID 1 it starts itself again as its only child and stays
//! a small init: it forwards SIGTERM, SIGINT, SIGHUP and SIGQUIT to that
//! child, reaps every process that ends, and exits with the child's
//! status. `FNHOST_NO_INIT=1` skips it (an init such as tini already runs).

use std::process::ExitCode;

use rustix::process::{kill_process, wait, Pid, Signal, WaitOptions};

/// Set in the child so it does not start another init.
const CHILD_ENV: &str = "FNHOST_INIT_CHILD";

/// True when this process should run as the init for a copy of itself.
pub fn needed() -> bool {
    std::process::id() == 1
        && std::env::var_os(CHILD_ENV).is_none()
        && std::env::var_os("FNHOST_NO_INIT").is_none_or(|v| v.is_empty() || v == "0")
}

/// Runs this program again as the only child, with the same arguments,
/// and stays its init until it exits.
pub fn run() -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("fnhost: as PID 1, cannot find its own executable to start the host: {e}");
            return ExitCode::from(1);
        }
    };
    let child = match std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(CHILD_ENV, "1")
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fnhost: as PID 1, cannot start the host: {e}");
            return ExitCode::from(1);
        }
    };
    let Some(host) = Pid::from_raw(child.id() as i32) else {
        return ExitCode::from(1);
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fnhost: as PID 1, cannot start the init's runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(supervise(host))
}

async fn supervise(host: Pid) -> ExitCode {
    use tokio::signal::unix::{signal, SignalKind};
    let streams = [
        (SignalKind::terminate(), Signal::TERM),
        (SignalKind::interrupt(), Signal::INT),
        (SignalKind::hangup(), Signal::HUP),
        (SignalKind::quit(), Signal::QUIT),
    ];
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (kind, sig) in streams {
        let Ok(mut s) = signal(kind) else { continue };
        let tx = tx.clone();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                if tx.send(sig).is_err() {
                    return;
                }
            }
        });
    }
    let mut children = match signal(SignalKind::child()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fnhost: as PID 1, cannot watch for ended processes: {e}");
            return ExitCode::from(1);
        }
    };
    // SIGCHLD can coalesce: look every second as well.
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        if let Some(code) = reap(host) {
            return code;
        }
        tokio::select! {
            Some(sig) = rx.recv() => {
                let _ = kill_process(host, sig);
            }
            _ = children.recv() => {}
            _ = tick.tick() => {}
        }
    }
}

/// Waits for every process that has ended; the host's exit status once it
/// is among them.
fn reap(host: Pid) -> Option<ExitCode> {
    loop {
        // Any child (`waitpid(-1)`), orphans included.
        match wait(WaitOptions::NOHANG) {
            Ok(Some((pid, status))) => {
                if pid == host {
                    let code = status
                        .exit_status()
                        .or_else(|| status.terminating_signal().map(|s| 128 + s))
                        .unwrap_or(1);
                    return Some(ExitCode::from(u8::try_from(code).unwrap_or(1)));
                }
            }
            // None ended (Ok(None)), or no children left (ECHILD).
            Ok(None) | Err(_) => return None,
        }
    }
}
