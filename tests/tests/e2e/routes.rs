//! HTTP trigger routing as Azure defines it: the route prefix, route
//! templates with typed parameters, case-insensitive names and literals.

use fnhost_e2e::{init_logs, Api, TestApp, ADMIN_KEY};
use serde_json::json;

fn http(route: Option<&str>, methods: &[&str]) -> serde_json::Value {
    let mut trigger = json!({"type": "httpTrigger", "direction": "in", "name": "req",
                             "methods": methods, "authLevel": "anonymous"});
    if let Some(r) = route {
        trigger["route"] = json!(r);
    }
    json!({"bindings": [trigger, {"type": "http", "direction": "out", "name": "$return"}]})
}

#[tokio::test]
async fn route_templates_and_the_prefix_reach_functions_with_their_route_values() {
    init_logs();
    let app = TestApp::sample(json!({"extensions": {"http": {"routePrefix": "v1"}}}));
    app.function("request", &http(Some("Items/{id:int}/{name?}"), &["get"]));
    app.function("echo", &http(None, &["get", "post"]));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());

    let r = api
        .request("GET", "/v1/items/42/widget?x=1", "", None)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = r.json();
    assert_eq!(
        seen["params"],
        json!({"id": "42", "name": "widget"}),
        "{seen}"
    );
    assert_eq!(seen["query"]["x"], "1", "{seen}");
    // Literals match in any case; the optional value may be absent.
    let r = api.request("GET", "/V1/ITEMS/7", "", None).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["params"], json!({"id": "7"}));
    // The constraint and the prefix are part of the route.
    assert_eq!(api.get_status("/v1/items/seven", None).await, 404);
    assert_eq!(api.get_status("/api/items/7", None).await, 404);
    assert_eq!(
        api.get_status("/v1/request", None).await,
        404,
        "its route replaced its name"
    );
    assert_eq!(
        api.request("POST", "/v1/items/7", "", None)
            .await
            .unwrap()
            .status,
        405
    );
    // A function without `route` answers on its name, in any case.
    let r = api.request("POST", "/v1/ECHO", "hi", None).await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "hi"));
    host.shutdown().await;
}

#[tokio::test]
async fn function_names_match_in_any_case_on_every_route() {
    init_logs();
    let app = TestApp::sample(json!({}));
    let host = app.start(1).await;
    let api = Api::new(host.http_addr());
    let r = api.invoke("ECHO", "loud").await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "loud"));
    let r = api
        .request(
            "POST",
            "/admin/functions/Echo/invoke-async",
            "later",
            Some(ADMIN_KEY),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let r = api.request("GET", "/api/Echo", "", None).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let keys = api
        .admin_get("/admin/functions/REQUEST/keys")
        .await
        .unwrap();
    assert_eq!(keys.status, 200, "{}", keys.text());
    host.shutdown().await;
}
