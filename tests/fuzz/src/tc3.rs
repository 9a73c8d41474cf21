//! Target `tc3`: arbitrary requests signed (or not) with TC3-HMAC-SHA256,
//! checked against a signer written here, apart from the host's.
//! - The `Authorization` header splits into parts that, written back in
//!   the canonical form, split the same; a refusal is `InvalidAuthorization`.
//! - `verify` accepts a request exactly when the reference does: the
//!   timestamp within 300 s of now, the Credential date its UTC date, the
//!   SecretId the host's, every signed header present, and the Signature
//!   the reference HMAC over the canonical request (values lower-cased, or
//!   as sent). An accepted signature is its hex bytes, valid until the
//!   timestamp + 300 s; the same request with another body is refused.
//! - Every refusal has one of the four codes and a message.
//!
//! Input: a request line `METHOD /path?query`, header lines `name: value`
//! (`now: <secs>` sets the server clock instead), a blank line, the body.
//! An `authorization: @sign <id> <date|@> <service> <signed headers>`
//! header is replaced by the reference signature (key [`SECRET_KEY`]) of
//! that scope over the request; `@` is the timestamp's UTC date.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use fnhost::events::time;
use fnhost::fuzzing::{tc3_authorization, tc3_verify};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::engine::{label, Target};

pub const SECRET_ID: &str = "AKIDtest";
pub const SECRET_KEY: &str = "test-secret-key";
/// The clock of the captured SDK request (tc3.rs's unit tests).
const SDK_NOW: i64 = 1_795_406_483;
const MAX_SKEW: i64 = 300;

pub const TARGET: Target = Target {
    name: "tc3",
    dictionary: &[
        "\nauthorization: ",
        "@sign AKIDtest @ scf content-type;host",
        "@sign",
        " @ ",
        "TC3-HMAC-SHA256 ",
        "Credential=",
        "AKIDtest/2026-11-23/scf/tc3_request",
        "/tc3_request",
        ", SignedHeaders=",
        "content-type;host",
        ";x-tc-action",
        ";X-TC-Action",
        ", Signature=",
        "836504c182d7c4df7c31a6e3ea48680af141c46dd73cbd73c137d0387a3d144c",
        "\nx-tc-timestamp: ",
        "1795406483",
        "1795406783",
        "1795406784",
        "1795406182",
        "\nnow: ",
        "\nhost: ",
        "127.0.0.1:8080",
        "\ncontent-type: ",
        "application/json",
        "\nx-tc-action: ",
        "Invoke",
        "POST / ",
        "GET /?a=b ",
        "\n\n",
        "2026-11-23",
        "2026-11-24",
        "1970-01-01",
        ",",
        "=",
        ";",
    ],
    max_len: 2048,
    run,
};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

/// The reference signature (hex) of a request under one scope, or `None`
/// when a signed header is missing or not text.
#[allow(clippy::too_many_arguments)]
fn reference(
    req: &Req,
    timestamp: &str,
    date: &str,
    service: &str,
    signed: &str,
    key: &str,
    lower: bool,
) -> Option<String> {
    let mut canonical = format!("{}\n{}\n{}\n", req.method, req.path, req.query);
    for name in signed.split(';') {
        let value = req.headers.get(name)?.to_str().ok()?.trim();
        let value = if lower {
            value.to_ascii_lowercase()
        } else {
            value.to_string()
        };
        canonical += &format!("{}:{value}\n", name.to_ascii_lowercase());
    }
    canonical += &format!("\n{signed}\n{}", hex(&Sha256::digest(&req.body)));
    let to_sign = format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{date}/{service}/tc3_request\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let k = mac(format!("TC3{key}").as_bytes(), date.as_bytes());
    let k = mac(&k, service.as_bytes());
    let k = mac(&k, b"tc3_request");
    Some(hex(&mac(&k, to_sign.as_bytes())))
}

struct Req {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
    now: i64,
}

fn utc_date(secs: i64) -> String {
    time::scf(secs * 1000)[..10].to_string()
}

/// `input` as a request; `@sign` headers become signatures.
fn request(input: &[u8]) -> Req {
    let split = input
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or(input.len());
    let head = String::from_utf8_lossy(&input[..split]);
    let body = input.get(split + 2..).unwrap_or_default().to_vec();
    let mut lines = head.split('\n');
    let first = lines.next().unwrap_or_default();
    let mut words = first.splitn(2, ' ');
    let method = words.next().unwrap_or_default().to_string();
    let target = words.next().unwrap_or("/").trim();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut req = Req {
        method,
        path: path.to_string(),
        query: query.to_string(),
        headers: HeaderMap::new(),
        body,
        now: SDK_NOW,
    };
    let mut sign = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim_start();
        if name == "now" {
            // A real clock: from 1970 to 2100, so dates stay four digits.
            if let Ok(n) = value.trim().parse::<i64>() {
                req.now = n.clamp(0, 4_102_444_800);
            }
            continue;
        }
        if let Some(scope) = value.strip_prefix("@sign") {
            sign.push(scope.to_string());
            continue;
        }
        // What the HTTP layer would not have let through is not a request.
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            req.headers.append(n, v);
        }
    }
    for scope in sign {
        let w: Vec<&str> = scope.split_whitespace().collect();
        let word = |i: usize, default: &'static str| w.get(i).copied().unwrap_or(default);
        let timestamp = req
            .headers
            .get("x-tc-timestamp")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("0")
            .to_string();
        let date = match word(1, "@") {
            "@" => timestamp
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|ts| (0..=4_102_444_800).contains(ts))
                .map_or_else(|| "1970-01-01".into(), utc_date),
            d => d.to_string(),
        };
        let (id, service, signed) = (
            word(0, SECRET_ID),
            word(2, "scf"),
            word(3, "content-type;host"),
        );
        let lower = w.get(4) != Some(&"raw");
        let sig = reference(&req, &timestamp, &date, service, signed, SECRET_KEY, lower)
            .unwrap_or_else(|| "00".repeat(32));
        let value = format!(
            "TC3-HMAC-SHA256 Credential={id}/{date}/{service}/tc3_request, \
             SignedHeaders={signed}, Signature={sig}"
        );
        if let Ok(v) = HeaderValue::from_str(&value) {
            req.headers.append("authorization", v);
        }
    }
    req
}

fn check_authorization(value: &str) -> &'static str {
    match tc3_authorization(value) {
        Ok(a) => {
            for part in [&a.secret_id, &a.date, &a.service] {
                assert!(!part.contains(['/', ',']), "{a:?} from {value:?}");
            }
            assert!(
                !a.signed_headers.contains(',') && !a.signature.contains(','),
                "{a:?}"
            );
            let written = format!(
                "TC3-HMAC-SHA256 Credential={}/{}/{}/tc3_request, SignedHeaders={}, Signature={}",
                a.secret_id, a.date, a.service, a.signed_headers, a.signature
            );
            assert_eq!(
                tc3_authorization(&written).as_ref(),
                Ok(&a),
                "{value:?} written back as {written:?}"
            );
            "auth-ok"
        }
        Err(e) => {
            assert_eq!(e.code, "AuthFailure.InvalidAuthorization", "{e:?}");
            assert!(!e.message.is_empty());
            "auth-err"
        }
    }
}

fn run(input: &[u8]) -> String {
    let req = request(input);
    let verify = |r: &Req| {
        tc3_verify(
            &r.method,
            &r.path,
            &r.query,
            &r.headers,
            &r.body,
            (SECRET_ID, SECRET_KEY),
            r.now,
        )
    };
    let got = verify(&req);
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let auth_value = header("authorization");
    let parsed = auth_value.map(|v| (check_authorization(v), tc3_authorization(v)));
    let timestamp = header("x-tc-timestamp");
    let ts = timestamp.and_then(|t| t.trim().parse::<i64>().ok());
    // What the reference expects.
    let expected: Result<i64, &str> = (|| {
        let a = match parsed
            .as_ref()
            .ok_or("AuthFailure.InvalidAuthorization")?
            .1
            .as_ref()
        {
            Ok(a) => a,
            Err(_) => return Err("AuthFailure.InvalidAuthorization"),
        };
        let ts = ts.ok_or("AuthFailure.InvalidAuthorization")?;
        if (i128::from(req.now) - i128::from(ts)).abs() > i128::from(MAX_SKEW) {
            return Err("AuthFailure.SignatureExpire");
        }
        if a.date != utc_date(ts) {
            return Err("AuthFailure.InvalidAuthorization");
        }
        if a.secret_id != SECRET_ID {
            return Err("AuthFailure.SecretIdNotFound");
        }
        let given = a.signature.to_ascii_lowercase();
        if given.len() != 64 || !given.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("AuthFailure.SignatureFailure");
        }
        let timestamp = timestamp.expect("parsed");
        for lower in [true, false] {
            let sig = reference(
                &req,
                timestamp,
                &a.date,
                &a.service,
                &a.signed_headers,
                SECRET_KEY,
                lower,
            )
            .ok_or("AuthFailure.InvalidAuthorization")?;
            if sig == given {
                return Ok(ts);
            }
        }
        Err("AuthFailure.SignatureFailure")
    })();
    match (&got, expected) {
        (Ok((sig, until)), Ok(ts)) => {
            let a = parsed.expect("verified").1.expect("verified");
            assert_eq!(hex(sig), a.signature.to_ascii_lowercase());
            assert_eq!(*until, ts + MAX_SKEW);
            let mut other = request(input);
            other.body.push(b'!');
            let r = verify(&other);
            assert_eq!(
                r.as_ref().map_err(|e| e.code.as_str()),
                Err("AuthFailure.SignatureFailure"),
                "a signature verified for another body"
            );
            "verified".into()
        }
        (Err(e), Err(code)) => {
            assert_eq!(e.code, code, "refused as {e:?}; the reference says {code}");
            assert!(!e.message.trim().is_empty(), "{e:?}");
            label("refused:", &e.code)
        }
        (got, expected) => panic!("verify says {got:?}, the reference {expected:?}"),
    }
}
