//! TC3-HMAC-SHA256, the Tencent Cloud API 3.0 request signature, verified
//! on the server side.
//!
//! `Authorization: TC3-HMAC-SHA256 Credential=<SecretId>/<date>/<service>/tc3_request,
//! SignedHeaders=<h1;h2;...>, Signature=<hex>` where the signature is
//! HMAC-SHA256 over
//!
//! ```text
//! TC3-HMAC-SHA256\n<X-TC-Timestamp>\n<date>/<service>/tc3_request\n<hex sha256(canonical request)>
//! ```
//!
//! keyed by `HMAC(HMAC(HMAC("TC3" + SecretKey, date), service), "tc3_request")`,
//! and the canonical request is
//! `method\npath\nquery\n<name:value\n per signed header>\nsigned headers\nhex sha256(body)`.
//! The documented rule lower-cases header names and values and trims them;
//! the official SDKs send values that are already lower-case (and do not
//! lower-case them), so a signature over the values as sent is accepted too.

use axum::http::HeaderMap;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Signatures further than this from the server clock are expired.
pub(crate) const MAX_SKEW_SECS: i64 = 300;

/// Why a request's signature was not accepted; `code()` is the API error code.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AuthError {
    /// The Authorization header (or a header it relies on) is missing or malformed.
    Invalid(String),
    /// X-TC-Timestamp is more than five minutes from now.
    Expired(String),
    /// The SecretId is not the host's.
    UnknownSecretId(String),
    /// The signature does not match.
    Signature(String),
}

impl AuthError {
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "AuthFailure.InvalidAuthorization",
            Self::Expired(_) => "AuthFailure.SignatureExpire",
            Self::UnknownSecretId(_) => "AuthFailure.SecretIdNotFound",
            Self::Signature(_) => "AuthFailure.SignatureFailure",
        }
    }

    pub(crate) fn message(&self) -> &str {
        match self {
            Self::Invalid(m) | Self::Expired(m) | Self::UnknownSecretId(m) | Self::Signature(m) => {
                m
            }
        }
    }
}

/// The parts of an `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Authorization<'a> {
    pub(crate) secret_id: &'a str,
    pub(crate) date: &'a str,
    pub(crate) service: &'a str,
    pub(crate) signed_headers: &'a str,
    pub(crate) signature: &'a str,
}

pub(crate) fn parse_authorization(value: &str) -> Result<Authorization<'_>, AuthError> {
    let invalid = |why: &str| AuthError::Invalid(format!("the Authorization header {why}"));
    let rest = value
        .strip_prefix("TC3-HMAC-SHA256 ")
        .ok_or_else(|| invalid("does not start with `TC3-HMAC-SHA256 `"))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| invalid("has a part without `=`"))?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    let credential = credential.ok_or_else(|| invalid("has no Credential"))?;
    let mut scope = credential.split('/');
    let (Some(secret_id), Some(date), Some(service), Some("tc3_request"), None) = (
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
    ) else {
        return Err(invalid(
            "Credential is not `<SecretId>/<date>/<service>/tc3_request`",
        ));
    };
    Ok(Authorization {
        secret_id,
        date,
        service,
        signed_headers: signed.ok_or_else(|| invalid("has no SignedHeaders"))?,
        signature: signature.ok_or_else(|| invalid("has no Signature"))?,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    // Digits only: `from_str_radix` also takes a sign, so "+3" read as 0x03
    // and one signature had many spellings.
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn hmac(key: &[u8], msg: &[u8]) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(msg);
    m
}

/// The HMAC over `string_to_sign`, ready to finalize or verify.
fn signer(secret_key: &str, date: &str, service: &str, string_to_sign: &str) -> Hmac<Sha256> {
    let k_date = hmac(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let k_service = hmac(&k_date.finalize().into_bytes(), service.as_bytes());
    let k_signing = hmac(&k_service.finalize().into_bytes(), b"tc3_request");
    hmac(
        &k_signing.finalize().into_bytes(),
        string_to_sign.as_bytes(),
    )
}

/// The hex signature (what a client computes).
#[cfg(test)]
fn sign(secret_key: &str, date: &str, service: &str, string_to_sign: &str) -> String {
    hex(&signer(secret_key, date, service, string_to_sign)
        .finalize()
        .into_bytes())
}

/// One request as the signature sees it.
pub(crate) struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

fn string_to_sign(
    req: &Request<'_>,
    auth: &Authorization<'_>,
    timestamp: &str,
    lower_values: bool,
) -> Result<String, AuthError> {
    let mut canonical = format!("{}\n{}\n{}\n", req.method, req.path, req.query);
    for name in auth.signed_headers.split(';') {
        let value = req
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                AuthError::Invalid(format!(
                    "SignedHeaders names `{name}`, which the request does not carry"
                ))
            })?
            .trim();
        let value = if lower_values {
            value.to_ascii_lowercase()
        } else {
            value.to_string()
        };
        canonical.push_str(&format!("{}:{value}\n", name.to_ascii_lowercase()));
    }
    canonical.push_str(&format!(
        "\n{}\n{}",
        auth.signed_headers,
        hex(&Sha256::digest(req.body))
    ));
    Ok(format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{}/{}/tc3_request\n{}",
        auth.date,
        auth.service,
        hex(&Sha256::digest(canonical.as_bytes()))
    ))
}

/// UTC `YYYY-MM-DD` of a Unix time in seconds.
fn utc_date(secs: i64) -> String {
    crate::events::time::scf(secs * 1000)[..10].to_string()
}

/// A request whose signature matched.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Verified {
    /// The signature's bytes.
    pub signature: [u8; 32],
    /// The last second (Unix time) at which this signature is still
    /// accepted: its X-TC-Timestamp + [`MAX_SKEW_SECS`].
    pub valid_until: i64,
}

/// Verifies `req` against the pair `(secret_id, secret_key)` at `now_secs`.
pub(crate) fn verify(
    req: &Request<'_>,
    secret_id: &str,
    secret_key: &str,
    now_secs: i64,
) -> Result<Verified, AuthError> {
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let value = header("authorization").ok_or_else(|| {
        AuthError::Invalid("the request has no Authorization header (TC3-HMAC-SHA256)".into())
    })?;
    let auth = parse_authorization(value)?;
    let timestamp = header("x-tc-timestamp")
        .ok_or_else(|| AuthError::Invalid("the request has no X-TC-Timestamp header".into()))?;
    let ts: i64 = timestamp.trim().parse().map_err(|_| {
        AuthError::Invalid(format!(
            "X-TC-Timestamp \"{timestamp}\" is not a Unix time in seconds"
        ))
    })?;
    // `abs_diff`: `now - ts` overflows for a timestamp near i64::MIN
    // (a panic in a debug build).
    let skew = now_secs.abs_diff(ts);
    if skew > MAX_SKEW_SECS.unsigned_abs() {
        return Err(AuthError::Expired(format!(
            "signature expired: X-TC-Timestamp {ts} is {skew} s from the server time {now_secs} \
             (at most {MAX_SKEW_SECS} s allowed)"
        )));
    }
    if auth.date != utc_date(ts) {
        return Err(AuthError::Invalid(format!(
            "the Credential date {} is not the UTC date {} of X-TC-Timestamp {ts}",
            auth.date,
            utc_date(ts)
        )));
    }
    if secret_id.len() != auth.secret_id.len()
        || !secret_id
            .bytes()
            .zip(auth.secret_id.bytes())
            .fold(true, |ok, (a, b)| ok & (a == b))
    {
        return Err(AuthError::UnknownSecretId(format!(
            "SecretId \"{}\" does not exist",
            auth.secret_id
        )));
    }
    let given: [u8; 32] = unhex(auth.signature)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| AuthError::Signature("the Signature is not a 64-digit hex string".into()))?;
    for lower in [true, false] {
        let sts = string_to_sign(req, &auth, timestamp, lower)?;
        if signer(secret_key, auth.date, auth.service, &sts)
            .verify_slice(&given)
            .is_ok()
        {
            return Ok(Verified {
                signature: given,
                valid_until: ts + MAX_SKEW_SECS,
            });
        }
    }
    Err(AuthError::Signature(
        "the signature does not match the request (check the SecretKey and the \
         TC3-HMAC-SHA256 canonical request: method, path, query, signed headers, body)"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// Captured from `tencentcloud-sdk-python-common` 3.1.195 (its
    /// `_build_req_with_tc3_signature`, clock fixed at 1795406483), for
    /// SecretId `AKIDtest`, SecretKey `test-secret-key`, endpoint
    /// `127.0.0.1:8080`, action Invoke.
    const SDK_BODY: &str = r#"{"FunctionName": "echo", "ClientContext": "{\"a\": 1}"}"#;
    const SDK_AUTH: &str = "TC3-HMAC-SHA256 Credential=AKIDtest/2026-11-23/scf/tc3_request, \
        SignedHeaders=content-type;host, \
        Signature=836504c182d7c4df7c31a6e3ea48680af141c46dd73cbd73c137d0387a3d144c";
    const SDK_TS: i64 = 1_795_406_483;

    fn headers(auth: &str, ts: i64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
        h.insert("x-tc-action", HeaderValue::from_static("Invoke"));
        h.insert("x-tc-timestamp", HeaderValue::from(ts));
        h.insert("authorization", HeaderValue::from_str(auth).unwrap());
        h
    }

    fn check(h: &HeaderMap, body: &str, id: &str, key: &str, now: i64) -> Result<(), AuthError> {
        verified(h, body, id, key, now).map(|_| ())
    }

    fn verified(
        h: &HeaderMap,
        body: &str,
        id: &str,
        key: &str,
        now: i64,
    ) -> Result<Verified, AuthError> {
        let req = Request {
            method: "POST",
            path: "/",
            query: "",
            headers: h,
            body: body.as_bytes(),
        };
        verify(&req, id, key, now)
    }

    #[test]
    fn the_python_sdk_signature_verifies() {
        let h = headers(SDK_AUTH, SDK_TS);
        assert_eq!(
            check(&h, SDK_BODY, "AKIDtest", "test-secret-key", SDK_TS + 10),
            Ok(())
        );
    }

    #[test]
    fn a_verified_signature_is_valid_until_its_timestamp_plus_the_skew() {
        let h = headers(SDK_AUTH, SDK_TS);
        let v = verified(&h, SDK_BODY, "AKIDtest", "test-secret-key", SDK_TS).unwrap();
        assert_eq!(v.valid_until, SDK_TS + MAX_SKEW_SECS);
        assert_eq!(hex(&v.signature), SDK_AUTH.rsplit('=').next().unwrap());
        // Upper-case hex verifies too, as the same signature bytes.
        let upper = SDK_AUTH.replace(
            "836504c182d7c4df7c31a6e3ea48680af141c46dd73cbd73c137d0387a3d144c",
            "836504C182D7C4DF7C31A6E3EA48680AF141C46DD73CBD73C137D0387A3D144C",
        );
        let h = headers(&upper, SDK_TS);
        let u = verified(&h, SDK_BODY, "AKIDtest", "test-secret-key", SDK_TS).unwrap();
        assert_eq!(u, v);
    }

    #[test]
    fn each_failure_has_its_code() {
        let h = headers(SDK_AUTH, SDK_TS);
        let code = |r: Result<(), AuthError>| r.unwrap_err().code();
        assert_eq!(
            code(check(&h, SDK_BODY, "AKIDtest", "wrong", SDK_TS)),
            "AuthFailure.SignatureFailure"
        );
        assert_eq!(
            code(check(&h, "{}", "AKIDtest", "test-secret-key", SDK_TS)),
            "AuthFailure.SignatureFailure"
        );
        assert_eq!(
            code(check(&h, SDK_BODY, "AKIDother", "test-secret-key", SDK_TS)),
            "AuthFailure.SecretIdNotFound"
        );
        let late = check(&h, SDK_BODY, "AKIDtest", "test-secret-key", SDK_TS + 301);
        assert_eq!(code(late), "AuthFailure.SignatureExpire");
        let early = check(&h, SDK_BODY, "AKIDtest", "test-secret-key", SDK_TS - 301);
        assert_eq!(code(early), "AuthFailure.SignatureExpire");
        // The same signature under a timestamp of another day.
        let h2 = headers(SDK_AUTH, SDK_TS + 86_400);
        let r = check(
            &h2,
            SDK_BODY,
            "AKIDtest",
            "test-secret-key",
            SDK_TS + 86_400,
        );
        assert!(r.unwrap_err().message().contains("UTC date"));
        let h3 = headers(
            &SDK_AUTH.replace("content-type;host", "content-type;host;x-tc-region"),
            SDK_TS,
        );
        let r = check(&h3, SDK_BODY, "AKIDtest", "test-secret-key", SDK_TS);
        assert!(r.unwrap_err().message().contains("x-tc-region"));
        for bad in ["Basic abc", "TC3-HMAC-SHA256 Credential=a/b, Signature=00"] {
            let r = check(&headers(bad, SDK_TS), "", "a", "k", SDK_TS);
            assert_eq!(code(r), "AuthFailure.InvalidAuthorization", "{bad}");
        }
    }

    #[test]
    fn a_signature_with_a_signed_hex_digit_is_refused() {
        // Found by the fuzz target `tc3`: "+3" parsed as the byte 0x03.
        assert_eq!(unhex("+3"), None);
        assert_eq!(unhex("0a+f"), None);
        assert_eq!(unhex("0aFf"), Some(vec![0x0a, 0xff]));
        // The SDK's signature, its byte 0x04 spelled "+4".
        let sig = SDK_AUTH.rsplit('=').next().unwrap();
        let plus = sig.replacen("836504", "8365+4", 1);
        let h = headers(&SDK_AUTH.replace(sig, &plus), SDK_TS);
        let r = check(&h, SDK_BODY, "AKIDtest", "test-secret-key", SDK_TS);
        assert_eq!(r.unwrap_err().code(), "AuthFailure.SignatureFailure");
    }

    #[test]
    fn a_timestamp_near_the_i64_limits_is_expired_not_an_overflow() {
        // Found by the fuzz target `tc3`.
        for ts in ["-9223372036854775808", "9223372036854775807"] {
            let mut h = headers(SDK_AUTH, SDK_TS);
            h.insert("x-tc-timestamp", HeaderValue::from_static(ts));
            let r = check(&h, SDK_BODY, "AKIDtest", "test-secret-key", SDK_TS);
            assert_eq!(r.unwrap_err().code(), "AuthFailure.SignatureExpire", "{ts}");
        }
    }

    #[test]
    fn a_signature_over_more_headers_with_lowercased_values_verifies() {
        // The documented form: x-tc-action signed, its value lower-cased.
        let ts = SDK_TS;
        let body = "{}";
        let canonical = format!(
            "POST\n/\n\ncontent-type:application/json\nhost:127.0.0.1:8080\nx-tc-action:invoke\n\n\
             content-type;host;x-tc-action\n{}",
            hex(&Sha256::digest(body.as_bytes()))
        );
        let sts = format!(
            "TC3-HMAC-SHA256\n{ts}\n2026-11-23/scf/tc3_request\n{}",
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let sig = sign("k", "2026-11-23", "scf", &sts);
        let auth = format!(
            "TC3-HMAC-SHA256 Credential=id/2026-11-23/scf/tc3_request, \
             SignedHeaders=content-type;host;x-tc-action, Signature={sig}"
        );
        assert_eq!(check(&headers(&auth, ts), body, "id", "k", ts), Ok(()));
    }
}
