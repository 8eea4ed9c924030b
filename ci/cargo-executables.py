#!/usr/bin/env python3
"""Reads cargo's --message-format=json on stdin and prints the path of
every executable it built that matches, one per line.

  cargo test --tests --no-run --message-format=json | python3 ci/cargo-executables.py --tests
  cargo bench --no-run --message-format=json | python3 ci/cargo-executables.py --target latency
"""
import json, sys

args = sys.argv[1:]
want_tests = "--tests" in args
target = args[args.index("--target") + 1] if "--target" in args else None
for line in sys.stdin:
    if not line.startswith("{"):
        continue
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    if (want_tests and m["profile"]["test"]) or (target and m["target"]["name"] == target):
        print(m["executable"])
