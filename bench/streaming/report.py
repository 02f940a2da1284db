#!/usr/bin/env python3
"""Render bench/streaming/run.sh results (results.tsv) as a console table and markdown.

Usage: report.py RESULTS_TSV MARKDOWN_OUT [HEADER_TEXT_FILE]
Exit status: 0; the caller decides what counts as failure.
"""
import csv
import sys


def fmt_int(x: float) -> str:
    return f"{x:,.0f}".replace(",", " ")


def main() -> int:
    tsv, md_out = sys.argv[1], sys.argv[2]
    header_text = open(sys.argv[3]).read() if len(sys.argv) > 3 else ""
    rows = list(csv.DictReader(open(tsv), delimiter="\t"))
    ref_rps = {r["workload"]: float(r["rps"]) for r in rows if r["server"] == "nginx"}
    best = {}  # workload -> (rps, server) of the faster nginx variant
    for r in rows:
        if r["server"].startswith("nginx") and float(r["rps"]) > best.get(r["workload"], (0.0, ""))[0]:
            best[r["workload"]] = (float(r["rps"]), r["server"])

    cols = ["workload", "server", "req/s", "MB/s", "p99 ms", "CPU µs/req", "server CPU %", "wrk CPU %", "errors",
            "plyr/nginx req/s", "plyr/best nginx req/s"]
    table = []
    for r in rows:
        rps = float(r["rps"])
        ratio = ratio_best = ""
        if r["server"] == "plyr-core":
            if ref_rps.get(r["workload"]):
                ratio = f"{rps / ref_rps[r['workload']]:.2f}"
            if best.get(r["workload"], (0.0, ""))[0]:
                b_rps, b_server = best[r["workload"]]
                ratio_best = f"{rps / b_rps:.2f} ({b_server})"
        errors = int(r["errors"])
        err = str(errors)
        if errors:
            err += f" ({r['error_detail']})"
        table.append([
            r["workload"], r["server"], fmt_int(rps), f"{float(r['bytes_per_s']) / 1e6:.0f}",
            f"{float(r['p99_us']) / 1000:.1f}", f"{float(r['cpu_us_per_req']):.0f}", f"{float(r['cpu_pct']):.0f}",
            f"{float(r['wrk_cpu_pct']):.0f}", err, ratio, ratio_best,
        ])

    widths = [max(len(c), *(len(row[i]) for row in table)) if table else len(c) for i, c in enumerate(cols)]
    right = {2, 3, 4, 5, 6, 7, 8, 9, 10}

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
        f.write("\nnginx = sendfile on, tcp_nopush on (the reference config); nginx-nopush-off = the same with "
                "tcp_nopush off. plyr/nginx = plyr-core req/s over nginx req/s; plyr/best nginx = over the faster "
                "nginx variant of that workload (named). MB/s = 10^6 bytes/s read by wrk (headers included). CPU µs/req and server CPU % come from "
                "utime+stime in /proc/PID/stat (all nginx processes / the plyr-core process) before and after "
                "each wrk run; wrk CPU % is the load generator's own CPU (100 % = its one thread is saturated). errors = socket errors + responses with status >= 400.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
