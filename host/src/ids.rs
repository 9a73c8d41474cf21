//! Identifiers as their own types, so an invocation's id cannot be passed
//! where a worker's or an async event's is meant. Each is text on the wire
//! (JSON, SQL, proto) and converts there: `From<String>` in, `as_str()` or
//! `Display` out.
//!
//! The text is shared (`Arc<str>`): an invocation's id is held by the
//! dispatcher's map, its record, its timer, its instance's in-flight set
//! and its caller, and a clone is a reference count, not a copy.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(Arc<str>);

        impl $name {
            /// A fresh random id (a v4 UUID in text form).
            pub fn random() -> Self {
                Self::of_uuid(uuid::Uuid::new_v4())
            }

            /// `id` in its hyphenated lower-case text, formatted on the
            /// stack and allocated once.
            fn of_uuid(id: uuid::Uuid) -> Self {
                let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
                Self(Arc::from(&*id.hyphenated().encode_lower(&mut text)))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id's text, owned.
            pub fn into_string(self) -> String {
                self.0.to_string()
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d).map(Self::from)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(Arc::from(s))
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(Arc::from(s))
            }
        }

        impl From<&$name> for $name {
            fn from(id: &$name) -> Self {
                id.clone()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0.to_string()
            }
        }

        /// Read as text where text is wanted (`as_deref()` on an
        /// `Option` of it, `str` methods).
        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        /// Maps keyed by the id are looked up by `&str` at the edges.
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                &*self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                &*self.0 == *other
            }
        }
    };
}

id_type!(
    /// Identifier of one invocation (a UUID in text form).
    InvocationId
);
id_type!(
    /// Identifier of one worker instance (the host's launch id).
    WorkerId
);
id_type!(
    /// Identifier of one async event (its `requestId`).
    RequestId
);

impl RequestId {
    /// A fresh id for an event stored now: a v7 UUID, whose first 48 bits
    /// are the time in milliseconds and whose other 74 are random. The
    /// store's key and log-line indexes are ordered by it, so the events
    /// of one commit land on a few adjacent index pages instead of one
    /// random page each (each written whole to the WAL at every commit).
    pub fn time_ordered() -> Self {
        Self::of_uuid(uuid::Uuid::now_v7())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_plain_text_in_json_and_looks_up_by_str() {
        let id = RequestId::from("91c0");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"91c0\"");
        let back: RequestId = serde_json::from_str("\"91c0\"").unwrap();
        assert_eq!(back, id);
        assert_eq!(format!("{id} {id:?}"), "91c0 \"91c0\"");
        let map = std::collections::HashMap::from([(id.clone(), 1)]);
        assert_eq!(map.get("91c0"), Some(&1));
    }

    #[test]
    fn a_random_id_is_a_v4_uuid_and_clones_share_its_text() {
        let id = InvocationId::random();
        let parsed = uuid::Uuid::parse_str(id.as_str()).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(id.as_str(), parsed.hyphenated().to_string());
        let copy = id.clone();
        assert!(std::ptr::eq(id.as_str(), copy.as_str()));
        assert_ne!(InvocationId::random(), id);
    }

    #[test]
    fn event_ids_are_v7_uuids_that_sort_in_the_order_they_were_made() {
        let ids: Vec<RequestId> = (0..1000).map(|_| RequestId::time_ordered()).collect();
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id.as_str()).unwrap();
            assert_eq!(parsed.get_version_num(), 7);
        }
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids, "made one after another, they sort so");
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
    }
}
