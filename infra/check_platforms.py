#!/usr/bin/env python3
"""Product code outside `shared/src/platforms/` never names a specific platform: fails otherwise.

A platform's behaviour lives in its folder under `shared/src/platforms/` (its adapter); everywhere
else the platform is a value passed along. Naming one means `Platform::X` (or any variant), a
`Platform::{…}` group, or a `Platform::*` glob, in the code of `shared/src/` and `functions/`
outside `#[cfg(test)]` items, comments and strings (tests may name platforms as data).

Allowed: `shared/src/platforms/` itself (its registries are the one place a platform is chosen),
`shared/src/domain/mod.rs` (where the type is defined and parsed), and configuration parsing
(`shared/src/config.rs`, `shared/src/secrets.rs`). Usage: `check_platforms.py [--list]`.
"""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_layers import strip, without_tests  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("X", "Facebook", "Instagram", "Linkedin")
NAME = re.compile(r"\bPlatform\s*::\s*(\{|\*|(?:" + "|".join(VARIANTS) + r")\b)")
FREE = ("shared/src/platforms/", "shared/src/domain/mod.rs", "shared/src/config.rs", "shared/src/secrets.rs")


def names(code: str) -> int:
    return len(NAME.findall(without_tests(strip(code))))


def counts(root: Path) -> dict[str, int]:
    found = {}
    for base in ("shared/src", "functions"):
        for path in sorted((root / base).rglob("*.rs")):
            rel = path.relative_to(root).as_posix()
            if rel.startswith(FREE) or "/target/" in rel:
                continue
            n = names(path.read_text())
            if n:
                found[rel] = n
    return found


def self_test() -> None:
    code = (
        "use crate::domain::Platform;\nfn f(p: Platform) { if p == Platform::X {} }\n"
        "fn g() { use Platform::*; let _ = \"Platform::Linkedin\"; }\n// Platform::Facebook\n"
        "#[cfg(test)]\nmod tests { fn t() { let _ = Platform::Instagram; } }\n"
    )
    assert names(code) == 2, names(code)
    assert names("fn h() -> Platform { Platform::{X, Facebook}; Platform::ALL[0] }") == 1


def main() -> int:
    self_test()
    found = counts(ROOT)
    if "--list" in sys.argv:
        for rel, n in found.items():
            print(f"{rel} {n}")
    problems = [f"{rel} names a platform {n} time(s); its behaviour belongs in shared/src/platforms/" for rel, n in found.items()]
    total = sum(found.values())
    print(f"platform variants named outside shared/src/platforms/: {total} in {len(found)} files")
    for problem in problems:
        print(f"check_platforms: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
