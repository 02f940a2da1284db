#!/usr/bin/env python3
"""Helpers of bench/transcode/run.sh: pick tracks, check outputs, drive the job service, report.

  tool.py pick MANIFEST NAME...                      tab-separated "duration_s path" per name
  tool.py decoded-duration FILE                      seconds of audio a full decode yields
  tool.py check LABEL VARIANT REF_S DIR LADDER CHECKS_TSV [JSON]
                                                     ffprobe + full decode of every rendition;
                                                     appends rows to CHECKS_TSV; exit 1 on a FAIL
  tool.py jobs PORT TOKEN_FILE INPUT QUERY COUNT TIMEOUT_S SERVER_PID OUT_JSON
                                                     the queued-jobs run against `serve transcoder`
  tool.py report RESULTS_TSV CHECKS_TSV JOBS_JSON MD_OUT HEADER_FILE NPROC
                                                     console tables and the Markdown for RESULTS.md
Standard library only.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

DURATION_TOLERANCE_S = 0.050
CBR_BITRATE_TOLERANCE = 0.05
EXTENSIONS = {"mp3": "mp3", "aac": "m4a", "opus": "opus", "wav": "wav"}


def die(msg):
    print(f"tool.py: ERROR: {msg}", file=sys.stderr)
    sys.exit(2)


# --- pick ---------------------------------------------------------------------------------------
def cmd_pick(manifest, names):
    rows = []
    with open(manifest) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            rows.append(dict(zip(header, line.rstrip("\n").split("\t"))))
    for name in names:
        hits = [r for r in rows
                if os.path.basename(r["path"]) in (name, name + ".ogg") or r["path"].endswith("/" + name)]
        if not hits:
            good = sorted((r for r in rows if 180 <= float(r["duration_s"]) <= 240), key=lambda r: r["path"])
            listing = "\n".join(f"  {float(r['duration_s']):7.1f} s  {os.path.basename(r['path'])}" for r in good)
            die(f"no track named '{name}' in {manifest}; tracks of 3-4 min there:\n{listing}")
        if len(hits) > 1:
            die(f"'{name}' is ambiguous in {manifest}: " + ", ".join(r["path"] for r in hits))
        print(f"{float(hits[0]['duration_s']):.3f}\t{hits[0]['path']}")


# --- probing ------------------------------------------------------------------------------------
def ffprobe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
                          "stream=codec_name,sample_rate,channels:format=duration,start_time,bit_rate,format_name",
                          "-of", "json", path], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        return None, out.stderr.strip()
    data = json.loads(out.stdout or "{}")
    streams = data.get("streams") or [{}]
    return {"format": data.get("format", {}), "stream": streams[0]}, ""


def full_decode(path, rate, channels):
    """Decodes every sample (`ffmpeg -v error -i OUT`, like `-f null -`, but counting what comes
    out). Returns (seconds, error text): the count is exact, after the priming and padding the
    demuxer knows about are dropped, which ffprobe's duration does not always do."""
    proc = subprocess.Popen(["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-map", "0:a:0",
                             "-c:a", "pcm_f32le", "-f", "f32le", "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    total = 0
    while True:
        chunk = proc.stdout.read(1 << 20)
        if not chunk:
            break
        total += len(chunk)
    err = proc.stderr.read().decode(errors="replace").strip()
    rc = proc.wait(timeout=120)
    if rc != 0 and not err:
        err = f"ffmpeg exited {rc}"
    return total / (4 * channels * rate), err


def cmd_decoded_duration(path):
    info, err = ffprobe(path)
    if info is None:
        die(f"ffprobe {path}: {err}")
    seconds, err = full_decode(path, int(info["stream"]["sample_rate"]), int(info["stream"]["channels"]))
    if err:
        die(f"decoding {path}: {err}")
    print(f"{seconds:.6f}")


# --- check --------------------------------------------------------------------------------------
def cmd_check(label, variant, ref_s, out_dir, ladder, checks_tsv, json_path=None):
    ref_s = float(ref_s)
    reported = {}
    problems_json = []
    if json_path:
        try:
            doc = json.load(open(json_path))
            for r in doc.get("renditions", []):
                reported[r.get("name")] = r
        except (OSError, ValueError) as e:
            problems_json.append(f"JSON unreadable: {e}")
    new_file = not os.path.exists(checks_tsv)
    failures = 0
    with open(checks_tsv, "a") as tsv:
        if new_file:
            tsv.write("input\tvariant\trendition\tref_s\tprobe_s\tprobe_start_s\tdecoded_s\tprobe_delta_ms\t"
                      "decoded_delta_ms\tkbps\tnominal_kbps\tcodec\trate\tchannels\tsize\tverdict\tproblems\n")
        for name in ladder.split(","):
            fmt, _, kbps = name.partition("-")
            nominal = int(kbps) if kbps.isdigit() else 0
            path = os.path.join(out_dir, f"{name}.{EXTENSIONS.get(fmt, fmt)}")
            problems = []
            row = dict(probe_s=float("nan"), start=0.0, decoded_s=float("nan"), kbps=float("nan"),
                       codec="-", rate=0, channels=0, size=0)
            if not os.path.isfile(path) or os.path.getsize(path) == 0:
                problems.append(f"{path} missing or empty")
            else:
                row["size"] = os.path.getsize(path)
                info, err = ffprobe(path)
                if info is None:
                    problems.append(f"ffprobe: {err}")
                else:
                    fmt_info, st = info["format"], info["stream"]
                    row["codec"] = st.get("codec_name", "-")
                    row["rate"] = int(st.get("sample_rate", 0) or 0)
                    row["channels"] = int(st.get("channels", 0) or 0)
                    row["probe_s"] = float(fmt_info.get("duration", "nan"))
                    # MP3: the demuxer reports the encoder delay (1105 samples) as start_time and
                    # counts it, with the padding, into the duration: take the delay back out.
                    start = float(fmt_info.get("start_time", 0) or 0)
                    row["start"] = start
                    probe_content = row["probe_s"] - max(start, 0.0)
                    if not abs(probe_content - ref_s) <= DURATION_TOLERANCE_S:
                        problems.append(f"ffprobe duration {probe_content:.3f} s (start_time {start:.3f} taken off) "
                                        f"vs input {ref_s:.3f} s")
                    if row["probe_s"] > 0:
                        row["kbps"] = row["size"] * 8 / row["probe_s"] / 1000
                    if fmt == "mp3" and nominal and not abs(row["kbps"] - nominal) <= CBR_BITRATE_TOLERANCE * nominal:
                        problems.append(f"bitrate {row['kbps']:.1f} kbps vs CBR {nominal}")
                    if row["rate"] and row["channels"]:
                        row["decoded_s"], err = full_decode(path, row["rate"], row["channels"])
                        if err:
                            problems.append("decode: " + err.splitlines()[0][:200])
                        if not abs(row["decoded_s"] - ref_s) <= DURATION_TOLERANCE_S:
                            problems.append(f"decoded duration {row['decoded_s']:.3f} s vs input {ref_s:.3f} s")
                    else:
                        problems.append("no audio stream")
            if json_path:
                r = reported.get(name)
                if r is None:
                    problems.append("not in the JSON output")
                else:
                    if os.path.realpath(str(r.get("path", ""))) != os.path.realpath(path):
                        problems.append(f"JSON path {r.get('path')}")
                    if row["size"] and r.get("size") != row["size"]:
                        problems.append(f"JSON size {r.get('size')} != {row['size']}")
                    dms = r.get("duration_ms")
                    if not isinstance(dms, (int, float)) or abs(dms / 1000 - ref_s) > DURATION_TOLERANCE_S:
                        problems.append(f"JSON duration_ms {dms}")
                    if not isinstance(r.get("encode_cpu_s"), (int, float)):
                        problems.append("JSON encode_cpu_s missing")
            verdict = "FAIL" if problems else "PASS"
            failures += bool(problems)
            probe_delta = (row["probe_s"] - max(row["start"], 0.0) - ref_s) * 1000
            dec_delta = (row["decoded_s"] - ref_s) * 1000
            tsv.write("\t".join(map(str, [
                label, variant, name, f"{ref_s:.6f}", f"{row['probe_s']:.6f}", f"{row['start']:.6f}",
                f"{row['decoded_s']:.6f}", f"{probe_delta:.1f}", f"{dec_delta:.1f}", f"{row['kbps']:.1f}",
                nominal, row["codec"], row["rate"], row["channels"], row["size"], verdict,
                "; ".join(problems) or "-"])) + "\n")
            print(f"  {verdict} {variant} {label} {name:<9} {row['codec']:<6} {row['rate']:>5} Hz {row['channels']} ch "
                  f"{row['kbps']:7.1f} kbps  duration: ffprobe {probe_delta:+6.1f} ms, decoded {dec_delta:+6.1f} ms"
                  + (f"  <- {'; '.join(problems)}" if problems else ""))
        for p in problems_json:
            failures += 1
            print(f"  FAIL {variant} {label}: {p}")
    return 1 if failures else 0


# --- jobs ---------------------------------------------------------------------------------------
def proc_stat():
    """(total, idle, busy) clock ticks of the whole machine: idle counts iowait, busy is user nice
    system irq softirq (as run.sh's stat_ticks); total is user..steal (guest is inside user)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]] + [0] * 8
    return sum(v[:8]), v[3] + v[4], v[0] + v[1] + v[2] + v[5] + v[6]


def proc_cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])  # utime stime cutime cstime
    except (OSError, IndexError, ValueError):
        return None


def http(method, url, token, body=None, timeout=120):
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "audio/flac"}
                                 if body is not None else {"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def cmd_jobs(port, token_file, input_path, query, count, timeout_s, server_pid, out_json):
    count, timeout_s, server_pid = int(count), float(timeout_s), int(server_pid)
    token = open(token_file).read().strip()
    body = open(input_path, "rb").read()
    base = f"http://127.0.0.1:{int(port)}"
    clk = os.sysconf("SC_CLK_TCK")
    result = {"jobs": count, "input_bytes": len(body)}

    total0, idle0, busy0 = proc_stat()
    srv0 = proc_cpu_ticks(server_pid)
    t0 = time.monotonic()
    ids = []
    nrend = len([x for x in dict(kv.split("=", 1) for kv in query.split("&") if "=" in kv)
                 .get("renditions", "").split(",") if x])
    for i in range(count):
        remaining = max(1.0, timeout_s - (time.monotonic() - t0))
        status, data = http("POST", f"{base}/v1/jobs?{query}", token, body, timeout=min(120.0, remaining))
        if status == 404 and i == 0:
            result["skipped"] = "POST /v1/jobs answered 404 (no job API yet)"
            json.dump(result, open(out_json, "w"))
            print(f"  skipped: {result['skipped']}")
            return 0
        if status != 202:
            die(f"POST /v1/jobs answered {status}: {data[:300]!r}")
        ids.append(json.loads(data)["id"])
    t_submitted = time.monotonic()

    # The listener while every core encodes: GET /health every 50 ms from a thread of its own.
    health_ms, health_stop = [], threading.Event()

    def probe_health():
        while not health_stop.is_set():
            started = time.monotonic()
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5) as resp:
                    resp.read()
                health_ms.append(1000.0 * (time.monotonic() - started))
            except OSError:
                health_ms.append(5000.0)
            health_stop.wait(0.05)

    prober = threading.Thread(target=probe_health, daemon=True)
    prober.start()

    samples = []  # (t, utilisation over the last interval)
    last_total, last_idle, last_t = total0, idle0, t0
    states, done_at, errors = {}, {}, {}
    while len(done_at) < len(ids):
        if time.monotonic() - t0 > timeout_s:
            die(f"jobs not finished after {timeout_s:.0f} s: " +
                ", ".join(f"{j}={states.get(j)}" for j in ids if j not in done_at))
        if os.path.exists(f"/proc/{server_pid}") is False:
            die("the server died during the job run")
        time.sleep(0.2)
        for j in ids:
            if j in done_at:
                continue
            status, data = http("GET", f"{base}/v1/jobs/{j}", token, timeout=30)
            if status != 200:
                die(f"GET /v1/jobs/{j} answered {status}: {data[:300]!r}")
            doc = json.loads(data)
            states[j] = doc.get("state")
            if states[j] in ("done", "failed"):
                done_at[j] = time.monotonic() - t0
                if states[j] == "failed":
                    errors[j] = doc.get("error", doc)
                elif nrend and len((doc.get("result") or {}).get("renditions") or []) != nrend:
                    errors[j] = f"done, but its result lists {len((doc.get('result') or {}).get('renditions') or [])}" \
                                f" renditions, not {nrend}"
        tot, idl, _ = proc_stat()
        now = time.monotonic()
        if now - last_t >= 1.0 and tot > last_total:
            samples.append(100.0 * (1 - (idl - last_idle) / (tot - last_total)))
            last_total, last_idle, last_t = tot, idl, now
    t_end = time.monotonic()
    health_stop.set()
    prober.join()
    total1, idle1, busy1 = proc_stat()
    srv1 = proc_cpu_ticks(server_pid)

    window = t_end - t0
    result.update(
        window_s=round(window, 3),
        submit_s=round(t_submitted - t0, 3),
        jobs_per_min=round(60.0 * len(ids) / window, 2),
        failed=len(errors),
        errors={k: str(v)[:300] for k, v in errors.items()},
        finish_s=sorted(round(v, 2) for v in done_at.values()),
        cpu_util_pct=round(100.0 * (1 - (idle1 - idle0) / max(1, total1 - total0)), 1),
        cpu_util_per_s_min=round(min(samples[:-1] or samples or [0.0]), 1),
        cpu_util_per_s_median=round(statistics.median(samples or [0.0]), 1),
        server_cpu_s=round((srv1 - srv0) / clk, 2) if srv0 is not None and srv1 is not None else None,
        other_cpu_s=round((busy1 - busy0 - (srv1 - srv0)) / clk, 1) if srv0 is not None and srv1 is not None else None,
        cpu_util_per_s=[round(x) for x in samples],
        nproc=os.cpu_count(),
        health_probes=len(health_ms),
        health_ms_p50=round(statistics.median(health_ms), 2) if health_ms else None,
        health_ms_p99=round(sorted(health_ms)[int(0.99 * (len(health_ms) - 1))], 2) if health_ms else None,
        health_ms_max=round(max(health_ms), 2) if health_ms else None,
    )
    json.dump(result, open(out_json, "w"), indent=1)
    print(f"  {len(ids)} jobs in {window:.1f} s (submitting took {result['submit_s']:.1f} s): "
          f"{result['jobs_per_min']:.1f} jobs/min, {len(errors)} failed; machine CPU utilisation "
          f"{result['cpu_util_pct']:.0f} % over the window (per second: median {result['cpu_util_per_s_median']:.0f} %, "
          f"lowest full second {result['cpu_util_per_s_min']:.0f} %); server CPU {result['server_cpu_s']} s, "
          f"other processes {result['other_cpu_s']} s (this script's polling included)")
    print(f"  finish times (s after the first POST): {result['finish_s']}")
    print(f"  GET /health while encoding: {result['health_probes']} probes, p50 {result['health_ms_p50']} ms, "
          f"p99 {result['health_ms_p99']} ms, max {result['health_ms_max']} ms")
    for j, e in result["errors"].items():
        print(f"  FAIL job {j}: {e}")
    return 1 if errors else 0


# --- report -------------------------------------------------------------------------------------
def med(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def div(a, b):
    return a / b if b == b and b != 0 else float("nan")


def f2(x, digits=2):
    return "-" if x != x else f"{x:.{digits}f}"


def cmd_report(results_tsv, checks_tsv, jobs_json, md_out, header_file, nproc):
    nproc = int(nproc)
    import csv
    every = list(csv.DictReader(open(results_tsv), delimiter="\t"))
    raw = [r for r in every if r["status"] != "busy"]  # runs redone because other work shared the machine
    nbusy = len(every) - len(raw)
    checks = list(csv.DictReader(open(checks_tsv), delimiter="\t")) if os.path.exists(checks_tsv) else []
    jobs = json.load(open(jobs_json)) if jobs_json != "-" and os.path.exists(jobs_json) else None
    header = open(header_file).read().strip() if os.path.exists(header_file) else ""

    inputs = []
    for r in raw:
        if r["input"] not in inputs:
            inputs.append(r["input"])

    def runs(inp, variant):
        return [r for r in raw if r["input"] == inp and r["variant"] == variant]

    def c_json(r):
        try:
            doc = json.load(open(r["json"]))
            enc = sum(float(x["encode_cpu_s"]) for x in doc["renditions"])
            return doc, enc
        except (OSError, ValueError, KeyError, TypeError):
            return None, float("nan")

    lines, md_rows = [], []
    for inp in inputs:
        a, b, c = runs(inp, "a"), runs(inp, "b"), runs(inp, "c")
        track_s = float((a or b or c)[0]["track_s"])
        ok_c = [r for r in c if r["status"] == "ok"]
        skipped_c = next((r["note"] for r in c if r["status"] == "skipped"), "")
        aw, ac = med([float(r["wall_s"]) for r in a]), med([float(r["cpu_s"]) for r in a])
        bw, bc = med([float(r["wall_s"]) for r in b]), med([float(r["cpu_s"]) for r in b])
        cw, cc = med([float(r["wall_s"]) for r in ok_c]), med([float(r["cpu_s"]) for r in ok_c])
        enc = [c_json(r)[1] for r in ok_c]
        limit = med([e / nproc for e in enc])
        over = 100 * (cw / limit - 1) if limit == limit and limit > 0 else float("nan")
        # Per round, the same ratios: how much they move.
        by_round = {}
        for r in a + b + ok_c:
            by_round.setdefault(r["round"], {})[r["variant"]] = float(r["wall_s"])
        ac_r = [v["a"] / v["c"] for v in by_round.values() if "a" in v and "c" in v and v["c"] > 0]
        bc_r = [v["b"] / v["c"] for v in by_round.values() if "b" in v and "c" in v and v["c"] > 0]
        a_floor = ac / nproc
        chk = [x for x in checks if x["input"] == inp and x["variant"] == "c"]
        chk_a = [x for x in checks if x["input"] == inp and x["variant"] != "c"]
        passed = sum(x["verdict"] == "PASS" for x in chk)
        nround = max(len(a), len(b), len(c))

        lines.append(f"\n{inp}: {track_s:.2f} s of audio, medians of {nround} round(s), {nproc} CPUs")
        lines.append(f"  {'':<44}{'wall s':>8}{'CPU s':>8}{'x realtime':>12}")
        na = a[0]["nout"] if a else "?"
        lines.append(f"  {'(a) ffmpeg CLI, ' + na + ' processes in parallel':<44}{f2(aw):>8}{f2(ac):>8}{f2(div(track_s, aw), 1):>12}")
        lines.append(f"  {'(b) ffmpeg CLI, 1 process, ' + na + ' outputs':<44}{f2(bw):>8}{f2(bc):>8}{f2(div(track_s, bw), 1):>12}")
        if ok_c:
            lines.append(f"  {'(c) plyr-core transcode':<44}{f2(cw):>8}{f2(cc):>8}{f2(div(track_s, cw), 1):>12}")
            lines.append(f"  a/c = {f2(div(aw, cw))} (target >= 1.15; per round {f2(min(ac_r))}-{f2(max(ac_r))}),"
                         f"  b/c = {f2(div(bw, cw))} (target >= 1.75; per round {f2(min(bc_r))}-{f2(max(bc_r))})")
            lines.append(f"  physical limit: our encoders' CPU {f2(med(enc))} s / {nproc} = {f2(limit)} s;"
                         f" our wall is {f2(over, 1)} % above it (target <= 10 %)")
            docs = [c_json(r)[0] for r in ok_c]
            doc = docs[0] or {}
            per = ", ".join(f"{x.get('name')} {f2(float(x.get('encode_cpu_s', 'nan')))}"
                            for x in doc.get("renditions", []))
            lines.append(f"  our per-rendition encode CPU s (round 1): {per}; engine-reported wall"
                         f" {f2(float(doc.get('wall_s', 'nan')))} s, cpu {f2(float(doc.get('cpu_s', 'nan')))} s")
        elif any(r["status"] == "failed" for r in c):
            lines.append(f"  {'(c) plyr-core transcode':<44}  FAILED (see logs/)")
        else:
            lines.append(f"  {'(c) plyr-core transcode':<44}  skipped: {skipped_c or 'not run'}")
        lines.append(f"  ffmpeg's own floor: (a) CPU / {nproc} = {f2(a_floor)} s; (a) wall is"
                     f" {f2(100 * (div(aw, a_floor) - 1), 1)} % above it")
        oth = {v: [float(r.get("other_cpu_s", "nan")) for r in rs] for v, rs in (("a", a), ("b", b), ("c", ok_c))}
        lines.append("  CPU s other processes took during the runs (median, max): " + ", ".join(
            f"({v}) {f2(med(xs), 1)}, {f2(max([x for x in xs if x == x] or [float('nan')]), 1)}"
            for v, xs in oth.items() if xs))
        if chk:
            lines.append(f"  output checks of (c): {passed}/{len(chk)} PASS")
        if chk_a:
            lines.append(f"  output checks of the ffmpeg CLI outputs (same checker): "
                         f"{sum(x['verdict'] == 'PASS' for x in chk_a)}/{len(chk_a)} PASS")

        def cell(w, c_):
            return f"{f2(w)} / {f2(c_)} / {f2(div(track_s, w), 0)}×" if w == w else "-"
        md_rows.append([
            inp, f"{track_s:.1f}", cell(aw, ac), cell(bw, bc),
            cell(cw, cc) if ok_c else ("FAILED" if any(r["status"] == "failed" for r in c) else "skipped"),
            f"**{f2(div(aw, cw))}**" if ok_c else "-", f"**{f2(div(bw, cw))}**" if ok_c else "-",
            f"{f2(limit)} ({f2(over, 0)} %)" if ok_c else f"- (ffmpeg: {f2(a_floor)})",
            f"{passed}/{len(chk)}" if chk else "-",
        ])

    cols = ["input", "track s", "(a) N ffmpeg in parallel: wall / CPU s / ×rt",
            "(b) 1 ffmpeg, N outputs: wall / CPU s / ×rt", "(c) plyr-core: wall / CPU s / ×rt",
            "a ÷ c (≥ 1.15)", "b ÷ c (≥ 1.75)", "limit s (our wall over it, ≤ 10 %)", "outputs PASS"]
    md = []
    if header:
        md += [header, ""]
    md.append("| " + " | ".join(cols) + " |")
    md.append("|" + "|".join(["---"] + ["---:"] * (len(cols) - 1)) + "|")
    for row in md_rows:
        md.append("| " + " | ".join(row) + " |")
    others = [(float(r["other_cpu_s"]), float(r["cpu_s"])) for r in raw
              if r["status"] == "ok" and float(r.get("other_cpu_s") or "nan") == float(r.get("other_cpu_s") or "nan")]
    if others:
        busy = sum(o > max(0.5, 0.05 * c) for o, c in others)
        md.append("")
        md.append(f"Other processes took {f2(med([o for o, _ in others]), 1)} CPU-s per timed run (median; "
                  f"max {f2(max(o for o, _ in others), 1)}); {busy} of {len(others)} runs shared the machine with "
                  f"more than 0.5 CPU-s (and 5 %) of other work" + ("; their walls are slowed." if busy else ".")
                  + (f" {nbusy} runs beside such work were redone and left out (results.tsv: \"busy\")." if nbusy else ""))
    if jobs:
        md.append("")
        if jobs.get("skipped"):
            md.append(f"Queued jobs: skipped ({jobs['skipped']}).")
        else:
            md.append("| queued jobs | window s | jobs/min | failed | machine CPU utilisation (window / median per s / lowest s) "
                      "| server CPU s | other processes' CPU s | GET /health p50 / p99 / max ms |")
            md.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
            md.append(f"| {jobs['jobs']} | {jobs['window_s']:.1f} | **{jobs['jobs_per_min']:.1f}** | {jobs['failed']} | "
                      f"{jobs['cpu_util_pct']:.0f} % / {jobs['cpu_util_per_s_median']:.0f} % / "
                      f"{jobs['cpu_util_per_s_min']:.0f} % | {jobs['server_cpu_s']} | "
                      f"{max(0.0, jobs['other_cpu_s']) if isinstance(jobs.get('other_cpu_s'), (int, float)) else '-'} | "
                      f"{jobs.get('health_ms_p50')} / {jobs.get('health_ms_p99')} / {jobs.get('health_ms_max')} |")
    print("\n".join(lines))
    print()
    print("\n".join(md))
    with open(md_out, "w") as f:
        f.write("\n".join(md) + "\n")
    return 0


def main():
    if len(sys.argv) < 2:
        die(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    table = {"pick": (cmd_pick, None), "decoded-duration": (cmd_decoded_duration, 1), "check": (cmd_check, None),
             "jobs": (cmd_jobs, 8), "report": (cmd_report, 6)}
    if cmd not in table:
        die(f"unknown command {cmd}\n{__doc__}")
    fn, n = table[cmd]
    if cmd == "pick":
        if len(args) < 2:
            die("pick MANIFEST NAME...")
        return fn(args[0], args[1:])
    if cmd == "check":
        if len(args) not in (6, 7):
            die("check LABEL VARIANT REF_S DIR LADDER CHECKS_TSV [JSON]")
        return fn(*args)
    if len(args) != n:
        die(f"{cmd} takes {n} arguments")
    return fn(*args) or 0


if __name__ == "__main__":
    sys.exit(main())
