//! W3C `traceparent` fields, read the same way by the host (which takes a
//! caller's) and the worker SDK (which hands the host's to user code).

/// `len` lowercase hex digits, not all zeros (a valid trace or span id).
pub fn is_hex_id(s: &str, len: usize) -> bool {
    s.len() == len && is_lower_hex(s) && s.bytes().any(|b| b != b'0')
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The trace id, span id and flags of a valid `traceparent`: version `00`
/// with exactly four fields, or a later version (not `ff`) with at least
/// four, whose first four are read; lowercase hex ids not all zeros.
pub fn parse_traceparent(text: &str) -> Option<(&str, &str, u8)> {
    let parts: Vec<&str> = text.trim().split('-').collect();
    let (version, rest) = parts.split_first()?;
    if version.len() != 2 || !is_lower_hex(version) || *version == "ff" {
        return None;
    }
    if (*version == "00" && rest.len() != 3) || rest.len() < 3 {
        return None;
    }
    let (trace_id, span_id, flags) = (rest[0], rest[1], rest[2]);
    if !is_hex_id(trace_id, 32) || !is_hex_id(span_id, 16) || flags.len() != 2 {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace_id, span_id, flags))
}
