#!/usr/bin/env python3
"""Summarizes a MAS simulator ledger (GET /_sim/ledger) as one JSON object.

Reads the ledger JSON array from the file given as the first argument and
prints the password calls, the calls that changed a password, the distinct
users and the maximum calls for one user. It also prints the time from the
first to the last call in milliseconds and the maximum calls that arrived in
any one-second window, a sliding window that starts at each call.
"""

import collections
import json
import sys

WINDOW_MS = 1000


def max_calls_in_window(times_ms):
    """Returns the largest count of calls in [t, t + WINDOW_MS) over all calls t."""
    best = 0
    start = 0
    for end, time_ms in enumerate(times_ms):
        while times_ms[start] <= time_ms - WINDOW_MS:
            start += 1
        best = max(best, end - start + 1)
    return best


def main():
    with open(sys.argv[1], encoding="utf-8") as ledger_file:
        entries = json.load(ledger_file)

    times_ms = sorted(entry["at_ms"] for entry in entries)
    per_user = collections.Counter(entry["user_id"] for entry in entries)
    summary = {
        "calls": len(entries),
        "applied": sum(1 for entry in entries if entry["applied"]),
        "users": len(per_user),
        "max_calls_per_user": max(per_user.values(), default=0),
        "span_ms": times_ms[-1] - times_ms[0] if times_ms else 0,
        "max_calls_per_second": max_calls_in_window(times_ms) if times_ms else 0,
    }
    json.dump(summary, sys.stdout)
    print()


if __name__ == "__main__":
    main()
