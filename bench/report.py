#!/usr/bin/env python3
"""Writes the figures of one bench/run.sh run into docs/benchmarks.md.

Usage: report.py RESULTS_JSONL BENCHMARKS_MD SECTION COMMAND LATENCY_MS DURATION_S

RESULTS_JSONL has one JSON object per measured run (written by run.sh).
The section between the markers `<!-- bench:SECTION:begin -->` and
`<!-- bench:SECTION:end -->` is replaced; when the markers are missing, the
section is appended. The rest of the file stays as it is.
"""

import datetime
import json
import os
import platform
import re
import sys

# Targets the operator is measured against.
SPEEDUP_TARGET = 25.0
IDEAL_TOLERANCE = 0.10
PACED_TOLERANCE = 0.05
RSS_TARGET_MIB = 64.0
WRITES_TARGET = 200


def machine():
    """Returns a one-line description of this machine."""
    cpu = "unknown CPU"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gib = 0.0
    with open("/proc/meminfo", encoding="utf-8") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_gib = int(line.split()[1]) / 1024 / 1024
                break
    return (
        f"{os.cpu_count()} CPUs (nproc), {cpu}, {memory_gib:.1f} GiB memory, "
        f"Linux {platform.release()}"
    )


def number(value, digits=1):
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def run_table(runs):
    lines = [
        "| Tool | Users | Concurrency | Rate limit (/s) | Wall time (s) | Users/s "
        "| Password calls | Passwords changed | Max calls for one user | Operator CPU (s) "
        "| Operator peak RSS (MiB) | API server writes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        rss = run.get("peak_rss_kib")
        lines.append(
            "| {tool} | {users} | {concurrency} | {rate} | {wall} | {rate_achieved} "
            "| {calls} | {applied} | {per_user} | {cpu} | {rss} | {writes} |".format(
                tool=run["tool"],
                users=number(run["users"]),
                concurrency=number(run.get("concurrency")),
                rate=number(run.get("rate")),
                wall=number(run["wall_s"], 2),
                rate_achieved=number(run["users"] / run["wall_s"], 0),
                calls=number(run["ledger"]["calls"]),
                applied=number(run["ledger"]["applied"]),
                per_user=number(run["ledger"]["max_calls_per_user"]),
                cpu=number(run.get("cpu_s"), 2),
                rss=number(rss / 1024 if rss else None),
                writes=number(run.get("writes")),
            )
        )
    return lines


def find(runs, tool, users):
    for run in runs:
        if run["tool"] == tool and run["users"] == users:
            return run
    return None


def verdict(met):
    return "met" if met else "**not met**"


def ratio_lines(runs, latency_ms):
    lines = []
    for users in sorted({run["users"] for run in runs}):
        newman = find(runs, "newman", users)
        operator = find(runs, "operator", users)
        paced = find(runs, "operator, paced", users)
        if operator is None:
            continue
        concurrency = operator["concurrency"]
        ideal_s = users * latency_ms / 1000 / concurrency
        lines.append(f"- {users:,} users:")
        if newman is not None:
            speedup = newman["wall_s"] / operator["wall_s"]
            lines.append(
                f"  - operator at concurrency {concurrency} vs newman: {speedup:.1f}x faster "
                f"(target >= {SPEEDUP_TARGET:.0f}x: {verdict(speedup >= SPEEDUP_TARGET)})"
            )
        over_ideal = operator["wall_s"] / ideal_s - 1
        lines.append(
            f"  - operator vs ideal N x {latency_ms} ms / {concurrency} = {ideal_s:.2f} s: "
            f"{over_ideal:+.1%} end to end (target within {IDEAL_TOLERANCE:.0%}: "
            f"{verdict(over_ideal <= IDEAL_TOLERANCE)}); first to last call took "
            f"{operator['ledger']['span_ms'] / 1000:.2f} s"
        )
        floor = find(runs, f"curl --parallel {concurrency}, latency {latency_ms} ms", users)
        if floor is not None:
            lines.append(
                f"  - simulator floor: curl --parallel {concurrency} took {floor['wall_s']:.2f} s "
                f"({floor['wall_s'] / ideal_s - 1:+.1%} over ideal, so one call takes "
                f"{floor['wall_s'] * concurrency / users * 1000:.1f} ms, not {latency_ms}); "
                f"operator vs that floor: {operator['wall_s'] / floor['wall_s'] - 1:+.1%}"
            )
        capacity = find(runs, f"curl --parallel {concurrency}, latency 0 ms", users)
        if capacity is not None:
            lines.append(
                f"  - simulator capacity with no latency: {users / capacity['wall_s']:,.0f} calls/s "
                f"at concurrency {concurrency}, {users / capacity['wall_s'] / (users / operator['wall_s']):.0f}x "
                "what the operator run needed"
            )
        if paced is not None:
            rate = paced["rate"]
            budget_s = users / rate
            over_budget = paced["wall_s"] / budget_s - 1
            peak = paced["ledger"]["max_calls_per_second"]
            lines.append(
                f"  - paced at {rate}/s vs N/R = {budget_s:.2f} s: {over_budget:+.1%} end to end "
                f"(target within {PACED_TOLERANCE:.0%}: "
                f"{verdict(abs(over_budget) <= PACED_TOLERANCE)}); first to last call took "
                f"{paced['ledger']['span_ms'] / 1000:.2f} s"
            )
            lines.append(
                f"  - paced: at most {peak} calls in any one-second window for R = {rate} "
                f"(target never above R: {verdict(peak <= rate)})"
            )
        if operator.get("writes") is not None and users == 10_000:
            writes = operator["writes"]
            lines.append(
                f"  - API server writes for the run: {writes} "
                f"(target < {WRITES_TARGET}: {verdict(writes < WRITES_TARGET)})"
            )
    largest = max(
        (run for run in runs if run["tool"] == "operator" and run.get("peak_rss_kib")),
        key=lambda run: run["users"],
        default=None,
    )
    if largest is not None:
        rss_mib = largest["peak_rss_kib"] / 1024
        lines.append(
            f"- Operator peak RSS at {largest['users']:,} users: {rss_mib:.1f} MiB "
            f"(target < {RSS_TARGET_MIB:.0f} MiB at 100,000 users: "
            f"{verdict(rss_mib < RSS_TARGET_MIB) if largest['users'] >= 100_000 else 'not measured in this mode'})"
        )
    return lines


def section(runs, name, command, latency_ms, duration_s):
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"<!-- bench:{name}:begin -->",
        f"### `{command}` ({today})",
        "",
        f"- Machine: {machine()}.",
        f"- MAS simulator: release build, fixed {latency_ms} ms latency per call, plain HTTP on "
        "127.0.0.1, a new simulator process for every row.",
        f"- The whole script took {duration_s / 60:.1f} minutes.",
        "",
    ]
    lines += run_table(runs)
    lines += ["", "Ratios and targets:", ""]
    lines += ratio_lines(runs, latency_ms)
    lines += ["", f"<!-- bench:{name}:end -->"]
    return "\n".join(lines) + "\n"


def main():
    results_path, doc_path, name, command, latency_ms, duration_s = sys.argv[1:7]
    with open(results_path, encoding="utf-8") as results:
        runs = [json.loads(line) for line in results if line.strip()]

    text = section(runs, name, command, int(latency_ms), float(duration_s))
    try:
        with open(doc_path, encoding="utf-8") as doc:
            current = doc.read()
    except FileNotFoundError:
        current = "# Benchmarks\n\n"

    pattern = re.compile(
        rf"<!-- bench:{re.escape(name)}:begin -->.*?<!-- bench:{re.escape(name)}:end -->\n?",
        re.DOTALL,
    )
    if pattern.search(current):
        updated = pattern.sub(lambda _: text, current, count=1)
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    with open(doc_path, "w", encoding="utf-8") as doc:
        doc.write(updated)


if __name__ == "__main__":
    main()
