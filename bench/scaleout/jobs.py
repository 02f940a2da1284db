#!/usr/bin/env python3
"""Helpers of bench/scaleout/jobs.sh: one timed job run, and the report.

  jobs.py run OUT_JSON SETUP ROUND TOKEN_FILE INPUT_DIR QUERY COUNT TIMEOUT_S POLL_S STREAMER_PID PG_DIR INSTANCE...
      INSTANCE = PORT:PID:LOGFILE of one transcoder. PG_DIR: the throw-away cluster's data folder
      (its postmaster.pid names the postmaster), "-" for none.
      POSTs COUNT jobs back to back, alternately to the instances (job i: INPUT_DIR/job-i.flac as
      the body, ?QUERY; the bodies are read before the window opens),
      polls GET /v1/jobs (one list request every POLL_S, alternately on the instances) until every
      job has ended, then GETs each job once more to check it. CPU ticks (utime+stime, /proc/PID/stat)
      of the transcoders, the streamer and the cluster are read right before the first POST and
      right after the last end is seen. Exit 0: every job done with every rendition; 1: a job did
      not end "done"; 2: the run broke off (timeout, a process died, an HTTP error).
  jobs.py report RUNS_DIR HEADER_FILE NPROC TSV_OUT
      reads RUNS_DIR/*.json (from run), writes one row per run to TSV_OUT and prints the markdown
      table (medians over the rounds).
Standard library only.
"""
import json
import os
import re
import statistics
import sys
import time
import urllib.error
import urllib.request

CLK = os.sysconf("SC_CLK_TCK")
TERMINAL = ("done", "failed", "cancelled")


def die(msg, code=2):
    print(f"jobs.py: ERROR: {msg}", file=sys.stderr)
    sys.exit(code)


def stat_fields(pid):
    """Fields 3.. of /proc/PID/stat (index 0 = state, 1 = ppid, 11 = utime, 12 = stime,
    13 = cutime, 14 = cstime), or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_ticks(pid):
    f = stat_fields(pid)
    return None if f is None else int(f[11]) + int(f[12])


def pg_ticks(pg_dir):
    """CPU of the cluster: utime+stime of the postmaster and of every process it forked that is
    alive, plus the postmaster's cutime+cstime (backends that exited and were reaped)."""
    if pg_dir == "-":
        return 0
    try:
        with open(os.path.join(pg_dir, "postmaster.pid")) as f:
            pm = int(f.readline())
    except (OSError, ValueError):
        return None
    f = stat_fields(pm)
    if f is None:
        return None
    total = int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        c = stat_fields(name)
        if c is not None and int(c[1]) == pm:
            total += int(c[11]) + int(c[12])
    return total


def machine_ticks():
    """(total, busy) clock ticks of the machine from /proc/stat (busy: user nice system irq softirq)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]] + [0] * 8
    return sum(v[:8]), v[0] + v[1] + v[2] + v[5] + v[6]


def http(method, url, token, body=None, timeout=60):
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "audio/flac"
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:
        return 0, str(e).encode()


def cmd_run(out_json, setup, round_, token_file, input_dir, query, count, timeout_s, poll_s,
            streamer_pid, pg_dir, *instances):
    count, timeout_s, poll_s, streamer_pid = int(count), float(timeout_s), float(poll_s), int(streamer_pid)
    inst = []
    for spec in instances:
        port, pid, logfile = spec.split(":", 2)
        inst.append({"port": int(port), "pid": int(pid), "log": logfile, "base": f"http://127.0.0.1:{int(port)}"})
    token = open(token_file).read().strip()
    bodies = [open(os.path.join(input_dir, f"job-{i}.flac"), "rb").read() for i in range(count)]
    nrend = len([x for x in re.search(r"(?:^|&)renditions=([^&]*)", query).group(1).split(",") if x]) \
        if "renditions=" in query else 0

    def alive_or_die(when):
        for i, x in enumerate(inst):
            if stat_fields(x["pid"]) is None:
                die(f"transcoder {i + 1} (pid {x['pid']}) died {when}; log {x['log']}")
        if stat_fields(streamer_pid) is None:
            die(f"the streamer (pid {streamer_pid}) died {when}")

    def snapshot():
        return ([cpu_ticks(x["pid"]) for x in inst], cpu_ticks(streamer_pid), pg_ticks(pg_dir), machine_ticks())

    before = snapshot()
    own0 = os.times()
    t0 = time.monotonic()
    ids, owner = [], {}
    for i in range(count):
        x = inst[i % len(inst)]
        status, data = http("POST", f"{x['base']}/v1/jobs?{query}", token, bodies[i],
                            timeout=max(1.0, min(120.0, timeout_s - (time.monotonic() - t0))))
        if status != 202:
            die(f"POST /v1/jobs to transcoder {i % len(inst) + 1} answered {status}: {data[:300]!r}")
        jid = json.loads(data)["id"]
        ids.append(jid)
        owner[jid] = i % len(inst)
    t_submitted = time.monotonic()

    ended, states, polls = {}, {}, 0
    while len(ended) < len(ids):
        if time.monotonic() - t0 > timeout_s:
            die(f"jobs not ended after {timeout_s:.0f} s: " +
                ", ".join(f"{j}={states.get(j)}" for j in ids if j not in ended))
        alive_or_die("during the run")
        time.sleep(poll_s)
        x = inst[polls % len(inst)]
        polls += 1
        status, data = http("GET", f"{x['base']}/v1/jobs?limit=500", token, timeout=30)
        if status != 200:
            die(f"GET /v1/jobs answered {status}: {data[:300]!r}")
        now = time.monotonic() - t0
        listed = {j["id"]: j for j in json.loads(data)["jobs"]}
        for j in ids:
            if j in ended:
                continue
            if j not in listed:
                if len(inst) > 1 or x is inst[owner[j]]:
                    die(f"job {j} is missing from GET /v1/jobs on port {x['port']}")
                continue
            states[j] = listed[j]["state"]
            if states[j] in TERMINAL:
                ended[j] = now
    t_end = time.monotonic()
    after = snapshot()
    own1 = os.times()
    alive_or_die("right after the run")

    # Checks, outside the window: every job, asked where it was submitted.
    failures, attempts = {}, {}
    for j in ids:
        x = inst[owner[j]]
        status, data = http("GET", f"{x['base']}/v1/jobs/{j}", token, timeout=30)
        if status != 200:
            failures[j] = f"GET /v1/jobs/{j} answered {status}"
            continue
        doc = json.loads(data)
        attempts[j] = doc.get("attempts")
        if doc.get("state") != "done":
            failures[j] = f"state {doc.get('state')}: {json.dumps(doc.get('error'))[:300]}"
            continue
        got = len((doc.get("result") or {}).get("renditions") or [])
        if nrend and got != nrend:
            failures[j] = f"done, but its result lists {got} renditions, not {nrend}"

    # Which instance ran what: its counter of ended jobs, and its log's "job running" lines.
    per_instance = []
    for x in inst:
        status, data = http("GET", f"{x['base']}/metrics", token, timeout=10)
        ended_done = None
        if status == 200:
            m = re.search(r'^plyr_transcoder_jobs_ended_total\{state="done"\}\s+([0-9.eE+]+)\s*$',
                          data.decode(errors="replace"), re.M)
            ended_done = int(float(m.group(1))) if m else 0
        running = []
        try:
            with open(x["log"], errors="replace") as f:
                running = re.findall(r"transcoder: job running id=([0-9a-f]+)", f.read())
        except OSError:
            pass
        per_instance.append({"port": x["port"], "pid": x["pid"], "metrics_done": ended_done,
                             "log_running_lines": len(running), "log_running_jobs": len(set(running) & set(ids))})

    window = t_end - t0
    tc = [(a - b) / CLK for a, b in zip(after[0], before[0])]
    streamer_s = (after[1] - before[1]) / CLK
    pg_s = (after[2] - before[2]) / CLK if after[2] is not None and before[2] is not None else float("nan")
    mt = after[3][0] - before[3][0]
    busy_pct = 100.0 * (after[3][1] - before[3][1]) / mt if mt > 0 else float("nan")
    # What the rest of the machine took meanwhile (a build, another benchmark): busy time minus
    # the measured processes and this script's own polling.
    own_s = (own1.user - own0.user) + (own1.system - own0.system)
    others_s = (after[3][1] - before[3][1]) / CLK - sum(tc) - streamer_s - (pg_s if pg_s == pg_s else 0) - own_s
    result = {
        "setup": setup, "round": int(round_), "jobs": count, "instances": len(inst), "input_bytes": len(bodies[0]),
        "window_s": round(window, 3), "submit_s": round(t_submitted - t0, 3),
        "jobs_per_min": round(60.0 * count / window, 3),
        "transcoder_cpu_s": [round(v, 2) for v in tc], "streamer_cpu_s": round(streamer_s, 2),
        "postgres_cpu_s": None if pg_dir == "-" else round(pg_s, 2),
        "machine_busy_pct": round(busy_pct, 1), "others_cpu_s": round(others_s, 2), "helper_cpu_s": round(own_s, 2),
        "polls": polls,
        "finish_s": sorted(round(v, 2) for v in ended.values()),
        "attempts": sorted(set(v for v in attempts.values() if v is not None)),
        "per_instance": per_instance, "failed": len(failures), "failures": failures,
    }
    json.dump(result, open(out_json, "w"), indent=1)
    pg_txt = "" if pg_dir == "-" else f", postgres {pg_s:.2f}"
    print(f"  {count} jobs in {window:.1f} s (POSTs took {t_submitted - t0:.1f} s): {60.0 * count / window:.1f} "
          f"jobs/min; CPU s: transcoder {' + '.join(f'{v:.2f}' for v in tc)}, streamer {streamer_s:.2f}{pg_txt}; "
          f"machine busy {busy_pct:.0f} % (other processes {others_s:.2f} CPU s); jobs per instance (metrics) "
          f"{' / '.join(str(p['metrics_done']) for p in per_instance)}", file=sys.stderr)
    for j, e in failures.items():
        print(f"  FAIL job {j}: {e}", file=sys.stderr)
    return 1 if failures else 0


# --- report -------------------------------------------------------------------------------------
LABELS = {"a": "(a) 1 transcoder, SQLite queue", "b": "(b) 2 transcoders, PostgreSQL queue"}
TSV_COLUMNS = ["setup", "round", "jobs", "instances", "window_s", "submit_s", "jobs_per_min", "transcoder_cpu_s",
               "streamer_cpu_s", "postgres_cpu_s", "machine_busy_pct", "others_cpu_s", "jobs_per_instance", "log_running_per_instance",
               "attempts", "failed", "input_bytes"]


def med(xs):
    xs = [x for x in xs if x is not None and x == x]
    return statistics.median(xs) if xs else float("nan")


def fmt(x, digits=2):
    return "-" if x is None or x != x else f"{x:.{digits}f}"


def num(x):
    return "-" if x != x else (str(int(x)) if x == int(x) else f"{x:.1f}")


def cmd_report(runs_dir, header_file, nproc, tsv_out):
    rows = [json.load(open(os.path.join(runs_dir, n))) for n in os.listdir(runs_dir) if n.endswith(".json")]
    rows.sort(key=lambda r: (r["round"], r["setup"]))
    with open(tsv_out, "w") as f:
        f.write("\t".join(TSV_COLUMNS) + "\n")
        for r in rows:
            flat = dict(r, transcoder_cpu_s="+".join(str(v) for v in r["transcoder_cpu_s"]),
                        jobs_per_instance="/".join(str(p["metrics_done"]) for p in r["per_instance"]),
                        log_running_per_instance="/".join(str(p["log_running_jobs"]) for p in r["per_instance"]),
                        attempts=",".join(str(a) for a in r["attempts"]),
                        postgres_cpu_s="-" if r["postgres_cpu_s"] is None else r["postgres_cpu_s"])
            f.write("\t".join(str(flat[c]) for c in TSV_COLUMNS) + "\n")
    header = open(header_file).read().rstrip()
    by = {s: [r for r in rows if r["setup"] == s] for s in ("a", "b")}
    base = med([r["jobs_per_min"] for r in by["a"]])
    out = [header, "",
           "| setup | jobs | jobs/min | ÷ (a) | transcoder CPU s per job | postgres CPU s per job | jobs per instance |",
           "|---|---:|---:|---:|---:|---:|---|"]
    notes = []
    for s, rs in by.items():
        if not rs:
            continue
        jpm = med([r["jobs_per_min"] for r in rs])
        tc = med([sum(r["transcoder_cpu_s"]) / r["jobs"] for r in rs])
        pg = med([r["postgres_cpu_s"] / r["jobs"] for r in rs if r["postgres_cpu_s"] is not None])
        n = rs[0]["instances"]
        counts = [[p["metrics_done"] if p["metrics_done"] is not None else float("nan") for p in r["per_instance"]]
                  for r in rs]
        per = " / ".join(num(med([c[i] for c in counts])) for i in range(n))
        if len(rs) > 1 and n > 1:
            per += " (rounds: " + ", ".join("/".join(num(v) for v in c) for c in counts) + ")"
        jobs = "/".join(dict.fromkeys(str(r["jobs"]) for r in rs))
        ratio = jpm / base if base == base and base else float("nan")
        out.append(f"| {LABELS[s]} | {jobs} | {fmt(jpm, 1)} | {fmt(ratio)} | {fmt(tc)} | "
                   f"{fmt(pg, 3) if s == 'b' else '-'} | {per} |")
        notes.append(f"({s}): window {fmt(med([r['window_s'] for r in rs]), 1)} s, of it POSTs "
                     f"{fmt(med([r['submit_s'] for r in rs]), 1)} s; streamer CPU "
                     f"{fmt(med([r['streamer_cpu_s'] / r['jobs'] for r in rs]), 3)} s per job; machine busy "
                     f"{fmt(med([r['machine_busy_pct'] for r in rs]), 0)} % of the window, other processes "
                     f"{fmt(med([r['others_cpu_s'] for r in rs]), 1)} CPU s in it; jobs/min by round: "
                     f"{', '.join(fmt(r['jobs_per_min'], 1) for r in rs)}")
    out.append("")
    out.append(f"Both setups share the same {nproc} cores: (b) runs two transcoders side by side on the machine "
               f"that (a) has to itself, so it measures the shared queue's overhead and how it balances the jobs, "
               f"not added capacity.")
    out.append("Medians over the rounds. jobs/min = jobs ÷ (first POST to the last job's end). CPU = utime+stime "
               "(/proc/PID/stat) over that window; transcoder = both instances in (b); postgres = the throw-away "
               "cluster (postmaster, its live children and the children it reaped). Jobs per instance = each "
               "instance's plyr_transcoder_jobs_ended_total{state=\"done\"}.")
    out += ["- " + n for n in notes]
    bad = [f"({r['setup']}) round {r['round']}: {r['failed']}" for r in rows if r["failed"]]
    retried = [f"({r['setup']}) round {r['round']}: attempts {r['attempts']}" for r in rows
               if any(a != 1 for a in r["attempts"])]
    mismatch = [f"({r['setup']}) round {r['round']}: counter {[p['metrics_done'] for p in r['per_instance']]}, log "
                f"{[p['log_running_jobs'] for p in r['per_instance']]}" for r in rows
                if [p["metrics_done"] for p in r["per_instance"]] != [p["log_running_jobs"] for p in r["per_instance"]]]
    out.append("- jobs not done: " + ("; ".join(bad) if bad else "none") +
               ("; jobs run more than once: " + "; ".join(retried) if retried else "") +
               ("; counter and log lines disagree: " + "; ".join(mismatch) if mismatch else ""))
    print("\n".join(out))
    return 0


def main():
    if len(sys.argv) < 2:
        die(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "run" and len(args) >= 12:
        return cmd_run(*args)
    if cmd == "report" and len(args) == 4:
        return cmd_report(*args)
    die(__doc__)


if __name__ == "__main__":
    sys.exit(main())
