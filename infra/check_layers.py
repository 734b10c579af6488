#!/usr/bin/env python3
"""The shared crate's top-level modules and the imports between them: fails on a new import circle.

A top-level module is each file or folder directly under `shared/src/` (`store/accounts.rs` is
`store`). An edge A -> B is any `crate::B` path in A's code outside `#[cfg(test)]` items (a
`use crate::{b::X, c}` group counts each of its members). Modules that reach each other through
edges form a strongly connected group: an import circle.

The layout table in `shared/src/lib.rs` puts each module on a floor. The check fails on any
circle, on an import of a module on a higher floor, and on a module the table does not place (or a
name in it that is not a module). Usage: `check_layers.py [shared/src] [--graph]`.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def strip(source: str) -> str:
    """Source without comments, string and char literals (their text could look like paths)."""
    out, i, n = [], 0, len(source)
    while i < n:
        c = source[i]
        if source.startswith("//", i):
            j = source.find("\n", i)
            i = n if j < 0 else j
        elif source.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if source.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif source.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', source[i:i + 10]) and not IDENT.match(source[i - 1:i] or " "):
            hashes = re.match(r'r(#*)"', source[i:]).group(1)
            end = source.find('"' + hashes, i + 2 + len(hashes))
            out.append('""')
            i = n if end < 0 else end + 1 + len(hashes)
        elif c == '"':
            i += 1
            while i < n and source[i] != '"':
                i += 2 if source[i] == "\\" else 1
            out.append('""')
            i += 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", source[i:i + 4]) or source.startswith("'\\u{", i):
            end = source.find("'", i + 1)
            out.append("' '")
            i = end + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def without_tests(code: str) -> str:
    """Drops every item marked `#[cfg(test)]` (a `mod tests { … }` or a single item)."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]", code)
        if not m:
            return code
        i = m.end()
        # The item runs to its matching closing brace, or to a `;` before any brace.
        brace, semi = code.find("{", i), code.find(";", i)
        if semi >= 0 and (brace < 0 or semi < brace):
            code = code[: m.start()] + code[semi + 1:]
            continue
        depth, j = 0, brace
        while j < len(code):
            if code[j] == "{":
                depth += 1
            elif code[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        code = code[: m.start()] + code[j + 1:]


def group_members(code: str, start: int) -> list[str]:
    """The first identifier of each member of the `{…}` group opening at `start`."""
    depth, item, members = 0, [], []
    for c in code[start:]:
        if c == "{":
            depth += 1
            if depth == 1:
                continue
        elif c == "}":
            depth -= 1
            if depth == 0:
                members.append("".join(item))
                break
        elif c == "," and depth == 1:
            members.append("".join(item))
            item = []
            continue
        item.append(c)
    firsts = []
    for member in members:
        m = IDENT.match(member.strip())
        if m and m.group(0) != "self":
            firsts.append(m.group(0))
    return firsts


def imports(code: str) -> set[str]:
    found = set()
    for m in re.finditer(r"\bcrate\s*::\s*", code):
        rest = code[m.end():]
        if rest.startswith("{"):
            found.update(group_members(code, m.end()))
        else:
            ident = IDENT.match(rest)
            if ident:
                found.add(ident.group(0))
    return found


def graph(src: Path) -> dict[str, set[str]]:
    modules = {p.stem if p.is_file() else p.name for p in src.iterdir() if p.suffix == ".rs" or p.is_dir()}
    modules.discard("lib")
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for path in src.rglob("*.rs"):
        top = path.relative_to(src).parts[0].removesuffix(".rs")
        if top == "lib":
            continue
        code = without_tests(strip(path.read_text()))
        edges[top].update(t for t in imports(code) if t in modules and t != top)
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def self_test() -> None:
    """The reader on a made-up crate: what counts as an import and what does not."""
    import tempfile

    files = {
        "a.rs": "use crate::{b::X, c};\n// crate::d in a comment\nconst S: &str = \"crate::d\";\n#[cfg(test)]\nmod tests { use crate::d; }\n",
        "b/mod.rs": "pub mod inner;\n",
        "b/inner.rs": "fn f() { crate::a::g(); }\n",
        "c.rs": "#[cfg(test)]\nuse crate::a;\npub fn h() {}\n",
        "d.rs": "/* crate::a */ fn k() { let _ = r#\"crate::a\"#; }\n",
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, code in files.items():
            (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / name).write_text(code)
        edges = graph(Path(tmp))
    expected = {"a": {"b", "c"}, "b": {"a"}, "c": set(), "d": set()}
    assert edges == expected, edges
    assert circles(edges) == [["a", "b"]], circles(edges)


def floors(lib: str) -> dict[str, int]:
    """The layout table of `lib.rs`: rows `//! | N name | `a`, `b` | … |`, module -> floor."""
    out = {}
    for m in re.finditer(r"^//! \| (\d+) [^|]*\| ([^|]*)\|", lib, re.M):
        for module in re.findall(r"`([a-z_]+)`", m.group(2)):
            if module in out:
                raise SystemExit(f"check_layers: {module} is on two floors of the layout table")
            out[module] = int(m.group(1))
    return out


def climbs(edges: dict[str, set[str]], floor: dict[str, int]) -> list[str]:
    """Imports of a module on a higher floor than the importer's."""
    return [
        f"{a} (floor {floor[a]}) imports {b} (floor {floor[b]})"
        for a in sorted(edges)
        for b in sorted(edges[a])
        if a in floor and b in floor and floor[b] > floor[a]
    ]


def floor_self_test() -> None:
    lib = "//! | floor | modules | what |\n//! |---|---|---|\n//! | 1 top | `a` | x |\n//! | 0 base | `b`, `c` | y |\n"
    floor = floors(lib)
    assert floor == {"a": 1, "b": 0, "c": 0}, floor
    assert climbs({"a": {"b"}, "b": {"c"}, "c": set()}, floor) == []
    assert climbs({"a": set(), "b": {"a"}, "c": set()}, floor) == ["b (floor 0) imports a (floor 1)"]


def main() -> int:
    self_test()
    floor_self_test()
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    src = Path(args[0]) if args else ROOT / "shared" / "src"
    edges = graph(src)
    floor = floors((src / "lib.rs").read_text())
    if "--graph" in sys.argv:
        for m in sorted(edges, key=lambda m: (-floor.get(m, 99), m)):
            print(f"{floor.get(m, '?')} {m} -> {', '.join(sorted(edges[m])) or '(nothing)'}")
    groups = circles(edges)
    problems = [f"an import circle: {' ↔ '.join(g)}" for g in groups]
    problems += [f"{m} is not in the layout table of shared/src/lib.rs" for m in sorted(set(edges) - set(floor))]
    problems += [f"the layout table names {m}, which is not a module" for m in sorted(set(floor) - set(edges))]
    problems += climbs(edges, floor)
    count = sum(len(v) for v in edges.values())
    print(f"{len(edges)} top-level modules on {len(set(floor.values()))} floors, {count} imports between them: "
          + (f"{len(problems)} problems" if problems else "no circle, none climbs"))
    for problem in problems:
        print(f"check_layers: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
