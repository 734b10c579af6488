//! twitter-text's conformance suite (conformance/, copied byte for byte from twitter/twitter-text;
//! see conformance/SOURCE.txt) judging this crate: every case of every section X's rules depend
//! on must pass. Sections about entities that do not change what X counts or refuses (mentions,
//! hashtags, replies, and the `isValid*` checks of single usernames, lists, hashtags and URLs)
//! are listed as not run, with that reason, rather than skipped silently.

use herald_x_text::{Config, Parsed, V1, V2, V3, cashtags_with_indices, extract_urls, parse};
use serde_yaml_ng::Value;

fn suite(file: &str) -> serde_yaml_ng::Mapping {
    let path = format!("{}/conformance/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let doc: Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    doc["tests"].as_mapping().cloned().unwrap_or_else(|| panic!("{path}: no tests"))
}

fn text(case: &Value) -> String {
    case["text"].as_str().map(str::to_owned).unwrap_or_default()
}

/// UTF-16 code units before byte `at`: the suite's index unit (twitter-text's JS and Java).
fn utf16_at(text: &str, at: usize) -> u64 {
    text[..at].encode_utf16().count() as u64
}

struct Report {
    rows: Vec<(String, usize, usize)>,
    failures: Vec<String>,
}

impl Report {
    fn section(
        &mut self,
        file: &str,
        tests: &serde_yaml_ng::Mapping,
        name: &str,
        check: impl Fn(&Value) -> Option<String>,
    ) {
        let cases = tests.get(name).and_then(Value::as_sequence).unwrap_or_else(|| panic!("{file}: no section {name}"));
        let mut passed = 0;
        for case in cases {
            match check(case) {
                None => passed += 1,
                Some(why) => self
                    .failures
                    .push(format!("{file} {name}: {:?}: {why}", case["description"].as_str().unwrap_or(""))),
            }
        }
        self.rows.push((format!("{file} {name}"), passed, cases.len()));
    }
}

fn counter(config: Config) -> impl Fn(&Value) -> Option<String> {
    move |case| {
        let e = &case["expected"];
        let n = |key: &str| e[key].as_u64().map(|v| v as usize);
        let want = Parsed {
            weighted_length: n("weightedLength")?,
            valid: e["valid"].as_bool()?,
            permillage: n("permillage").unwrap_or(0),
            display_range: (n("displayRangeStart").unwrap_or(0), n("displayRangeEnd").unwrap_or(0)),
            valid_range: (n("validRangeStart").unwrap_or(0), n("validRangeEnd").unwrap_or(0)),
        };
        let mut got = parse(&text(case), &config);
        // Cases that leave out the ranges or permillage do not judge them.
        if n("permillage").is_none() {
            got.permillage = 0;
        }
        if n("displayRangeEnd").is_none() {
            (got.display_range, got.valid_range) = ((0, 0), (0, 0));
        }
        (got != want).then(|| format!("got {got:?}, want {want:?}"))
    }
}

fn urls_only(case: &Value) -> Option<String> {
    let t = text(case);
    let got: Vec<&str> = extract_urls(&t).iter().map(|u| u.text).collect();
    let want: Vec<&str> = case["expected"].as_sequence()?.iter().filter_map(Value::as_str).collect();
    (got != want).then(|| format!("got {got:?}, want {want:?}"))
}

fn with_indices(
    key: &'static str,
    found: fn(&str) -> Vec<(String, usize, usize)>,
) -> impl Fn(&Value) -> Option<String> {
    move |case| {
        let t = text(case);
        let got: Vec<(String, u64, u64)> =
            found(&t).into_iter().map(|(s, a, b)| (s, utf16_at(&t, a), utf16_at(&t, b))).collect();
        let want: Vec<(String, u64, u64)> = case["expected"]
            .as_sequence()?
            .iter()
            .map(|e| {
                let at = |i: usize| e["indices"][i].as_u64().unwrap_or(u64::MAX);
                (e[key].as_str().unwrap_or("").to_owned(), at(0), at(1))
            })
            .collect();
        (got != want).then(|| format!("got {got:?}, want {want:?}"))
    }
}

fn urls_with_indices(t: &str) -> Vec<(String, usize, usize)> {
    extract_urls(t).iter().map(|u| (u.text.to_owned(), u.start, u.end)).collect()
}

fn cashtags_found(t: &str) -> Vec<(String, usize, usize)> {
    cashtags_with_indices(t).into_iter().map(|(tag, r)| (tag.to_owned(), r.start, r.end)).collect()
}

#[test]
fn twitter_text_conformance_suite_passes_whole() {
    let mut report = Report { rows: Vec::new(), failures: Vec::new() };
    let validate = suite("validate.yml");
    report.section("validate.yml", &validate, "tweets", |case| {
        let want = case["expected"].as_bool()?;
        let got = parse(&text(case), &V1).valid;
        (got != want).then(|| format!("valid {got}, want {want}"))
    });
    report.section("validate.yml", &validate, "WeightedTweetsCounterTest", counter(V2));
    report.section("validate.yml", &validate, "WeightedTweetsWithDiscountedEmojiCounterTest", counter(V3));
    report.section("validate.yml", &validate, "UnicodeDirectionalMarkerCounterTest", counter(V3));

    let extract = suite("extract.yml");
    for name in ["urls", "tco_urls_with_params"] {
        report.section("extract.yml", &extract, name, urls_only);
    }
    for name in ["urls_with_indices", "urls_with_directional_markers"] {
        report.section("extract.yml", &extract, name, with_indices("url", urls_with_indices));
    }
    report.section("extract.yml", &extract, "cashtags", |case| {
        let t = text(case);
        let got: Vec<String> = cashtags_found(&t).into_iter().map(|c| c.0).collect();
        let want: Vec<String> =
            case["expected"].as_sequence()?.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
        (got != want).then(|| format!("got {got:?}, want {want:?}"))
    });
    report.section("extract.yml", &extract, "cashtags_with_indices", with_indices("cashtag", cashtags_found));

    let tlds = suite("tlds.yml");
    for name in ["country", "generic"] {
        report.section("tlds.yml", &tlds, name, urls_only);
    }

    let run: Vec<&str> = report.rows.iter().map(|r| r.0.as_str()).collect();
    let not_run: Vec<String> = [("validate.yml", &validate), ("extract.yml", &extract)]
        .iter()
        .flat_map(|(file, tests)| tests.keys().filter_map(|k| k.as_str()).map(move |k| format!("{file} {k}")))
        .filter(|k| !run.contains(&k.as_str()))
        .collect();
    println!("twitter-text conformance (section: passed/cases)");
    for (name, passed, total) in &report.rows {
        println!("  {name}: {passed}/{total}");
    }
    println!("not run (entities that do not change X's count or refusals): {}", not_run.join(", "));
    assert_eq!(
        not_run,
        [
            "validate.yml usernames",
            "validate.yml lists",
            "validate.yml hashtags",
            "validate.yml urls",
            "validate.yml urls_without_protocol",
            "extract.yml mentions",
            "extract.yml mentions_with_indices",
            "extract.yml mentions_or_lists_with_indices",
            "extract.yml replies",
            "extract.yml hashtags",
            "extract.yml hashtags_from_astral",
            "extract.yml hashtags_with_indices",
        ],
        "a section the suite gained or lost must be run or listed here"
    );
    assert!(report.failures.is_empty(), "{} cases failed:\n{}", report.failures.len(), report.failures.join("\n"));
}

/// The constants are X's published configuration (conformance/v3.json), not a copy from memory.
#[test]
fn the_v3_configuration_is_the_published_one() {
    let path = format!("{}/conformance/v3.json", env!("CARGO_MANIFEST_DIR"));
    let json: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).expect("v3.json")).expect("json is yaml");
    let n = |key: &str| json[key].as_u64().map(|v| v as usize);
    assert_eq!(n("version"), Some(V3.version as usize));
    assert_eq!(n("maxWeightedTweetLength"), Some(V3.max_weighted_length));
    assert_eq!(n("scale"), Some(V3.scale));
    assert_eq!(n("defaultWeight"), Some(V3.default_weight));
    assert_eq!(n("transformedURLLength"), Some(V3.transformed_url_length));
    assert_eq!(json["emojiParsingEnabled"].as_bool(), Some(V3.emoji_parsing));
    let ranges: Vec<(u32, u32, usize)> = json["ranges"]
        .as_sequence()
        .expect("ranges")
        .iter()
        .map(|r| {
            (
                r["start"].as_u64().unwrap_or(0) as u32,
                r["end"].as_u64().unwrap_or(0) as u32,
                r["weight"].as_u64().unwrap_or(0) as usize,
            )
        })
        .collect();
    assert_eq!(ranges, V3.ranges);
}
