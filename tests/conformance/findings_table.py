#!/usr/bin/env python3
"""Print the "Per-case figures" table of README.md (this folder) from a driver output.

    python3 tests/conformance/findings_table.py target/conformance/litellm.json

Columns: final outcomes (most first); attempts by deployment with their successes; requests by
number of attempts; cooldown episodes (merged writes, `start–until ms (writes)`); the router's
sleeps. Only the standard library; the figures are the driver's, not routesim's.
"""

from __future__ import annotations

import collections
import json
import sys


def outcomes(case: dict) -> str:
    counts = collections.Counter(r["outcome"] for r in case["requests"])
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def attempts_by_deployment(case: dict) -> str:
    total: collections.Counter[str] = collections.Counter()
    ok: collections.Counter[str] = collections.Counter()
    for a in case["attempts"]:
        total[a["deployment"]] += 1
        ok[a["deployment"]] += a["outcome"] == "ok"
    return ", ".join(f"{d} {total[d]} ({ok[d]})" for d in sorted(total))


def attempts_per_request(case: dict) -> str:
    per: collections.Counter[int] = collections.Counter(a["request"] for a in case["attempts"])
    hist = collections.Counter(per.get(r["request"], 0) for r in case["requests"])
    return "{" + ", ".join(f"{n}: {hist[n]}" for n in sorted(hist)) + "}"


def fmt_ms(x: float) -> str:
    return f"{x:.0f}"


def cooldowns(case: dict) -> str:
    episodes = sorted(case.get("cooldown_episodes", []), key=lambda e: e["start_ms"])
    if not episodes:
        return "none"
    if len(episodes) > 3:
        first = episodes[0]
        by = collections.Counter(e["deployment"] for e in episodes)
        return (
            f"{len(episodes)} episodes; first {first['deployment']}: {fmt_ms(first['start_ms'])}–"
            f"{fmt_ms(first['until_ms'])}; by deployment {dict(sorted(by.items()))}"
        )
    return "; ".join(
        f"{e['deployment']}: {fmt_ms(e['start_ms'])}–{fmt_ms(e['until_ms'])} ({e['writes']})" for e in episodes
    )


def sleeps(case: dict) -> str:
    s = [x["seconds"] for x in case.get("sleeps", [])]
    if not s:
        return "none"
    zero = sum(1 for x in s if x == 0)
    nonzero = [x for x in s if x > 0]
    if not nonzero:
        return f"{len(s)} sleeps, {zero} of 0 s"
    span = f"non-zero {min(nonzero):.3f}–{max(nonzero):.3f} s"
    return f"{len(s)} sleeps, {span}" if zero == 0 else f"{len(s)} sleeps, {zero} of 0 s, {span}"


def main() -> None:
    doc = json.load(open(sys.argv[1]))
    print(
        "| case | outcomes | attempts by deployment (ok) | attempts per request | "
        "cooldown episodes (deployment: start–until ms, writes) | waits before retries / fallbacks |"
    )
    print("|---|---|---|---|---|---|")
    for name in sorted(doc["cases"]):
        case = doc["cases"][name]
        print(
            f"| `{name}` | {outcomes(case)} | {attempts_by_deployment(case)} | {attempts_per_request(case)} | "
            f"{cooldowns(case)} | {sleeps(case)} |"
        )


if __name__ == "__main__":
    main()
