//! The fidelity ledger (docs/fidelity-ledger.md) covers the sandbox: every route the sandbox
//! serves as a platform is named in it, and every row of its tables gives a source and says
//! whether a public source settles the behaviour. A behaviour without a source is a bug in the
//! ledger (issue 16).

use std::path::Path;

fn ledger() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/fidelity-ledger.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The paths of every `.route("…", …)` in the sandbox's sources, but its own control routes.
fn routes() -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&src).expect("src") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("source");
        for piece in text.split(".route(\"").skip(1) {
            let path = piece.split('"').next().unwrap_or_default();
            if !path.starts_with("/_sandbox") {
                found.push(path.to_owned());
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn every_route_the_sandbox_serves_is_in_the_ledger() {
    let ledger = ledger();
    let routes = routes();
    assert!(routes.len() > 25, "the route scan found too few: {routes:?}");
    let missing: Vec<&String> = routes.iter().filter(|route| !ledger.contains(route.as_str())).collect();
    assert!(missing.is_empty(), "routes the fidelity ledger does not name: {missing:?}");
}

#[test]
fn every_row_of_the_ledger_has_a_source_and_says_if_it_is_settled() {
    let ledger = ledger();
    let mut rows = 0;
    for line in
        ledger.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| behaviour") && !l.starts_with("|---"))
    {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(cells.len(), 3, "a row is behaviour | source | settled: {line}");
        let (source, settled) = (cells[1], cells[2]);
        assert!(!source.is_empty(), "a row without a source: {line}");
        assert!(
            source != "—" || settled.contains("no public source") || settled.contains("own device"),
            "no source, and it does not say so: {line}"
        );
        let says = ["yes", "second-hand", "no public source", "the sandbox's own device"];
        assert!(says.iter().any(|s| settled.starts_with(s)), "settled must start with one of {says:?}: {line}");
        rows += 1;
    }
    assert!(rows > 60, "the ledger's tables have only {rows} rows");
}
