//! `GET /admin/openapi.json`: the OpenAPI 3.1 description of the HTTP API.
//!
//! The fixed routes are described by hand in `openapi.json`; the app's part
//! is filled in when the document is served: the functions' names (the
//! `name` path parameter's `enum`) and a path per HTTP-triggered function
//! under the route prefix, with its methods, route values and auth level.
//! [`Recorder`] notes every route the router is built with, so a test can
//! hold the document and the router to the same list.

use std::sync::OnceLock;

use axum::handler::Handler;
use axum::routing::{on, MethodFilter};
use axum::Router;
use serde_json::{json, Map, Value};

use crate::catalog::Functions;
use crate::config::route::{Constraint, RouteTemplate, Segment};
use crate::config::FunctionConfig;
use crate::keys::AuthLevel;

/// The hand-written part.
fn base() -> &'static Value {
    static BASE: OnceLock<Value> = OnceLock::new();
    BASE.get_or_init(|| {
        // Checked by the unit tests below: the file always parses.
        serde_json::from_str(include_str!("openapi.json")).unwrap_or_else(|e| {
            tracing::error!("the built-in OpenAPI document does not parse: {e}");
            json!({ "openapi": "3.1.0", "info": { "title": "fnhost", "version": "0" }, "paths": {} })
        })
    })
}

/// A method and path the router serves, as OpenAPI writes them (`get`,
/// `/admin/async-events/{id}`).
pub type RouteKey = (&'static str, &'static str);

/// A router that notes each route it is given.
pub(crate) struct Recorder<S> {
    router: Router<S>,
    routes: Vec<RouteKey>,
}

impl<S: Clone + Send + Sync + 'static> Recorder<S> {
    pub(crate) fn new() -> Self {
        Self {
            router: Router::new(),
            routes: Vec::new(),
        }
    }

    fn add<H, T>(
        mut self,
        method: &'static str,
        filter: MethodFilter,
        path: &'static str,
        handler: H,
    ) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.router = self.router.route(path, on(filter, handler));
        self.routes.push((method, path));
        self
    }

    pub(crate) fn get<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add("get", MethodFilter::GET, path, handler)
    }

    pub(crate) fn post<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add("post", MethodFilter::POST, path, handler)
    }

    pub(crate) fn put<H: Handler<T, S>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add("put", MethodFilter::PUT, path, handler)
    }

    pub(crate) fn delete<H: Handler<T, S>, T: 'static>(
        self,
        path: &'static str,
        handler: H,
    ) -> Self {
        self.add("delete", MethodFilter::DELETE, path, handler)
    }

    /// The router and the routes it serves.
    pub(crate) fn finish(self) -> (Router<S>, Vec<RouteKey>) {
        (self.router, self.routes)
    }
}

/// The document for the functions the host runs now.
pub(crate) fn document(functions: &Functions, route_prefix: &str) -> Value {
    let mut doc = base().clone();
    let mut names: Vec<&str> = functions.iter().map(|f| f.name.as_str()).collect();
    names.sort_unstable();
    if let Some(schema) = doc.pointer_mut("/components/parameters/FunctionName/schema") {
        schema["enum"] = json!(names);
    }
    let prefix: Vec<&str> = route_prefix.split('/').filter(|s| !s.is_empty()).collect();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        let mut triggers: Vec<&std::sync::Arc<FunctionConfig>> = functions
            .iter()
            .filter(|f| f.is_http_triggered() && !f.disabled)
            .collect();
        triggers.sort_by(|a, b| a.name.cmp(&b.name));
        for f in triggers {
            add_trigger(paths, &prefix, f);
        }
    }
    doc
}

/// The methods OpenAPI has an operation for, of those a trigger allows.
const METHODS: [&str; 7] = ["get", "post", "put", "patch", "delete", "head", "options"];

fn add_trigger(paths: &mut Map<String, Value>, prefix: &[&str], f: &FunctionConfig) {
    let template = f.route();
    // Optional trailing values make two paths: without them and with them.
    for (path, params) in trigger_paths(prefix, &template) {
        let methods: Vec<String> = match &f.trigger().methods {
            Some(m) => m.iter().map(|m| m.to_ascii_lowercase()).collect(),
            None => METHODS.iter().map(|m| (*m).to_string()).collect(),
        };
        let security = match f.auth_level() {
            AuthLevel::Anonymous => json!([{}]),
            AuthLevel::Function | AuthLevel::Admin => {
                json!([{ "functionsKey": [] }, { "codeQuery": [] }])
            }
        };
        let entry = paths
            .entry(path)
            .or_insert_with(|| Value::Object(Map::new()));
        for method in methods.iter().filter(|m| METHODS.contains(&m.as_str())) {
            let mut op = json!({
                "tags": ["triggers"],
                "operationId": format!("{}_{method}", f.name),
                "summary": format!("The HTTP trigger of function `{}`.", f.name),
                "security": security,
                "parameters": params,
                "responses": {
                    "default": { "$ref": "#/components/responses/FunctionOutput" },
                    "401": { "$ref": "#/components/responses/Unauthorized" },
                    "404": { "$ref": "#/components/responses/NotFound" },
                    "413": { "$ref": "#/components/responses/TooLarge" },
                    "429": { "$ref": "#/components/responses/QueueFull" },
                    "499": { "$ref": "#/components/responses/InvocationEnded" },
                    "500": { "$ref": "#/components/responses/InvocationEnded" },
                    "502": { "$ref": "#/components/responses/InvocationEnded" },
                    "503": { "$ref": "#/components/responses/Unavailable" },
                    "504": { "$ref": "#/components/responses/InvocationEnded" }
                }
            });
            if !matches!(method.as_str(), "get" | "head" | "options" | "delete") {
                op["requestBody"] = json!({ "$ref": "#/components/requestBodies/TriggerInput" });
            }
            entry[method.as_str()] = op;
        }
    }
}

/// A template's OpenAPI paths and their path parameters: one path, or two
/// when its last value is optional (`{id?}`) or a catch-all (`{*rest}`,
/// which may be empty).
fn trigger_paths(prefix: &[&str], template: &RouteTemplate) -> Vec<(String, Value)> {
    let mut full = String::new();
    let mut short = None;
    let mut params = Vec::new();
    for p in prefix {
        full.push('/');
        full.push_str(p);
    }
    for seg in &template.segments {
        match seg {
            Segment::Literal(l) => {
                full.push('/');
                full.push_str(l);
            }
            Segment::Param {
                name,
                optional,
                constraints,
            } => {
                if *optional {
                    short = Some((full.clone(), params.clone()));
                }
                full.push_str(&format!("/{{{name}}}"));
                params.push(json!({
                    "name": name,
                    "in": "path",
                    "required": true,
                    "schema": constraint_schema(constraints),
                }));
            }
            Segment::CatchAll { name } => {
                short = Some((full.clone(), params.clone()));
                full.push_str(&format!("/{{{name}}}"));
                params.push(json!({
                    "name": name,
                    "in": "path",
                    "required": true,
                    "description": "The rest of the path.",
                    "schema": { "type": "string" },
                }));
            }
        }
    }
    if full.is_empty() {
        full.push('/');
    }
    let mut out = vec![(full, Value::Array(params))];
    if let Some((mut path, params)) = short {
        if path.is_empty() {
            path.push('/');
        }
        out.push((path, Value::Array(params)));
    }
    out
}

fn constraint_schema(constraints: &[Constraint]) -> Value {
    let mut schema = json!({ "type": "string" });
    for c in constraints {
        match c {
            Constraint::Int => {
                schema = json!({ "type": "integer", "minimum": i32::MIN, "maximum": i32::MAX });
            }
            Constraint::Long => schema = json!({ "type": "integer" }),
            Constraint::Bool => schema = json!({ "type": "boolean" }),
            Constraint::Double => schema = json!({ "type": "number" }),
            Constraint::Guid => schema = json!({ "type": "string", "format": "uuid" }),
            Constraint::Alpha => schema["pattern"] = json!("^[A-Za-z]*$"),
            Constraint::Length(min, max) => {
                schema["minLength"] = json!(min);
                if *max < usize::MAX {
                    schema["maxLength"] = json!(max);
                }
            }
            Constraint::Range(min, max) => {
                schema = json!({ "type": "integer", "minimum": min, "maximum": max });
            }
        }
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_document_parses_and_every_reference_resolves() {
        let doc: Value = serde_json::from_str(include_str!("openapi.json")).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut refs = Vec::new();
        fn walk<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
            match v {
                Value::Object(m) => {
                    for (k, v) in m {
                        if k == "$ref" {
                            out.extend(v.as_str());
                        } else {
                            walk(v, out);
                        }
                    }
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        walk(&doc, &mut refs);
        assert!(refs.len() > 50, "{}", refs.len());
        for r in refs {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("a local reference: {r}"));
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
        // Every operation has an id, and each id is used once.
        let mut ids = std::collections::HashSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} {path}"));
                assert!(ids.insert(id), "{id} twice");
                assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
            }
        }
    }

    #[test]
    fn route_templates_become_paths_with_typed_values() {
        let t = RouteTemplate::parse("items/{id:int}/{name?}").unwrap();
        let paths = trigger_paths(&["api"], &t);
        assert_eq!(paths[0].0, "/api/items/{id}/{name}");
        assert_eq!(paths[0].1[0]["schema"]["type"], "integer");
        assert_eq!(paths[0].1[1]["schema"]["type"], "string");
        assert_eq!(paths[1].0, "/api/items/{id}");
        assert_eq!(paths[1].1.as_array().unwrap().len(), 1);
        let t = RouteTemplate::parse("files/{*rest}").unwrap();
        let paths = trigger_paths(&[], &t);
        assert_eq!(paths[0].0, "/files/{rest}");
        assert_eq!(paths[1].0, "/files");
        let t = RouteTemplate::parse("").unwrap();
        assert_eq!(trigger_paths(&[], &t)[0].0, "/");
        let t = RouteTemplate::parse("r/{n:range(1,9)}/{g:guid}/{w:alpha:length(2,4)}").unwrap();
        let p = &trigger_paths(&["api"], &t)[0].1;
        assert_eq!(
            p[0]["schema"],
            json!({ "type": "integer", "minimum": 1, "maximum": 9 })
        );
        assert_eq!(p[1]["schema"]["format"], "uuid");
        assert_eq!(p[2]["schema"]["maxLength"], 4);
        assert_eq!(p[2]["schema"]["pattern"], "^[A-Za-z]*$");
    }
}
