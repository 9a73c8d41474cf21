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
                trace.push_str(&backtrace.to_string());
            }
            // `try_with`: never a second panic while a thread is torn down.
            let _ = LAST.try_with(|last| *last.borrow_mut() = Some(trace));
        }));
    });
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
