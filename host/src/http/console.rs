//! `GET /console`: a web console for async events and worker instances.
//!
//! Plain HTML, CSS and JavaScript modules compiled into the binary, served
//! without a key: the page holds no secret. The admin key is typed into the
//! page, kept in the tab's `sessionStorage` and sent as `x-functions-key`
//! by the scripts, on the same admin and async routes every other client
//! uses; the console has no route of its own for data.
//!
//! Event data (inputs, results, errors, log lines) is whatever a function
//! chose to write, so the scripts only ever set it as text, and every
//! console response carries a Content-Security-Policy that allows no inline
//! script and nothing from another origin: markup that slipped through
//! could still not run.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

use super::openapi::{Recorder, RouteKey};

/// The policy on every console response. `form-action 'none'`: the login
/// form is handled by script, so a page whose scripts failed to load
/// cannot put the key into a URL by submitting it.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The console's routes, noted in `routes` for the OpenAPI check.
pub(super) fn router<S: Clone + Send + Sync + 'static>(routes: &mut Vec<RouteKey>) -> Router<S> {
    let (router, more) = Recorder::new()
        .get("/console", index)
        .get("/console/{file}", asset)
        .finish();
    routes.extend(more);
    router
}

/// The files under `/console/`, by name: content type and text.
fn file(name: &str) -> Option<(&'static str, &'static str)> {
    const JS: &str = "text/javascript; charset=utf-8";
    Some(match name {
        "console.css" => (
            "text/css; charset=utf-8",
            include_str!("console/console.css"),
        ),
        "app.js" => (JS, include_str!("console/app.js")),
        "api.js" => (JS, include_str!("console/api.js")),
        "dom.js" => (JS, include_str!("console/dom.js")),
        "overview.js" => (JS, include_str!("console/overview.js")),
        "events.js" => (JS, include_str!("console/events.js")),
        "detail.js" => (JS, include_str!("console/detail.js")),
        "invoke.js" => (JS, include_str!("console/invoke.js")),
        _ => return None,
    })
}

async fn index() -> Response {
    with_headers(
        StatusCode::OK,
        "text/html; charset=utf-8",
        include_str!("console/index.html"),
    )
}

async fn asset(Path(name): Path<String>) -> Response {
    match file(&name) {
        Some((content_type, body)) => with_headers(StatusCode::OK, content_type, body),
        None => {
            let mut r = super::error_body(
                StatusCode::NOT_FOUND,
                format!("the console has no file '{name}'"),
            );
            security_headers(r.headers_mut());
            r
        }
    }
}

fn with_headers(status: StatusCode, content_type: &'static str, body: &'static str) -> Response {
    let mut r = (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
    security_headers(r.headers_mut());
    r
}

fn security_headers(h: &mut axum::http::HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    // Small files that change with the binary: always revalidate.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_loads_is_served() {
        let html = include_str!("console/index.html");
        assert!(html.contains("/console/app.js") && html.contains("/console/console.css"));
        for script in [
            "app.js",
            "overview.js",
            "events.js",
            "detail.js",
            "invoke.js",
        ] {
            let (_, text) = file(script).expect(script);
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let name = line
                    .rsplit_once("'./")
                    .and_then(|(_, rest)| rest.split_once('\''))
                    .map(|(name, _)| name)
                    .unwrap_or_else(|| panic!("{script}: an import of './name.js': {line}"));
                assert!(file(name).is_some(), "{script} imports {name}, not served");
            }
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let html = include_str!("console/index.html");
        assert!(!html.contains("<script>") && !html.contains("style="));
        for handler in ["onclick", "onload", "onerror", "onsubmit", "javascript:"] {
            assert!(
                !html.contains(handler),
                "no inline event handler: {handler}"
            );
        }
    }
}
