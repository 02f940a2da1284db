#!/usr/bin/env python3
"""Render bench/streaming/run.sh results (results.tsv) as a console table and markdown.

Usage: report.py RESULTS_TSV MARKDOWN_OUT [HEADER_TEXT_FILE]
Exit status: 0; the caller decides what counts as failure.
"""
import csv
import sys


def fmt_int(x: float) -> str:
    return f"{x:,.0f}".replace(",", " ")


def median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def main() -> int:
    tsv, md_out = sys.argv[1], sys.argv[2]
    header_text = open(sys.argv[3]).read() if len(sys.argv) > 3 else ""
    raw = list(csv.DictReader(open(tsv), delimiter="\t"))

    # Every (workload, server) ran ROUNDS times, interleaved: aggregate to medians, in run order.
    groups = {}
    for r in raw:
        groups.setdefault((r["workload"], r["server"]), []).append(r)
    rows = []
    for (workload, server), runs in groups.items():
        m = {k: median([float(x[k]) for x in runs])
             for k in ("rps", "bytes_per_s", "p99_us", "cpu_us_per_req", "cpu_pct", "wrk_cpu_pct")}
        m.update(workload=workload, server=server, rounds=len(runs),
                 errors=sum(int(x["errors"]) for x in runs),
                 error_detail=",".join(x["error_detail"] for x in runs if x["error_detail"] != "-") or "-")
        rows.append(m)

    # plyr-core's ratio to the faster nginx of the same round, per round: its spread.
    per_round = {}
    for r in raw:
        per_round.setdefault((r["workload"], r.get("round", "1")), {})[r["server"]] = float(r["rps"])
    spread = {}
    for (workload, _), servers in per_round.items():
        nginx = [v for k, v in servers.items() if k.startswith("nginx")]
        if "plyr-core" in servers and nginx and max(nginx) > 0:
            spread.setdefault(workload, []).append(servers["plyr-core"] / max(nginx))

    ref_rps = {r["workload"]: r["rps"] for r in rows if r["server"] == "nginx"}
    best = {}  # workload -> (median rps, server) of the faster nginx variant
    for r in rows:
        if r["server"].startswith("nginx") and r["rps"] > best.get(r["workload"], (0.0, ""))[0]:
            best[r["workload"]] = (r["rps"], r["server"])

    cols = ["workload", "server", "req/s", "MB/s", "p99 ms", "CPU µs/req", "server CPU %", "wrk CPU %", "errors",
            "plyr/nginx req/s", "plyr/best nginx req/s", "per-round range"]
    table = []
    for r in rows:
        rps = r["rps"]
        ratio = ratio_best = rounds = ""
        if r["server"] == "plyr-core":
            if ref_rps.get(r["workload"]):
                ratio = f"{rps / ref_rps[r['workload']]:.2f}"
            if best.get(r["workload"], (0.0, ""))[0]:
                b_rps, b_server = best[r["workload"]]
                ratio_best = f"{rps / b_rps:.2f} ({b_server})"
            if spread.get(r["workload"]):
                rounds = f"{min(spread[r['workload']]):.2f}-{max(spread[r['workload']]):.2f}"
        err = str(r["errors"])
        if r["errors"]:
            err += f" ({r['error_detail']})"
        table.append([
            r["workload"], r["server"], fmt_int(rps), f"{r['bytes_per_s'] / 1e6:.0f}",
            f"{r['p99_us'] / 1000:.1f}", f"{r['cpu_us_per_req']:.0f}", f"{r['cpu_pct']:.0f}",
            f"{r['wrk_cpu_pct']:.0f}", err, ratio, ratio_best, rounds,
        ])

    widths = [max(len(c), *(len(row[i]) for row in table)) if table else len(c) for i, c in enumerate(cols)]
    right = {2, 3, 4, 5, 6, 7, 8, 9, 10, 11}

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    print(line(cols))
    print("  ".join("-" * w for w in widths))
    prev = None
    for row in table:
        if prev is not None and row[0] != prev:
            print()
        print(line(row))
        prev = row[0]

    with open(md_out, "w") as f:
        if header_text:
            f.write(header_text.rstrip() + "\n\n")
        f.write("| " + " | ".join(cols) + " |\n")
        f.write("|" + "|".join("---:" if i in right else "---" for i in range(len(cols))) + "|\n")
        for row in table:
            f.write("| " + " | ".join(row) + " |\n")
        f.write("\nEvery figure is the median of the interleaved rounds; per-round range = the lowest and highest "
                "of plyr-core's per-round ratio to the faster nginx of that round. "
                "nginx = sendfile on, tcp_nopush on (the reference config); nginx-nopush-off = the same with "
                "tcp_nopush off. plyr/nginx = plyr-core req/s over nginx req/s; plyr/best nginx = over the faster "
                "nginx variant of that workload (named). MB/s = 10^6 bytes/s read by wrk (headers included). CPU µs/req and server CPU % come from "
                "utime+stime in /proc/PID/stat (all nginx processes / the plyr-core process) before and after "
                "each wrk run; wrk CPU % is the load generator's own CPU (100 % = its one thread is saturated). errors = socket errors + responses with status >= 400.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
