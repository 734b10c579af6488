//! A DNS-over-HTTPS resolver the tests control, for Bluesky handles' `_atproto` TXT records:
//! `GET /dns/dns-query?name=…&type=TXT` answered in the JSON form Cloudflare and Google serve
//! (`application/dns-json`: `Status` 0 with `Answer` records, or 3, NXDOMAIN), from the records
//! `POST /_sandbox/dns {"name", "txt"}` registered.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::state::Shared;

pub fn routes() -> Router<Shared> {
    Router::new().route("/dns/dns-query", get(query)).route("/_sandbox/dns", post(register))
}

#[derive(Deserialize)]
struct Record {
    name: String,
    txt: String,
}

async fn register(State(sandbox): State<Shared>, Json(record): Json<Record>) -> Response {
    let name = record.name.trim_end_matches('.').to_ascii_lowercase();
    sandbox.world().dns.entry(name).or_default().push(record.txt);
    StatusCode::CREATED.into_response()
}

async fn query(State(sandbox): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let name = q.get("name").map(|n| n.trim_end_matches('.').to_ascii_lowercase()).unwrap_or_default();
    if q.get("type").is_some_and(|t| !t.eq_ignore_ascii_case("TXT") && t != "16") {
        return Json(json!({ "Status": 0, "Answer": [] })).into_response();
    }
    let world = sandbox.world();
    let Some(records) = world.dns.get(&name) else {
        return Json(json!({ "Status": 3, "Question": [{ "name": format!("{name}."), "type": 16 }] })).into_response();
    };
    let answers: Vec<_> = records
        .iter()
        .map(|txt| json!({ "name": format!("{name}."), "type": 16, "TTL": 300, "data": format!("\"{txt}\"") }))
        .collect();
    ([("content-type", "application/dns-json")], Json(json!({ "Status": 0, "Answer": answers }))).into_response()
}
