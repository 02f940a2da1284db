#!/usr/bin/env python3
"""Render bench/s3/run.sh results (results.tsv) as a markdown table of medians over the rounds.

Usage: report.py RESULTS_TSV [HEADER_TEXT_FILE]    (prints the markdown to stdout)
"""
import csv
import statistics
import sys


def main() -> int:
    rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
    header = open(sys.argv[2]).read().strip() if len(sys.argv) > 2 else ""

    runs = {}  # (workload, target) -> rows, workloads in run order
    for r in rows:
        runs.setdefault((r["workload"], r["target"]), []).append(r)

    def med(workload, target, key):
        vals = [float(r[key]) for r in runs.get((workload, target), [])]
        return statistics.median(vals) if vals else float("nan")

    out = [header, ""] if header else []
    out.append("| workload | direct req/s | via streamer req/s | via ÷ direct | streamer CPU µs/req "
               "| s3rver CPU µs/req direct / via | p99 ms direct / via |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    errors = []
    for workload in dict.fromkeys(r["workload"] for r in rows):
        d_rps, v_rps = med(workload, "direct", "rps"), med(workload, "via", "rps")
        out.append("| {} | {:.0f} | {:.0f} | {:.2f} | {:.0f} | {:.0f} / {:.0f} | {:.1f} / {:.1f} |".format(
            workload, d_rps, v_rps, v_rps / d_rps if d_rps else float("nan"),
            med(workload, "via", "plyr_cpu_us_per_req"),
            med(workload, "direct", "s3rver_cpu_us_per_req"), med(workload, "via", "s3rver_cpu_us_per_req"),
            med(workload, "direct", "p99_us") / 1000, med(workload, "via", "p99_us") / 1000))
        for target in ("direct", "via"):
            for r in runs.get((workload, target), []):
                if int(r["errors"]):
                    errors.append(f"{workload} {target} round {r['round']}: {r['errors']} ({r['error_detail']})")
    out.append("")
    out.append("Medians over the rounds. direct = wrk straight to s3rver (anonymous path-style GET); via = wrk to "
               "plyr-core's /audio/<id>, which proxies the range from s3rver. CPU µs/req = utime+stime of the "
               "process (/proc/PID/stat) over the run / requests.")
    out.append("errors: " + ("; ".join(errors) if errors else "none"))
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
