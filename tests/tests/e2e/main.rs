//! End-to-end tests: a real host (library or binary), real worker
//! processes, real sockets on 127.0.0.1.

mod binary;
mod cancel;
mod faults;
mod invoke;
mod rogue;
