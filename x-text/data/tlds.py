#!/usr/bin/env python3
"""Writes tlds.txt from the conformance copy of twitter-text's tlds.yml (run from x-text/).

Each tlds.yml case is `https://twitter.<tld>` expected to be extracted whole, so the cases are the
list. Needs PyYAML (`pip install pyyaml`); the build reads only tlds.txt.
"""
import yaml

cases = yaml.safe_load(open("conformance/tlds.yml"))["tests"]
out = [
    "# The top-level domains twitter-text's URL extraction knows (twitter/twitter-text, conformance/tlds.yml",
    "# at commit 30e2430d, the same list as its tld_lib.yml): one per line, country codes first, then generic.",
    "# Regenerate with x-text/data/tlds.py when the conformance copy is updated.",
]
for kind in ("country", "generic"):
    out.append(f"[{kind}]")
    for case in cases[kind]:
        assert case["expected"] == [case["text"]], case
        out.append(case["text"].split("twitter.", 1)[1])
open("data/tlds.txt", "w").write("\n".join(out) + "\n")
