#!/usr/bin/env bash
# Measures the release-profile and TLS-provider alternatives for the `posts` function: builds
# each variant in a copy of the work tree (its own target dir, so every build is cold) and
# prints its build time and stripped binary size as a Markdown table. Slow (one cold release
# build per variant, ~4-8 minutes each on 2 cores); run by hand when the choice is revisited:
#
#   infra/bench_variants.sh [work dir, default /tmp/herald-variants]
#
# Its table is copied into infra/benchmarks-notes.md with the date.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-/tmp/herald-variants}"
mkdir -p "$work"

variant() {
    local slug="$1" name="$2" edit="$3" tree="$work/$1"
    shift 3
    rm -rf "$tree"
    git -C "$repo" worktree add -q --detach "$tree" HEAD 2>/dev/null || { rm -rf "$tree"; git -C "$repo" worktree prune; git -C "$repo" worktree add -q --detach "$tree" HEAD; }
    (cd "$tree" && eval "$edit")
    local started=$SECONDS
    (cd "$tree" && env "$@" cargo build -q --release --locked -p posts --target-dir "$tree/target" 2>/dev/null) ||
        (cd "$tree" && env "$@" cargo build -q --release -p posts --target-dir "$tree/target")
    local took=$((SECONDS - started)) size
    size=$(stat -c %s "$tree/target/release/posts")
    printf '| %s | %.2f MiB | %d s |\n' "$name" "$(echo "$size / 1048576" | bc -l)" "$took"
    git -C "$repo" worktree remove --force "$tree"
}

echo "| variant of the \`posts\` function | stripped binary | cold release build (2 cores) |"
echo "|---|---|---|"
variant chosen "chosen: opt-level s, fat LTO, 1 codegen unit, panic abort, rustls + ring" ":" X=1
variant opt3 "opt-level 3 (otherwise as chosen)" ":" CARGO_PROFILE_RELEASE_OPT_LEVEL=3
variant optz "opt-level z" ":" CARGO_PROFILE_RELEASE_OPT_LEVEL=z
variant thin "thin LTO, 16 codegen units" ":" CARGO_PROFILE_RELEASE_LTO=thin CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
variant awslc "rustls + aws-lc-rs (the SDK's default provider)" \
    "sed -i 's/\"rustls-ring\"/\"rustls-aws-lc\"/; s/features = \\[\"ring\", \"std\"\\]/features = [\"aws_lc_rs\", \"std\"]/' Cargo.toml && sed -i 's/CryptoMode::Ring/CryptoMode::AwsLc/' shared/src/aws.rs && sed -i 's/rustls::crypto::ring::default_provider/rustls::crypto::aws_lc_rs::default_provider/' shared/src/platforms/mod.rs" \
    X=1
