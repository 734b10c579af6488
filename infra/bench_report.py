#!/usr/bin/env python3
"""Write docs/benchmarks.md from one `./infra/dev bench` run.

Usage: bench_report.py <run dir> <output file>

The run dir holds each benchmark's Markdown section (`*.md`) and figures (`*.json`), and
`sizes.md` (the release profile and TLS measurements). This script adds the machine, the date,
the cost per million posts (computed from the measured figures and the list prices below) and
the notes from infra/benchmarks-notes.md.
"""

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

# List prices, us-east-1, checked 2026-11-29 (see the doc's cost section for sources).
PRICES = {
    "lambda_gb_second": 0.0000166667,  # x86_64, first 6 billion GB-s a month
    "lambda_request": 0.20 / 1e6,
    "http_api_request": 1.00 / 1e6,  # API Gateway HTTP API, first 300 million a month
    "dynamodb_wru": 0.625 / 1e6,  # on-demand, standard table class
    "dynamodb_rru": 0.125 / 1e6,
    "dynamodb_wcu_hour": 0.00065,  # provisioned, standard table class
    "dynamodb_rcu_hour": 0.00013,
    "sqs_request": 0.40 / 1e6,  # standard queue, per 64 KiB chunk
    "kms_request": 0.03 / 1e4,
}

# Request units of one warm publish (one X target, items under 1 KB, no idempotency key), from
# the writes in shared/src/store/posts.rs, ratelimit.rs and journal.rs. Transactional writes
# and condition checks cost twice a plain one; an index entry written or removed costs one WRU.
DYNAMODB_UNITS = [
    # (what, WRU, RRU)
    ("API key: cached per instance for 60 s", 0.0, 0.0),
    ("account read (strongly consistent GetItem)", 0.0, 1.0),
    ("create transaction: post, target (claimed) [2 + 2]", 4.0, 0.0),
    ("create transaction: per-account budget counter [2]", 2.0, 0.0),
    ("create transaction: app-wide lease, one in ten posts [2 / 10]", 0.2, 0.0),
    ("create transaction: account blocked-until check [2 RRU]", 0.0, 2.0),
    ("index entries: the user's post list (gsi1), the target's due entry (gsi2)", 2.0, 0.0),
    ("outcome: one conditional put of the target, which keeps its post.published event", 1.0, 0.0),
    ("index entries: the kept event enters gsi1, the target leaves the due index (gsi2)", 2.0, 0.0),
]
# With provisioned capacity, auto scaling keeps use near its 70 % target (template.yaml,
# `TableCapacity: provisioned`): a unit-second bought is 0.7 of one used, under steady load.
PROVISIONED_USE = 0.70
# Lambda gives a function CPU in proportion to its memory: one vCPU at 1,769 MB.
FULL_CPU_MB = 1769

# The platform's own answer time is not in the local figures (the sandbox answers in about a
# millisecond); Lambda bills it. X's POST /2/tweets is assumed to take this long.
PLATFORM_LATENCY_MS = 300.0


def posts_memory_mb() -> int:
    """The `posts` function's memory size in template.yaml (its own, else the Globals')."""
    import re

    text = (Path(__file__).resolve().parent.parent / "template.yaml").read_text()
    own = re.search(r"\n  PostsFunction:\n(?:    .*\n|\n)*?      MemorySize: (\d+)", text)
    globals_ = re.search(r"\nGlobals:\n  Function:\n(?:    .*\n)*?    MemorySize: (\d+)", text)
    return int((own or globals_).group(1))


MEMORY_MB = posts_memory_mb()


def billed_ms(warm_ms: float, posts: dict) -> float:
    """A warm publish as Lambda bills it: the local warm invocation, its CPU time slowed to the
    function's share of a vCPU, and the platform's answer time."""
    slowdown = max(0.0, FULL_CPU_MB / MEMORY_MB - 1)
    return warm_ms + posts.get("cpu_ms", 0.0) * slowdown + PLATFORM_LATENCY_MS


def unit_prices(capacity: str) -> tuple[float, float]:
    """What one write unit and one read unit cost, on demand or provisioned at PROVISIONED_USE."""
    if capacity == "provisioned":
        per = 3600 * PROVISIONED_USE
        return PRICES["dynamodb_wcu_hour"] / per, PRICES["dynamodb_rcu_hour"] / per
    return PRICES["dynamodb_wru"], PRICES["dynamodb_rru"]


def load(run: Path, name: str) -> dict:
    path = run / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def section(run: Path, name: str) -> str:
    path = run / f"{name}.md"
    return path.read_text().strip() + "\n" if path.exists() else f"_({name} was not run)_\n"


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    rustc = subprocess.run(["rustc", "-V"], capture_output=True, text=True).stdout.strip()
    try:
        from importlib.metadata import version

        moto = f"moto {version('moto')}"
    except Exception:  # noqa: BLE001 - the report runs without moto's metadata too
        moto = "moto (version unknown)"
    return f"{model}, {os.cpu_count()} cores, {memory:.0f} GiB, {platform.system()} {platform.machine()}; {rustc}; {moto}"


def cost_items(lambdas: dict, posts: dict, capacity: str) -> list[tuple[str, str, float]] | None:
    """One warm publish's AWS charges: (item, amount, dollars)."""
    functions = {row["function"]: row for row in lambdas.get("functions", [])}
    warm_ms = functions.get("posts", {}).get("warm_ms")
    if warm_ms is None:
        return None
    billed = billed_ms(warm_ms, posts)
    wru = sum(u[1] for u in DYNAMODB_UNITS)
    rru = sum(u[2] for u in DYNAMODB_UNITS)
    wru_price, rru_price = unit_prices(capacity)
    return [
        ("Lambda duration", f"{billed:.0f} ms × {MEMORY_MB} MB", billed / 1000 * MEMORY_MB / 1024 * PRICES["lambda_gb_second"]),
        ("Lambda requests", "1", PRICES["lambda_request"]),
        ("API Gateway HTTP API", "1 request", PRICES["http_api_request"]),
        ("DynamoDB writes", f"{wru:.1f} WRU", wru * wru_price),
        ("DynamoDB reads", f"{rru:.1f} RRU", rru * rru_price),
        ("SQS", f"{posts.get('sqs', 0):.2f} requests", posts.get("sqs", 0) * PRICES["sqs_request"]),
        ("KMS", f"{posts.get('kms_over_run', 0):.4f} requests", posts.get("kms_over_run", 0) * PRICES["kms_request"]),
    ]


def cost_total(lambdas: dict, posts: dict, capacity: str = "on-demand") -> float | None:
    items = cost_items(lambdas, posts, capacity)
    return None if items is None else 1e6 * sum(i[2] for i in items)


def targets(posts: dict, worker: dict, lambdas: dict) -> str:
    functions = {row["function"]: row for row in lambdas.get("functions", [])}
    hello = functions.get("hello", {}).get("init_ms")
    rows = []

    def row(target: str, measured: str, met: bool | None) -> None:
        verdict = "" if target.startswith("(not a target)") else "met" if met else "missed" if met is not None else "not measured"
        rows.append(f"| {target} | {measured} | {verdict} |")

    herald = [functions[f] for f in ("connect", "posts", "webhooks", "retries") if f in functions]
    if hello and herald:
        own = {f["function"]: f.get("init_before_warm_up_ms") or f["init_ms"] for f in herald}
        worst = max(v / hello for v in own.values())
        each = ", ".join("{} {:.2f}".format(name, v / hello) for name, v in own.items())
        row("init ≤ 1.5× hello-world (Herald's own init, before its warm-up calls)", f"worst {worst:.2f}× ({each})", worst <= 1.5)
        warm_up = ", ".join("{} {:.1f} ms".format(f["function"], f["init_ms"] - own[f["function"]]) for f in herald)
        row("(not a target) the warm-up calls' share of init, on moto", warm_up, None)
        opened = max(f.get("connections_first") or 0 for f in herald)
        row("first invocation opens no connection init could have opened", f"{opened} new AWS connections at most", opened == 0)
        size = max(f.get("bootstrap_bytes") or 0 for f in herald) / 2**20
        row("stripped bootstrap ≤ 8 MB per function", f"largest {size:.2f} MiB", size <= 8)
        rss = functions.get("retries", {}).get("peak_rss_kib")
        if rss:
            row("peak RSS ≤ 40 MB for a 10-message batch (`retries`)", f"{rss / 1024:.1f} MiB", rss / 1024 <= 40)
    else:
        row("init, connections, size, RSS", "–", None)
    if posts:
        calls = f"{posts['dynamodb']:.2f} DynamoDB, {posts['kms']:.2f} KMS, {posts['sqs']:.2f} SQS"
        row("≤ 3 DynamoDB, 0 KMS, 0 SQS calls per warm publish", calls, posts["dynamodb"] <= 3 and posts["kms"] == 0 and posts["sqs"] == 0)
    batches = {b["latency_ms"]: b for b in worker.get("batches", [])}
    slow = batches.get(max(batches) if batches else None)
    if slow:
        ratio = slow["ten_ms"] / slow["one_ms"]
        row(f"batch of 10 within 1.5× one message ({slow['latency_ms']} ms platform latency)", f"{ratio:.2f}× on moto", ratio <= 1.5)
    total = cost_total(lambdas, posts)
    provisioned = cost_total(lambdas, posts, "provisioned")
    measured = "–" if total is None else f"${total:.2f} on demand (the default); ${provisioned:.2f} with provisioned capacity at steady load"
    row("≤ $5 of AWS cost per million posts", measured, None if total is None else total <= 5)
    return "\n".join(["| target (issue 8) | measured | |", "|---|---|---|", *rows]) + "\n"


def cost(posts: dict, lambdas: dict) -> str:
    functions = {row["function"]: row for row in lambdas.get("functions", [])}
    warm_ms = functions.get("posts", {}).get("warm_ms")
    on_demand, provisioned = cost_items(lambdas, posts, "on-demand"), cost_items(lambdas, posts, "provisioned")
    if warm_ms is None or on_demand is None or provisioned is None:
        return "_(the cost needs the `posts` function's warm invocation from bench-lambda)_\n"
    lines = ["| item | per post | per million posts, on demand | provisioned, at 70 % use |", "|---|---|---|---|"]
    for (name, amount, price), (_, _, other) in zip(on_demand, provisioned):
        lines.append(f"| {name} | {amount} | ${price * 1e6:.2f} | ${other * 1e6:.2f} |")
    totals = [sum(i[2] for i in items) * 1e6 for items in (on_demand, provisioned)]
    lines.append(f"| **total** | | **${totals[0]:.2f}** | **${totals[1]:.2f}** |")
    lines.append("")
    lines.append("Where the DynamoDB units come from (model of one warm publish; the calls are counted above):")
    lines.append("")
    lines.append("| write or read | WRU | RRU |")
    lines.append("|---|---|---|")
    for what, w, r in DYNAMODB_UNITS:
        lines.append(f"| {what} | {w:g} | {r:g} |")
    lines.append("")
    lines.append(
        f"Lambda duration is the `posts` function's measured warm invocation ({warm_ms:.1f} ms, local stack), plus its "
        f"CPU time ({posts.get('cpu_ms', 0):.2f} ms a post, above) slowed to its {MEMORY_MB} MB share of a vCPU "
        f"(Lambda gives one vCPU at {FULL_CPU_MB} MB; the size is template.yaml's), plus "
        f"{PLATFORM_LATENCY_MS:.0f} ms assumed for X to answer `POST /2/tweets` (the sandbox answers at once; Lambda "
        "bills the wait). Prices: us-east-1 list prices, checked "
        "2026-11-29 — Lambda x86_64 $0.0000166667 per GB-s and $0.20 per million requests; HTTP API $1.00 per "
        "million; DynamoDB on-demand $0.625 per million WRU, $0.125 per million RRU (after the November 2024 cut), "
        "provisioned $0.00065 per WCU-hour and $0.00013 per RCU-hour (checked 2026-12-03 against a secondary summary only, as AWS's provisioned pricing page in the stored copies shows no figures: confirm before relying on it), bought at "
        f"{PROVISIONED_USE:.0%} use (auto scaling's target; `TableCapacity: provisioned`); "
        "SQS standard $0.40 per million; KMS $0.03 per 10,000 requests (from AWS's pricing "
        "pages as summarized in the project's performance references; check them before relying on the total). Not counted: storage, data transfer, CloudWatch Logs, the KMS "
        "key's $1 a month, provisioned capacity's floor when idle, and the platforms' own charges (X: $0.015 per post)."
    )
    return "\n".join(lines) + "\n"


def chaos(run: Path) -> str:
    """The chaos runs' own summary lines and per-platform tables, as printed."""
    path = run / "chaos.txt"
    if not path.exists():
        return "_(the chaos runs were not run)_\n"
    return (
        "## Chaos at scale: exactly once, per platform\n\n"
        "`tests/it/chaos.rs` at the sizes `./infra/dev bench` gives it (300 posts with platform faults and a\n"
        "revoked LinkedIn grant; 3,000 with both fault families at once, DynamoDB's as well), one run after the other:\n\n"
        "```\n" + path.read_text().strip() + "\n```\n"
    )


def main() -> None:
    run, output = Path(sys.argv[1]), Path(sys.argv[2])
    posts, worker, lambdas = load(run, "posts"), load(run, "worker"), load(run, "lambda")
    notes = Path(__file__).with_name("benchmarks-notes.md").read_text().strip()
    doc = [
        "# Benchmarks",
        "",
        "Written by `./infra/dev bench` (all of it; edit infra/benchmarks-notes.md or the benchmarks, not this file).",
        "CI runs `./infra/dev bench --smoke` on every test run: a short version that fails when a function's",
        "stripped bootstrap exceeds 8 MiB, a warm publish makes more than 3 DynamoDB, 0 KMS or 0 SQS calls,",
        "100 short-lived instances publishing once take more than 100 app-wide units, or a sweep job",
        "does more than its pages, misses a due target or makes a KMS call for a grant it passes over.",
        "",
        f"Machine: {machine()}.",
        f"Date: {datetime.date.today().isoformat()}.",
        "",
        "## Targets",
        "",
        targets(posts, worker, lambdas),
        section(run, "posts"),
        section(run, "worker"),
        section(run, "sweep"),
        section(run, "text"),
        section(run, "lambda"),
        chaos(run),
        "## AWS cost per million published posts",
        "",
        cost(posts, lambdas),
        notes,
        "",
    ]
    output.write_text("\n".join(doc))


if __name__ == "__main__":
    main()
