//! What fnhost tells a handler through trigger metadata, since the protocol
//! has no field for it: the invocation's deadline ([`META_DEADLINE`]) and
//! its attempt ([`META_ATTEMPT`]).
//!
//! A value that is missing or malformed reads as unknown (no deadline,
//! attempt 1) rather than failing the invocation: hosts other than fnhost
//! send neither key.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fnhost_proto::rpc::{typed_data, TypedData};
use fnhost_proto::{META_ATTEMPT, META_DEADLINE};

/// The deadline in `metadata`: Unix milliseconds, UTC.
pub(crate) fn deadline(metadata: &HashMap<String, TypedData>) -> Option<SystemTime> {
    let ms = number(metadata, META_DEADLINE)?;
    if !(ms.is_finite() && ms >= 0.0) {
        tracing::debug!(key = META_DEADLINE, ms, "ignoring a deadline before 1970");
        return None;
    }
    UNIX_EPOCH.checked_add(Duration::from_millis(ms as u64))
}

/// The attempt in `metadata`, 1-based; 1 when absent or not a positive
/// whole number.
pub(crate) fn attempt(metadata: &HashMap<String, TypedData>) -> u32 {
    match number(metadata, META_ATTEMPT) {
        Some(n) if n.fract() == 0.0 && n >= 1.0 && n <= f64::from(u32::MAX) => n as u32,
        Some(n) => {
            tracing::debug!(
                key = META_ATTEMPT,
                n,
                "ignoring an attempt that is not 1 or more"
            );
            1
        }
        None => 1,
    }
}

/// `key` as a number. fnhost sends `TypedData.json` (the published Python
/// worker has no `int` kind); `int`, `double` and `string` are read too.
fn number(metadata: &HashMap<String, TypedData>, key: &str) -> Option<f64> {
    let parsed = match metadata.get(key)?.data.as_ref()? {
        typed_data::Data::Json(s) | typed_data::Data::String(s) => s.trim().parse::<f64>().ok(),
        typed_data::Data::Int(i) => Some(*i as f64),
        typed_data::Data::Double(d) => Some(*d),
        _ => None,
    };
    if parsed.is_none() {
        tracing::debug!(key, "ignoring trigger metadata that is not a number");
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(key: &str, value: TypedData) -> HashMap<String, TypedData> {
        HashMap::from([(key.to_string(), value)])
    }

    #[test]
    fn the_deadline_is_unix_milliseconds() {
        let m = meta(META_DEADLINE, TypedData::json("1733256000123"));
        assert_eq!(
            deadline(&m),
            Some(UNIX_EPOCH + Duration::from_millis(1_733_256_000_123))
        );
        let as_int = TypedData {
            data: Some(typed_data::Data::Int(5)),
        };
        assert_eq!(
            deadline(&meta(META_DEADLINE, as_int)),
            Some(UNIX_EPOCH + Duration::from_millis(5))
        );
    }

    #[test]
    fn a_missing_or_bad_deadline_is_none() {
        assert_eq!(deadline(&HashMap::new()), None);
        for bad in [
            TypedData::json("soon"),
            TypedData::json(""),
            TypedData::json("-5"),
            TypedData::json("NaN"),
            TypedData::json("1e400"),
            TypedData::json("{\"ms\": 1}"),
            TypedData::bytes(b"1733256000123".to_vec()),
            TypedData::default(),
        ] {
            assert_eq!(deadline(&meta(META_DEADLINE, bad.clone())), None, "{bad:?}");
        }
    }

    #[test]
    fn the_attempt_is_one_based_and_defaults_to_one() {
        assert_eq!(attempt(&meta(META_ATTEMPT, TypedData::json("3"))), 3);
        assert_eq!(attempt(&meta(META_ATTEMPT, TypedData::string(" 2 "))), 2);
        assert_eq!(attempt(&HashMap::new()), 1);
        for bad in ["0", "-1", "1.5", "x", "", "99999999999", "null"] {
            assert_eq!(
                attempt(&meta(META_ATTEMPT, TypedData::json(bad))),
                1,
                "{bad}"
            );
        }
    }
}
