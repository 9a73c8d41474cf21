//! Target `routes`: route templates, their matcher, and the route table.
//! Input lines: template, route prefix, method, request path, and values
//! (comma-separated) to build a path from the template with.
//! - A template that parses, written back from its segments, parses to
//!   the same segments; a refused one says why.
//! - A path it matches is the template with the route values put back
//!   (literals compared ignoring ASCII case, a missing optional value
//!   leaving its segment out, a catch-all taking the rest).
//! - A path built from an unconstrained template and values is matched,
//!   giving those values back.
//! - The route table (prefix, percent-decoding, methods) agrees with the
//!   template: what it routes to the function is the prefix plus a path
//!   the template matches with the same values.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use fnhost::config::route::{Constraint, RouteTemplate, Segment};
use fnhost::config::{Binding, Direction, FunctionConfig};
use fnhost::fuzzing::{find_route, RouteMatch};

use crate::engine::{label, Target};

pub const TARGET: Target = Target {
    name: "routes",
    dictionary: &[
        "{id}",
        "{id?}",
        "{*rest}",
        "{**rest}",
        "{id:int}",
        "{id:long}",
        "{b:bool}",
        "{d:double}",
        "{g:guid}",
        "{a:alpha}",
        "{n:length(3)}",
        "{n:length(1,5)}",
        "{n:minlength(2)}",
        "{n:maxlength(2)}",
        "{n:min(1)}",
        "{n:max(9)}",
        "{n:range(1,9)}",
        "{x:regex(^a$)}",
        "{x:datetime}",
        ":int",
        ":min(",
        "(",
        ")",
        "?",
        "*",
        "/",
        "//",
        "%20",
        "%2F",
        "%2f",
        "%",
        "%zz",
        "%C3%A9",
        "é",
        "+",
        "api",
        "API",
        "GET",
        "post",
        "products",
        "items",
        "new",
        "true",
        "FALSE",
        "3f2a1b4c-0000-4000-8000-00000000000a",
        "{3f2a1b4c-0000-4000-8000-00000000000a}",
        "NaN",
        "inf",
        "1e5",
        "-0",
        "\n",
    ],
    max_len: 1024,
    run,
};

fn render_constraint(c: &Constraint) -> String {
    match c {
        Constraint::Int => "int".into(),
        Constraint::Long => "long".into(),
        Constraint::Bool => "bool".into(),
        Constraint::Double => "double".into(),
        Constraint::Guid => "guid".into(),
        Constraint::Alpha => "alpha".into(),
        Constraint::Length(min, usize::MAX) => format!("minlength({min})"),
        Constraint::Length(min, max) if min == max => format!("length({min})"),
        Constraint::Length(min, max) => format!("length({min},{max})"),
        Constraint::Range(min, max) => format!("range({min},{max})"),
    }
}

/// The template text of `segments`.
fn render(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|s| match s {
            Segment::Literal(l) => l.clone(),
            Segment::Param {
                name,
                optional,
                constraints,
            } => {
                let cs: String = constraints
                    .iter()
                    .map(|c| format!(":{}", render_constraint(c)))
                    .collect();
                format!("{{{name}{cs}{}}}", if *optional { "?" } else { "" })
            }
            Segment::CatchAll { name } => format!("{{*{name}}}"),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Checks that `values` put back into `t` give `path`.
fn reassembles(t: &RouteTemplate, path: &[String], values: &HashMap<String, String>) {
    let mut names = 0;
    for (i, seg) in t.segments.iter().enumerate() {
        match seg {
            Segment::Literal(l) => assert!(
                path.get(i).is_some_and(|p| p.eq_ignore_ascii_case(l)),
                "literal {l} matched {:?} in {path:?}",
                path.get(i)
            ),
            Segment::Param { name, optional, .. } => match (values.get(name), path.get(i)) {
                (Some(v), Some(p)) => {
                    assert_eq!(v, p, "value of {{{name}}} in {path:?}");
                    names += 1;
                }
                (None, None) if *optional => {}
                (v, p) => panic!("{{{name}}} is {v:?} for path segment {p:?} of {path:?}"),
            },
            Segment::CatchAll { name } => {
                let rest = path.get(i..).unwrap_or(&[]).join("/");
                assert_eq!(
                    values.get(name),
                    Some(&rest),
                    "catch-all {{*{name}}} of {path:?}"
                );
                assert_eq!(values.len(), names + 1, "values {values:?} for {path:?}");
                return;
            }
        }
    }
    assert!(
        path.len() <= t.segments.len(),
        "{path:?} is longer than the template"
    );
    assert_eq!(values.len(), names, "values {values:?} for {path:?}");
}

/// `%XX` decoding, written apart from the host's so the two check each other.
fn decode(segment: &str) -> String {
    let b = segment.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn split(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn function(template: &str, methods: Option<Vec<String>>) -> FunctionConfig {
    let mut properties = BTreeMap::new();
    properties.insert("route".to_string(), template.to_string());
    FunctionConfig {
        name: "f".into(),
        directory: PathBuf::from("/app/f"),
        script_file: None,
        entry_point: String::new(),
        bindings: vec![Binding {
            name: "req".into(),
            binding_type: "httpTrigger".into(),
            direction: Direction::In,
            properties,
            methods,
        }],
        raw_bindings: vec![],
        timeout: None,
        disabled: false,
        properties: Default::default(),
    }
}

fn run(input: &[u8]) -> String {
    let text = String::from_utf8_lossy(input);
    let mut lines = text.split('\n');
    let template = lines.next().unwrap_or_default();
    let prefix = lines.next().unwrap_or("api");
    let method = lines.next().unwrap_or("GET");
    let request = lines.next().unwrap_or_default();
    let values: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let t = match RouteTemplate::parse(template) {
        Ok(t) => t,
        Err(e) => {
            assert!(
                !e.trim().is_empty(),
                "a refusal without a reason: {template:?}"
            );
            return label("err:", &e);
        }
    };
    let written = render(&t.segments);
    match RouteTemplate::parse(&written) {
        Ok(again) => assert_eq!(
            again.segments, t.segments,
            "{template:?} written back as {written:?}"
        ),
        Err(e) => panic!("{template:?} written back as {written:?} is refused: {e}"),
    }
    assert_eq!(t.precedence().len(), t.segments.len());
    let raw = split(request);
    let mut outcome = String::from("ok");
    if let Some(v) = t.matches(&raw) {
        reassembles(&t, &raw, &v);
        outcome.push_str(":match");
    }
    // A path built from the template and the values.
    let unconstrained = t.segments.iter().all(|s| match s {
        Segment::Param { constraints, .. } => constraints.is_empty(),
        _ => true,
    });
    let mut built = Vec::new();
    let mut expected = HashMap::new();
    let mut next = values.iter().filter(|v| !v.is_empty() && !v.contains('/'));
    for (i, seg) in t.segments.iter().enumerate() {
        match seg {
            Segment::Literal(l) if i % 2 == 0 => built.push(l.to_ascii_uppercase()),
            Segment::Literal(l) => built.push(l.clone()),
            Segment::Param { name, optional, .. } => match next.next() {
                Some(v) => {
                    built.push(v.to_string());
                    expected.insert(name.clone(), v.to_string());
                }
                None if *optional => break,
                None => built.push("x".into()),
            },
            Segment::CatchAll { name } => {
                let rest: Vec<String> = next.by_ref().map(|v| v.to_string()).collect();
                expected.insert(name.clone(), rest.join("/"));
                built.extend(rest);
            }
        }
        if let Segment::Param { name, .. } = seg {
            expected.entry(name.clone()).or_insert_with(|| "x".into());
        }
    }
    match t.matches(&built) {
        Some(v) => {
            reassembles(&t, &built, &v);
            if unconstrained {
                assert_eq!(v, expected, "values of {built:?}");
            }
        }
        None => assert!(
            !unconstrained,
            "{template:?} does not match {built:?}, built from it"
        ),
    }
    // Through the route table.
    let prefix_ok = RouteTemplate::parse(prefix)
        .is_ok_and(|p| p.segments.iter().all(|s| matches!(s, Segment::Literal(_))));
    if prefix_ok {
        let methods = (method.len().is_multiple_of(2)).then(|| vec![method.to_ascii_lowercase()]);
        let asked = if method.len().is_multiple_of(3) {
            "PATCH"
        } else {
            method
        };
        let f = function(template, methods.clone());
        let decoded: Vec<String> = split(request).iter().map(|s| decode(s)).collect();
        // The host decodes the prefix as it decodes the path.
        let prefix_segments: Vec<String> = split(prefix).iter().map(|s| decode(s)).collect();
        let rest = (decoded.len() >= prefix_segments.len()
            && decoded
                .iter()
                .zip(&prefix_segments)
                .all(|(a, b)| a.eq_ignore_ascii_case(b)))
        .then(|| decoded[prefix_segments.len()..].to_vec());
        let expected = rest.as_ref().and_then(|r| t.matches(r));
        match find_route(prefix, &[f], asked, request) {
            RouteMatch::Function { name, params } => {
                assert_eq!(name, "f");
                let rest = rest.expect("routed without its prefix");
                reassembles(&t, &rest, &params);
                assert_eq!(Some(&params), expected.as_ref());
                outcome.push_str(":routed");
            }
            RouteMatch::WrongMethod { allowed, .. } => {
                assert!(
                    expected.is_some(),
                    "a wrong method for a path that does not match"
                );
                assert!(
                    !allowed.iter().any(|m| m.eq_ignore_ascii_case(asked)),
                    "{allowed:?}"
                );
                outcome.push_str(":method");
            }
            RouteMatch::Nothing => assert!(
                expected.is_none(),
                "{request:?} matches {template:?} under {prefix:?} but was not routed"
            ),
        }
    }
    outcome
}
