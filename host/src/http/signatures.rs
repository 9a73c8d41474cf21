//! The signatures the SCF API has accepted, each with the action it was
//! accepted for, so that a signature cannot be replayed under another
//! action.
//!
//! TC3 clients (the official SDKs among them) sign only `content-type;host`,
//! not `X-TC-Action`: without this record a captured `ListAsyncEvents`
//! request, resent within its validity window with
//! `X-TC-Action: TerminateAsyncEvent`, would abort the event. TC3 has no
//! nonce, and two identical requests in the same second carry the same
//! signature (clients polling `GetAsyncEventStatus` send them), so the same
//! signature for the same action stays acceptable, as Tencent's API accepts it.
//!
//! Pure: the caller passes the clock, so tests drive time explicitly.

use std::collections::{BTreeSet, HashMap};

/// The most signatures remembered at once. Only requests that carry a valid
/// signature are recorded, so only the holder of the SecretKey can fill it:
/// 100 000 distinct signed requests within a 5-minute window, about 333 per
/// second sustained. A full cache takes about 13 MB (12.7 MB of resident
/// memory measured for 100 000 entries: the map's slot plus the expiry index).
pub(super) const MAX_SIGNATURES: usize = 100_000;

/// A signature's bytes (HMAC-SHA256). Keyed by the decoded bytes, not the
/// hex text, so upper-casing the hex does not make a "new" signature.
pub(super) type Signature = [u8; 32];

/// What to do with a request whose signature verified.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admission<A> {
    /// Not seen before; now remembered with its action.
    First,
    /// Seen before with the same action: an identical request, accepted.
    Repeat,
    /// Seen before with another action: refuse it.
    Retargeted {
        /// The action the signature was first accepted for.
        first: A,
    },
    /// Every slot holds a signature that is still valid: refuse the request.
    /// `newly` is true for the first refusal since the cache last had room,
    /// so the caller can log once per episode rather than once per request.
    Full { newly: bool },
}

/// The record of accepted signatures; see the module docs.
pub(super) struct SignatureCache<A> {
    capacity: usize,
    /// Each signature's action.
    seen: HashMap<Signature, A>,
    /// `(expires_at, signature)` of every entry, soonest first, so expired
    /// entries are dropped without a scan.
    by_expiry: BTreeSet<(i64, Signature)>,
    full: bool,
}

impl<A: Copy + Eq> SignatureCache<A> {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            seen: HashMap::new(),
            by_expiry: BTreeSet::new(),
            full: false,
        }
    }

    /// Checks `signature` for `action` at `now` (Unix seconds) and records
    /// it if new. `expires_at` is the last second at which the verifier
    /// still accepts the signature (its timestamp + the allowed skew); the
    /// entry is kept until then, since a replay after it fails as expired.
    ///
    /// When the cache is full of unexpired entries, a new signature is
    /// refused rather than an old one forgotten: forgetting would reopen
    /// retargeting for that signature for the rest of its window, and only
    /// the key holder can fill the cache (see [`MAX_SIGNATURES`]).
    pub(super) fn admit(
        &mut self,
        signature: Signature,
        action: A,
        expires_at: i64,
        now: i64,
    ) -> Admission<A> {
        self.drop_expired(now);
        if let Some(&first) = self.seen.get(&signature) {
            return match first == action {
                true => Admission::Repeat,
                false => Admission::Retargeted { first },
            };
        }
        if self.seen.len() >= self.capacity {
            let newly = !self.full;
            self.full = true;
            return Admission::Full { newly };
        }
        self.full = false;
        self.seen.insert(signature, action);
        self.by_expiry.insert((expires_at, signature));
        Admission::First
    }

    fn drop_expired(&mut self, now: i64) {
        while let Some(&(expires_at, signature)) = self.by_expiry.first() {
            if expires_at >= now {
                break;
            }
            self.by_expiry.pop_first();
            self.seen.remove(&signature);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Action {
        List,
        Terminate,
    }

    fn sig(n: u8) -> Signature {
        [n; 32]
    }

    #[test]
    fn a_signature_is_accepted_again_for_the_same_action() {
        let mut c = SignatureCache::new(10);
        assert_eq!(c.admit(sig(1), Action::List, 400, 100), Admission::First);
        assert_eq!(c.admit(sig(1), Action::List, 400, 101), Admission::Repeat);
        assert_eq!(c.admit(sig(1), Action::List, 400, 400), Admission::Repeat);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_signature_under_another_action_is_refused_naming_the_first() {
        let mut c = SignatureCache::new(10);
        c.admit(sig(1), Action::List, 400, 100);
        assert_eq!(
            c.admit(sig(1), Action::Terminate, 400, 399),
            Admission::Retargeted {
                first: Action::List
            }
        );
        // The refusal does not rebind the signature.
        assert_eq!(c.admit(sig(1), Action::List, 400, 399), Admission::Repeat);
    }

    #[test]
    fn an_entry_is_kept_through_its_last_valid_second_and_dropped_after() {
        let mut c = SignatureCache::new(10);
        c.admit(sig(1), Action::List, 400, 100);
        assert!(matches!(
            c.admit(sig(1), Action::Terminate, 400, 400),
            Admission::Retargeted { .. }
        ));
        // At 401 the verifier refuses the signature as expired anyway.
        c.admit(sig(2), Action::List, 700, 401);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn expired_entries_make_room_before_the_cache_counts_as_full() {
        let mut c = SignatureCache::new(2);
        c.admit(sig(1), Action::List, 200, 100);
        c.admit(sig(2), Action::List, 500, 100);
        assert_eq!(c.admit(sig(3), Action::List, 500, 201), Admission::First);
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn when_full_of_valid_entries_a_new_signature_is_refused_and_old_ones_kept() {
        let mut c = SignatureCache::new(2);
        c.admit(sig(1), Action::List, 400, 100);
        c.admit(sig(2), Action::List, 300, 100);
        assert_eq!(
            c.admit(sig(3), Action::List, 400, 100),
            Admission::Full { newly: true }
        );
        assert_eq!(
            c.admit(sig(4), Action::List, 400, 101),
            Admission::Full { newly: false }
        );
        // Known signatures still answer as before: nothing was forgotten.
        assert_eq!(c.admit(sig(1), Action::List, 400, 102), Admission::Repeat);
        assert!(matches!(
            c.admit(sig(2), Action::Terminate, 300, 102),
            Admission::Retargeted { .. }
        ));
        // Once the soonest entry expires there is room again, and the next
        // time the cache fills is reported as new.
        assert_eq!(c.admit(sig(3), Action::List, 600, 301), Admission::First);
        assert_eq!(
            c.admit(sig(5), Action::List, 600, 301),
            Admission::Full { newly: true }
        );
    }

    #[test]
    fn entries_expire_in_order_of_expiry_not_of_arrival() {
        let mut c = SignatureCache::new(10);
        // A future-dated signature arrives first but lives longest.
        c.admit(sig(1), Action::List, 700, 100);
        c.admit(sig(2), Action::List, 150, 100);
        c.admit(sig(3), Action::List, 200, 100);
        c.admit(sig(9), Action::List, 900, 160);
        assert_eq!(c.len(), 3, "only sig(2) has expired");
        assert_eq!(c.admit(sig(1), Action::List, 700, 650), Admission::Repeat);
        assert_eq!(c.len(), 2, "sig(3) has expired too");
    }
}
