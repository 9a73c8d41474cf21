//! Which HTTP-triggered function a request path reaches: the route prefix,
//! then each function's route template (its `route`, else its name), the
//! most specific match first, as Azure routes them.

use std::collections::HashMap;

use std::sync::Arc;

use crate::config::route::RouteTemplate;
use crate::config::FunctionConfig;

struct Route {
    function: String,
    template: RouteTemplate,
    /// `template.precedence()`, computed once, not per request.
    rank: Vec<u8>,
    /// Lower-case; `None` allows every method.
    methods: Option<Vec<String>>,
}

/// The HTTP routes of an app.
pub(crate) struct RouteTable {
    prefix: Vec<String>,
    routes: Vec<Route>,
}

/// What a request reaches.
#[derive(Debug, PartialEq)]
pub(crate) enum Found<'a> {
    /// This function, with these route values.
    Function {
        name: &'a str,
        params: HashMap<String, String>,
    },
    /// A route matches the path but not the method.
    WrongMethod {
        name: &'a str,
        allowed: &'a [String],
    },
    /// No route matches.
    Nothing,
}

impl RouteTable {
    pub(crate) fn build(prefix: &str, functions: &[Arc<FunctionConfig>]) -> Self {
        let prefix = split_path(prefix);
        let routes = functions
            .iter()
            .filter(|f| f.is_http_triggered() && !f.disabled)
            .map(|f| {
                let template = f.route();
                Route {
                    function: f.name.clone(),
                    rank: template.precedence(),
                    template,
                    methods: f.trigger().methods.clone(),
                }
            })
            .collect();
        Self { prefix, routes }
    }

    /// The function `method` `path` reaches.
    pub(crate) fn find(&self, method: &str, path: &str) -> Found<'_> {
        let segments = split_path(path);
        let Some(rest) = strip_prefix(&segments, &self.prefix) else {
            return Found::Nothing;
        };
        let mut best: Option<(&Route, HashMap<String, String>)> = None;
        let mut wrong_method: Option<&Route> = None;
        for route in &self.routes {
            let Some(params) = route.template.matches(rest) else {
                continue;
            };
            let allowed = route
                .methods
                .as_ref()
                .is_none_or(|m| m.iter().any(|m| m.eq_ignore_ascii_case(method)));
            if !allowed {
                wrong_method.get_or_insert(route);
                continue;
            }
            if best.as_ref().is_none_or(|(b, _)| route.rank < b.rank) {
                best = Some((route, params));
            }
        }
        match (best, wrong_method) {
            (Some((route, params)), _) => Found::Function {
                name: &route.function,
                params,
            },
            (None, Some(route)) => Found::WrongMethod {
                name: &route.function,
                allowed: route.methods.as_deref().unwrap_or(&[]),
            },
            (None, None) => Found::Nothing,
        }
    }
}

fn strip_prefix<'a>(segments: &'a [String], prefix: &[String]) -> Option<&'a [String]> {
    if segments.len() < prefix.len() {
        return None;
    }
    let (head, rest) = segments.split_at(prefix.len());
    head.iter()
        .zip(prefix)
        .all(|(a, b)| a.eq_ignore_ascii_case(b))
        .then_some(rest)
}

/// Non-empty, percent-decoded path segments.
fn split_path(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| super::percent_decode(s, false))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AppConfig;
    use serde_json::json;

    impl RouteTable {
        fn new(app: &AppConfig) -> Self {
            let list: Vec<Arc<FunctionConfig>> =
                app.functions.iter().cloned().map(Arc::new).collect();
            Self::build(&app.host.route_prefix, &list)
        }
    }

    fn app(prefix: Option<&str>, functions: &[(&str, serde_json::Value)]) -> AppConfig {
        let dir = std::env::temp_dir().join(format!("fnhost-routes-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let host = match prefix {
            Some(p) => json!({"extensions": {"http": {"routePrefix": p}}}),
            None => json!({}),
        };
        std::fs::write(dir.join("host.json"), host.to_string()).unwrap();
        std::fs::write(
            dir.join("worker.config.json"),
            json!({"description": {"language": "rust", "defaultExecutablePath": "/bin/true"}})
                .to_string(),
        )
        .unwrap();
        for (name, trigger) in functions {
            std::fs::create_dir_all(dir.join(name)).unwrap();
            let f = json!({"bindings": [trigger, {"type": "http", "direction": "out", "name": "$return"}]});
            std::fs::write(dir.join(name).join("function.json"), f.to_string()).unwrap();
        }
        let loaded = AppConfig::load(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        loaded.unwrap()
    }

    fn trigger(extra: serde_json::Value) -> serde_json::Value {
        let mut t = json!({"type": "httpTrigger", "direction": "in", "name": "req"});
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        t
    }

    fn name<'a>(f: &'a Found<'a>) -> Option<&'a str> {
        match f {
            Found::Function { name, .. } => Some(name),
            _ => None,
        }
    }

    #[test]
    fn names_prefixes_and_templates_route_like_azure() {
        let a = app(
            None,
            &[
                ("Echo", trigger(json!({}))),
                ("byId", trigger(json!({"route": "items/{id:int}"}))),
                (
                    "newItem",
                    trigger(json!({"route": "items/new", "methods": ["post"]})),
                ),
                ("files", trigger(json!({"route": "files/{*path}"}))),
            ],
        );
        let t = RouteTable::new(&a);
        assert_eq!(name(&t.find("GET", "/api/echo")), Some("Echo"));
        assert_eq!(name(&t.find("GET", "/API/ECHO/")), Some("Echo"));
        assert_eq!(t.find("GET", "/echo"), Found::Nothing);
        let Found::Function { name, params } = t.find("GET", "/api/items/42") else {
            panic!()
        };
        assert_eq!((name, params["id"].as_str()), ("byId", "42"));
        assert_eq!(t.find("GET", "/api/items/x"), Found::Nothing);
        assert_eq!(
            name_of(t.find("POST", "/api/items/new")),
            Some("newItem".into())
        );
        assert!(matches!(
            t.find("GET", "/api/items/new"),
            Found::WrongMethod {
                name: "newItem",
                ..
            }
        ));
        let Found::Function { params, .. } = t.find("GET", "/api/files/a/b%20c") else {
            panic!()
        };
        assert_eq!(params["path"], "a/b c");
    }

    fn name_of(f: Found<'_>) -> Option<String> {
        name(&f).map(str::to_string)
    }

    #[test]
    fn an_empty_prefix_routes_from_the_root() {
        let a = app(
            Some(""),
            &[("hello", trigger(json!({"route": "v1/hello"})))],
        );
        let t = RouteTable::new(&a);
        assert_eq!(name_of(t.find("GET", "/v1/hello")), Some("hello".into()));
        assert_eq!(t.find("GET", "/api/v1/hello"), Found::Nothing);
    }

    #[test]
    fn two_functions_on_one_route_and_method_are_a_configuration_error() {
        let dir = std::env::temp_dir().join(format!("fnhost-routes-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::fs::create_dir_all(dir.join("b")).unwrap();
        std::fs::write(dir.join("host.json"), "{}").unwrap();
        std::fs::write(
            dir.join("worker.config.json"),
            json!({"description": {"language": "rust", "defaultExecutablePath": "/bin/true"}})
                .to_string(),
        )
        .unwrap();
        for (f, m) in [("a", json!(["get", "post"])), ("b", json!(["post"]))] {
            let t = trigger(json!({"route": "x/{id}", "methods": m}));
            std::fs::write(
                dir.join(f).join("function.json"),
                json!({"bindings": [t]}).to_string(),
            )
            .unwrap();
        }
        let e = AppConfig::load(&dir).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(e.contains("'a' and 'b' both serve POST /api/x/{id}"), "{e}");
    }
}
