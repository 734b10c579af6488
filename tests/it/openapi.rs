//! docs/openapi.yaml describes exactly the operations the routers serve.

use std::collections::BTreeSet;

use herald_testkit::repo_root;

#[test]
fn every_served_route_is_documented_and_every_documented_route_is_served() {
    let text = std::fs::read_to_string(repo_root().join("docs/openapi.yaml")).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().expect("paths") {
        for (method, _) in item.as_mapping().expect("operations") {
            documented.insert((method.as_str().unwrap().to_ascii_uppercase(), path.as_str().unwrap().to_owned()));
        }
    }
    let served: BTreeSet<(String, String)> =
        herald::http::route_specs().into_iter().map(|r| (r.method.to_string(), r.path.to_owned())).collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(undocumented.is_empty(), "served but not in docs/openapi.yaml: {undocumented:?}");
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(unserved.is_empty(), "in docs/openapi.yaml but not served: {unserved:?}");
}
