#!/usr/bin/env python3
"""Compares two clients' use of the wire, from the records ci/e2e/run.py
--wire-record wrote for the same guest workload (our helper's trace log:
request types, counts, numeric arguments, payload sizes).

  python3 ci/e2e/wire-diff.py /var/cache/vph-e2e/wire-5.2.json /var/cache/vph-e2e/wire-7.2.json

Prints a Markdown table per mode: each request type with its count and,
where the two clients differ, the arguments or sizes only one sent.
"""
import json, re, sys


def merged(record):
    """One view over all of a record's runs of one mode (socket, fd)."""
    by_mode = {}
    for run, kinds in record["runs"].items():
        mode = run.split("/")[-1]
        view = by_mode.setdefault(mode, {})
        for kind, r in kinds.items():
            v = view.setdefault(kind, {"count": 0, "args": set(), "len": [None, 0]})
            v["count"] += r["count"]
            v["args"] |= set(r["args"])
            lo = r["len_min"]
            v["len"][0] = lo if v["len"][0] is None else min(v["len"][0], lo)
            v["len"][1] = max(v["len"][1], r["len_max"])
    return by_mode


def main():
    a_path, b_path = sys.argv[1:3]
    a, b = json.load(open(a_path)), json.load(open(b_path))
    name = lambda r: "QEMU " + (re.search(r"version (\S+)", r["client"]) or re.search("(.*)", r["client"])).group(1)
    a_name, b_name = name(a), name(b)
    ma, mb = merged(a), merged(b)
    differences = 0
    for mode in sorted(set(ma) & set(mb)):
        va, vb = ma[mode], mb[mode]
        print(f"\n{mode} mode: {a_name} against {b_name}\n")
        print(f"| request | count, {a_name} | count, {b_name} | arguments both sent "
              f"| only {a_name} sent | only {b_name} sent |")
        print("|---|---|---|---|---|---|")
        for kind in sorted(set(va) | set(vb)):
            x, y = va.get(kind), vb.get(kind)
            if x is None or y is None:
                differences += 1
            only_a = sorted((x["args"] - y["args"]) if x and y else (x["args"] if x else []))
            only_b = sorted((y["args"] - x["args"]) if x and y else (y["args"] if y else []))
            only_a, only_b = [s for s in only_a if s], [s for s in only_b if s]
            differences += bool(only_a or only_b)
            fmt = lambda v: "-" if v is None else f"{v['count']} (payload {v['len'][0]}-{v['len'][1]} B)"
            both = sorted(s for s in (x["args"] & y["args"] if x and y else []) if s)
            print(f"| {kind} | {fmt(x)} | {fmt(y)} | {' '.join(both) or '-'} "
                  f"| {' '.join(only_a) or '-'} | {' '.join(only_b) or '-'} |")
    print(f"\n{differences} difference(s) in request types or arguments")


if __name__ == "__main__":
    main()
