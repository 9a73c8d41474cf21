//! One binary for every target: the target's name comes from
//! `FNHOST_FUZZ_TARGET` (libFuzzer owns the command line).

#![no_main]

use std::sync::OnceLock;

fn target() -> &'static fnhost_fuzz::engine::Target {
    static TARGET: OnceLock<&'static fnhost_fuzz::engine::Target> = OnceLock::new();
    TARGET.get_or_init(|| {
        let name = std::env::var("FNHOST_FUZZ_TARGET").expect("FNHOST_FUZZ_TARGET names a target");
        fnhost_fuzz::target(&name).unwrap_or_else(|| panic!("no target {name}"))
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let t = target();
    let data = &data[..data.len().min(t.max_len)];
    let _ = (t.run)(data);
});
