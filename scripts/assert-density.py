#!/usr/bin/env python3
"""Asserts per production function in a source tree (default: model/src).

Counts `fn` items and assert!/assert_eq!/assert_ne!/debug_assert* macros in production code:
test files (tests.rs, *_tests.rs, test_support.rs) and inline `#[cfg(test)] mod tests` blocks
are left out. Prints the files with the most functions lacking asserts, then the total ratio.

    scripts/assert-density.py [DIR] [--all]
"""
import os
import re
import sys

args = [a for a in sys.argv[1:] if not a.startswith("--")]
root = args[0] if args else "model/src"
show_all = "--all" in sys.argv
FN = re.compile(r"^\s*(pub(\([a-z]+\))? )?(const )?fn \w+", re.M)
ASSERT = re.compile(r"\b(debug_)?assert(_eq|_ne)?!")
rows = []
for d, _, files in os.walk(root):
    for f in files:
        if not f.endswith(".rs") or f == "tests.rs" or f.endswith("_tests.rs") or f == "test_support.rs":
            continue
        path = os.path.join(d, f)
        src = open(path, encoding="utf-8").read()
        cut = src.find("#[cfg(test)]\nmod tests {")
        if cut >= 0:
            src = src[:cut]
        rows.append((path, len(FN.findall(src)), len(ASSERT.findall(src))))
rows.sort(key=lambda r: (r[1] - r[2], r[0]))
for path, fns, asserts in rows if show_all else rows[-15:]:
    print(f"{asserts:4} asserts {fns:4} functions  {path}")
fns = sum(r[1] for r in rows)
asserts = sum(r[2] for r in rows)
print(f"total: {asserts} asserts over {fns} production functions = {asserts / max(fns, 1):.2f} per function")
