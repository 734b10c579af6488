//! Meta's own machine-readable Graph API specs (`specs/meta-graph-spec-subset.json`: the posting
//! nodes and edges from facebook/facebook-business-sdk-codegen, see its `SOURCE.txt`) as the judge
//! of every Graph call's parameters: on an edge or node the specs describe, each parameter must
//! be one the spec lists for that call (or one of Graph's universal ones), its value must have the
//! spec's type, required parameters must be present and requested `fields` must be fields of the
//! returned node. A call that fails is answered Graph's `(#100)` invalid-parameter error before
//! the simulator sees it. Graph itself ignores some unknown parameters; the judge refuses them,
//! the safe side: a name Meta does not describe is a name Herald should not depend on.
//!
//! Every call is entered in the ledger (`GET /_sandbox/spec`, key `meta`) by node type and edge:
//! validated, or undescribed (the subset lacks it: the User node's `/me/accounts`, reading a Page
//! or an IG user, OAuth and `debug_token`), so nothing is skipped silently.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use serde_json::Value;

pub use crate::spec::Judged;

const SUBSET: &str = include_str!("../specs/meta-graph-spec-subset.json");

/// Graph's parameters on every call (developers.facebook.com/docs/graph-api: access tokens,
/// `appsecret_proof`, field selection, cursor and time paging), which the specs leave out.
const UNIVERSAL: &[&str] =
    &["access_token", "appsecret_proof", "appsecret_time", "fields", "limit", "after", "before", "since", "until"];

struct Api {
    params: Vec<(String, String, bool)>,
    returns: String,
}

struct Specs {
    /// `"METHOD Node/edge"` (node-level calls are `#get`, `#update`, `#delete`) → the call.
    apis: HashMap<String, Api>,
    /// Node type → its fields.
    fields: HashMap<String, Vec<String>>,
    enums: HashMap<String, Vec<String>>,
}

static SPECS: LazyLock<Specs> = LazyLock::new(|| {
    let doc: Value = serde_json::from_str(SUBSET).expect("the Meta spec subset is JSON");
    let mut specs = Specs { apis: HashMap::new(), fields: HashMap::new(), enums: HashMap::new() };
    let mut add = |node: &str, apis: &Value| {
        for api in apis.as_array().into_iter().flatten() {
            let method = api["method"].as_str().unwrap_or_default();
            let edge = api["endpoint"].as_str().or(api["name"].as_str()).unwrap_or_default();
            let params = api["params"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let text = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
                    (text("name"), text("type"), p["required"].as_bool().unwrap_or(false))
                })
                .collect();
            let returns = api["return"].as_str().unwrap_or_default().to_owned();
            specs.apis.insert(format!("{method} {node}/{edge}"), Api { params, returns });
        }
    };
    for (key, value) in doc.as_object().into_iter().flatten() {
        if let Some(node) = key.strip_suffix(".apis") {
            add(node, value);
        } else if let Some(node) = key.strip_suffix(".json") {
            add(node, &value["apis"]);
            let names = value["fields"].as_array().into_iter().flatten();
            let names = names.filter_map(|f| f["name"].as_str().map(str::to_owned)).collect();
            specs.fields.insert(node.to_owned(), names);
        }
    }
    for entry in doc["enum_types (referenced)"].as_array().into_iter().flatten() {
        let values = entry["values"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned));
        specs.enums.insert(entry["name"].as_str().unwrap_or_default().to_owned(), values.collect());
    }
    specs
});

/// Whether `value` has the spec's type `ty` (the codegen's type names).
fn typed(specs: &Specs, ty: &str, value: &str) -> Result<(), String> {
    let json = || serde_json::from_str::<Value>(value).ok();
    let ok = match ty {
        "bool" => matches!(value, "true" | "false" | "1" | "0"),
        "unsigned int" => !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()),
        "int" => value.strip_prefix('-').unwrap_or(value).parse::<u64>().is_ok(),
        "float" => value.parse::<f64>().is_ok(),
        "datetime" => {
            value.parse::<i64>().is_ok()
                || time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339).is_ok()
        }
        "Object" | "map" => json().is_some_and(|v| v.is_object()),
        "list<string>" => {
            json().is_some_and(|v| v.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
                || !value.starts_with('[')
        }
        // One item of an indexed list (`attached_media[0]`) or the whole list as JSON.
        "list<Object>" | "list<map>" => {
            json().is_some_and(|v| v.is_object() || v.as_array().is_some_and(|a| a.iter().all(Value::is_object)))
        }
        "string" => true,
        enumerated if specs.enums.contains_key(enumerated) => specs.enums[enumerated].iter().any(|v| v == value),
        // Node references and types the subset does not spell out: not judged.
        _ => true,
    };
    if ok { Ok(()) } else { Err(format!("{value:?} is not a {ty}")) }
}

/// Judges one Graph call on a node of type `node` (`Page`, `IGUser`, `ShadowIGMediaBuilder`, …)
/// at `edge` (`None`: the node itself). `Err` with the spec's complaints where it breaks them.
pub fn judge(
    method: &str,
    node: &str,
    edge: Option<&str>,
    params: &HashMap<String, String>,
) -> Result<(String, Judged), Vec<String>> {
    let specs = &*SPECS;
    let at = match (edge, method) {
        (Some(edge), _) => edge.to_owned(),
        (None, "POST") => "#update".to_owned(),
        (None, method) => format!("#{}", method.to_ascii_lowercase()),
    };
    let key = format!("{method} {node}/{at}");
    let Some(api) = specs.apis.get(&key) else { return Ok((key, Judged::Undescribed)) };
    let mut errors = Vec::new();
    let mut given: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, value) in params {
        // `attached_media[0]`: one item of the list parameter `attached_media`.
        let bare = name.split('[').next().unwrap_or(name);
        given.entry(bare).or_default().push(value);
    }
    for (name, values) in &given {
        match api.params.iter().find(|(n, _, _)| n == name) {
            Some((_, ty, _)) => {
                errors.extend(values.iter().filter_map(|v| typed(specs, ty, v).err().map(|e| format!("{name}: {e}"))))
            }
            None if UNIVERSAL.contains(name) => {}
            None => errors.push(format!("{name} is not a parameter of {key}")),
        }
    }
    for (name, _, required) in &api.params {
        if *required && !given.contains_key(name.as_str()) {
            errors.push(format!("{name} is required by {key}"));
        }
    }
    if let (Some(fields), Some(known)) = (params.get("fields"), specs.fields.get(&api.returns)) {
        for field in fields.split(',').map(|f| f.split(['{', '.']).next().unwrap_or(f).trim()) {
            if !known.iter().any(|k| k == field) {
                errors.push(format!("{field} is not a field of {}", api.returns));
            }
        }
    }
    if errors.is_empty() { Ok((key, Judged::Validated)) } else { Err(errors) }
}

/// Compiles the subset now (once per process).
pub fn warm() {
    LazyLock::force(&SPECS);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn calls_are_judged_by_metas_own_specs() {
        let ok = |method, node, edge, p: &[(&str, &str)]| judge(method, node, edge, &params(p)).map(|(_, j)| j);
        assert_eq!(
            ok("POST", "Page", Some("feed"), &[("message", "hi"), ("access_token", "t")]),
            Ok(Judged::Validated)
        );
        assert_eq!(
            ok("POST", "Page", Some("feed"), &[("message", "hi"), ("attached_media[0]", r#"{"media_fbid":"1"}"#)]),
            Ok(Judged::Validated)
        );
        assert!(ok("POST", "Page", Some("feed"), &[("mesage", "hi")]).is_err(), "an unknown parameter");
        assert!(
            ok("POST", "Page", Some("photos"), &[("url", "u"), ("published", "no")]).is_err(),
            "published is a bool"
        );
        assert!(ok("POST", "IGUser", Some("media_publish"), &[]).is_err(), "creation_id is required");
        assert!(ok("POST", "IGUser", Some("media_publish"), &[("creation_id", "ctr-1")]).is_err(), "an unsigned int");
        assert_eq!(ok("GET", "ShadowIGMediaBuilder", None, &[("fields", "status_code")]), Ok(Judged::Validated));
        assert!(ok("GET", "ShadowIGMediaBuilder", None, &[("fields", "state")]).is_err(), "not a container field");
        assert_eq!(ok("GET", "User", Some("accounts"), &[]), Ok(Judged::Undescribed));
    }
}
