//! Where a handler panicked, for the failure's `RpcException.stack_trace`.
//!
//! A panic hook (installed once, chained to the one before it, so the panic
//! is still printed to stderr and a hook the program set first still runs)
//! records the location, and a backtrace when `RUST_BACKTRACE` asks for one,
//! on the panicking thread. The invocation task clears the record before
//! each poll of the handler and, when the poll unwinds, takes it on that
//! same thread, so a record is only ever the handler's own panic.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::RefCell;
use std::sync::Once;

thread_local! {
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs the recording hook (once per process).
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            let mut trace = match info.location() {
                Some(l) => format!("panicked at {}:{}:{}", l.file(), l.line(), l.column()),
                None => "panicked at an unknown location".to_string(),
            };
            let backtrace = Backtrace::capture();
            if backtrace.status() == BacktraceStatus::Captured {
                trace.push('\n');
                trace.push_str(&handler_frames(&backtrace.to_string()));
            }
            // `try_with`: never a second panic while a thread is torn down.
            let _ = LAST.try_with(|last| *last.borrow_mut() = Some(trace));
        }));
    });
}

/// The frames of a rendered backtrace that belong to the handler: those
/// after the panic machinery (this hook, `std::panicking`,
/// `core::panicking`) and before the SDK's own task and the runtime.
fn handler_frames(rendered: &str) -> String {
    // A frame is its `N: symbol` line and the `at file:line` lines under it.
    let mut frames: Vec<Vec<&str>> = Vec::new();
    for line in rendered.lines() {
        let head = line.trim_start();
        let numbered = head
            .split_once(": ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        match frames.last_mut() {
            Some(frame) if !numbered => frame.push(line),
            _ => frames.push(vec![line]),
        }
    }
    fn symbol<'a>(frame: &[&'a str]) -> &'a str {
        frame.first().copied().unwrap_or_default()
    }
    let machinery = [
        "panic_trace::",
        "std::panicking",
        "core::panicking",
        "rust_begin_unwind",
        "std::sys::backtrace",
        "Box<dyn",
    ];
    // The frames the panic begins with are its machinery; the handler's
    // own come right after them.
    let start = frames
        .iter()
        .position(|f| !machinery.iter().any(|m| symbol(f).contains(m)))
        .unwrap_or(frames.len());
    let end = frames[start..]
        .iter()
        .position(|f| symbol(f).contains("fnhost_worker::dispatcher::"))
        .map_or(frames.len(), |i| start + i);
    frames[start..end]
        .iter()
        .flatten()
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

/// The record of the last panic on this thread, if any (and clears it).
pub(crate) fn take() -> Option<String> {
    LAST.try_with(|last| last.borrow_mut().take())
        .ok()
        .flatten()
}

/// Forgets any record on this thread (one left by a panic that something
/// else caught).
pub(crate) fn clear() {
    let _ = LAST.try_with(|last| last.borrow_mut().take());
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_handler_frames_of_a_backtrace_are_kept() {
        let rendered = "   0: fnhost_worker::panic_trace::install::{{closure}}
             at ./src/panic_trace.rs:29:29
   1: std::panicking::panic_with_hook
   2: core::panicking::panic_fmt
             at core/src/panicking.rs:80:14
   3: my_app::handler::{{closure}}
             at ./src/main.rs:100:5
   4: fnhost_worker::WorkerBuilder::function::{{closure}}
   5: fnhost_worker::dispatcher::Dispatcher::invoke::{{closure}}
   6: tokio::runtime::task::core::Core<T,S>::poll";
        assert_eq!(
            super::handler_frames(rendered),
            "   3: my_app::handler::{{closure}}
             at ./src/main.rs:100:5
   4: fnhost_worker::WorkerBuilder::function::{{closure}}"
        );
    }

    #[test]
    fn a_caught_panic_leaves_its_location() {
        super::install();
        let line = line!() + 1;
        let caught = std::panic::catch_unwind(|| panic!("on purpose"));
        assert!(caught.is_err());
        let trace = super::take().expect("recorded");
        assert!(
            trace.starts_with(&format!("panicked at {}:{line}:", file!())),
            "{trace}"
        );
        assert!(super::take().is_none(), "taken once");
    }
}
