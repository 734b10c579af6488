//! Benchmark: X's text rules (`herald-x-text`), the CPU one X post's validation costs at intake
//! and in the sandbox. Compiles the URL patterns once (a cold instance's first X post), then
//! parses each sample `N` times and reports the median.
//!
//! Usage: `bench-text [N]` (default 2000). Prints a Markdown section; writes
//! `$HERALD_BENCH_OUT/text.json` when that is set.

use std::time::{Duration, Instant};

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(2000);
    let started = Instant::now();
    herald_x_text::urls::warm();
    let compile = started.elapsed();
    let samples: Vec<(&str, String)> = vec![
        ("text only, 102 characters", "plain text without any link at all, just words and words and more words to fill the post out".into()),
        (
            "two links (one without a scheme) and emoji, 115 characters",
            "Launch day! Read the notes at https://example.com/blog/2026/launch (and the FAQ at example.org/faq) — thanks all 🎉🎉".into(),
        ),
        ("160 CJK characters", "故人西辞黄鹤楼，烟花三月下扬州。".repeat(10)),
        ("140 family emoji (280)", "👨‍👩‍👧‍👦".repeat(140)),
        ("25,000 characters of dotted words (no URL; linear time)", "a.b-".repeat(6250)),
        ("25,000 characters, 1,000 links", "see t.co/abc ".repeat(1000).chars().take(25_000).collect()),
    ];
    let mut rows = Vec::new();
    for (what, text) in &samples {
        let runs: Vec<Duration> = (0..n)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(herald_x_text::parse(std::hint::black_box(text), &herald_x_text::V3));
                t.elapsed()
            })
            .collect();
        rows.push((what, median(runs)));
    }
    println!("## X text rules: weighted length and URL extraction\n");
    println!(
        "`bench-text {n}` (x-text/bench/text.rs): `herald_x_text::parse` with X's configuration v3, the median of {n} runs per sample. \
         The patterns compile once per process, at the first X post (the sandbox compiles them at start).\n"
    );
    println!("| | time |\n|---|---|");
    println!("| compile the URL patterns (once) | {:.1} ms |", compile.as_secs_f64() * 1e3);
    for (what, took) in &rows {
        println!("| parse: {what} | {:.1} µs |", took.as_secs_f64() * 1e6);
    }
    println!();
    if let Ok(dir) = std::env::var("HERALD_BENCH_OUT") {
        let figures: Vec<String> = rows
            .iter()
            .map(|(what, took)| format!("{{\"sample\": {what:?}, \"us\": {:.1}}}", took.as_secs_f64() * 1e6))
            .collect();
        let json =
            format!("{{\"compile_ms\": {:.1}, \"parse\": [{}]}}\n", compile.as_secs_f64() * 1e3, figures.join(", "));
        std::fs::write(format!("{dir}/text.json"), json).expect("write text.json");
    }
}
