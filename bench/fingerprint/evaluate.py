#!/usr/bin/env python3
"""Evaluation of the audio-fingerprint service on a query set made by make_queries.py.

Usage:
  bench/fingerprint/evaluate.py --queries DIR --calibrate-seed A --report-seed B --bin PLYR_CORE
      [--out RESULTS_DIR] [--assert-anchor] [--speed-files N] [--serve-args="ARGS"]

  # the quick check (what run.sh --quick runs)
  bench/fingerprint/evaluate.py --queries bench/out/fingerprint/queries-quick \\
      --calibrate-seed 1 --report-seed 2 --bin build/release/plyr-core \\
      --out bench/out/fingerprint/results-quick --assert-anchor --speed-files 3

What it does:
  service   `plyr-core serve fingerprint` on loopback (port 0, --ready-file) with a fresh data
            folder in a temporary folder, from a copy of the binary (so that a rebuild meanwhile
            changes nothing); stopped at the end, also on an error or Ctrl-C. PLYR_* variables of
            the environment are not passed on: service settings go through --serve-args only,
            e.g. --serve-args="--fingerprint-max-ber 0.22". Its log is RESULTS_DIR/service.log.
  index     every reference of DIR/manifest.json is registered (POST /v1/references, the audio
            file as the body, title = manifest id, artist = package, allow_duplicate=1: the
            corpus has near-duplicates that are distinct files); GET /v1/index must count them.
            A reference the service refuses (such as 422 NotMatchable) is named in the report,
            and its positive queries count as misses.
  queries   every row of DIR/seed<N>/queries.tsv of the two seeds is POSTed to
            /v1/match?explain=1, one at a time; the latency is the client's wall time of the
            request (sending the body included). Answers are kept in RESULTS_DIR/seed<N>.jsonl,
            one line a query keyed by qid, length and distortion, with the reference ids turned
            into manifest ids; a run resumes from them when its first line (the binary's mtime
            and size, the manifest's sha256, --serve-args) is the same, else starts over.
  decisions at the service's own threshold, from `matches`, with the manifest's `equivalent`
            classes as one work each: a positive query is a HIT when a match names its work,
            WRONG when a match names another work; the offset of a hit is right when the
            reference_offset_s of some match of the work is within 1.0 s of where that query
            position lies in the source (offset_s + query_offset_s x the tempo ratio of tempo_/
            speed_ distortions; just offset_s for a match at the query's start): looping tracks
            hold an excerpt's music at several offsets. A negative query with any match is a
            false positive (FP).
  calibration on seed A, the impostor BERs of `candidates` per length: every candidate of a
            negative query, and every candidate of a positive query that names another work;
            tau(length) = lowest impostor BER - 0.01. On seed B the queries are decided again
            from `candidates` with tau: HIT when a candidate of the work has ber <= tau, WRONG /
            FP when a candidate of another work / of a negative has ber <= tau. With A = B the
            calibrated figures are optimistic (tuned on the data they are measured on).
  tables    for seed B, per length, one row a distortion: n (positive queries), recall at the
            service's threshold and at tau, the anchor's recall (hard-coded below), the target
            and whether it is met (at the service's threshold; a "with 0 FP" target also needs
            no FP on that row's negatives and no WRONG), WRONG and FP at both thresholds (FP as
            count/negative queries), offset accuracy (right offsets / hits), p50 and p99
            latency (ms, all queries of the row), HTTP errors; then the totals.
  speed     the N longest reference files, each through `fpcalc -length 0 FILE` and
            `plyr-core fingerprint FILE`, one after the other, interleaved, 3 rounds: CPU seconds
            (user+sys of the child, from getrusage) and wall per tool, per minute of audio, and
            plyr/fpcalc (lower is better); whether both printed a fingerprint, and (untimed) how
            their raw items compare position by position. fpcalc exit status 3 with a fingerprint
            printed counts as success (a known Debian bug). Then the same files through
            `plyr-core transcode --fingerprint-speeds` at one speed and at three: the job's
            fingerprint stage (`fingerprint_cpu_s`) against fpcalc's CPU.
  report    RESULTS_DIR/report.md (and stdout): the command line, the date, index size, the
            wall time of each part, calibration, tables, speed, HTTP errors, WRONG pairs and FPs.
            RESULTS_DIR/summary.json holds the table rows.

--assert-anchor: exit status 1 (naming the rows) unless, at the service's threshold on seed B,
recall is 1.0 for the 10-s clean, mp3_64k, opus_32k, vol_m10 and snr10 rows (those present) and
no negative query of any row has a match. Exit status 2 on a setup error, 130 on Ctrl-C.
Needs Python 3.11 (standard library only); fpcalc (libchromaprint-tools) for the speed part.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import http.client
import json
import math
import os
import re
import resource
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

PROG = "evaluate"
REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "bench" / "out" / "fingerprint" / "results"

READY_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 300.0
OFFSET_TOLERANCE_S = 1.0
TAU_MARGIN = 0.01
SPEED_ROUNDS = 3
PROGRESS_EVERY_S = 15.0

# Recall of the anchor (at 0 FP), from the design notes; "-" for the others.
ANCHOR = {
    10.0: {"clean": 1.000, "vol_m10": 1.000, "mp3_64k": 1.000, "opus_32k": 1.000, "snr10": 1.000,
           "snr0": 0.803, "tempo_102": 0.803, "tempo_105": 0.408, "pitch_102": 0.092, "speed_102": 0.092},
    30.0: {"clean": 1.000, "mp3_64k": 1.000, "opus_32k": 1.000, "snr10": 1.000, "snr0": 0.961,
           "tempo_102": 0.961, "tempo_105": 0.066, "pitch_102": 0.553, "speed_102": 0.145},
}
# Targets: (minimum recall, also 0 FP and 0 WRONG on the row).
_PITCH_SPEED = {d: (0.80, False) for d in ("pitch_098", "pitch_102", "speed_098", "speed_102")}
TARGETS = {
    10.0: {**{d: (1.00, True) for d in ("clean", "mp3_64k", "opus_32k", "vol_m10", "snr10")},
           "snr0": (0.90, False), "tempo_102": (0.95, False), **_PITCH_SPEED},
    30.0: {**_PITCH_SPEED, "tempo_095": (0.80, False), "tempo_105": (0.80, False)},
}
# --assert-anchor: these 10-s rows must have recall 1.0 at the service's threshold.
ASSERT_ROWS = ("clean", "mp3_64k", "opus_32k", "vol_m10", "snr10")


# --- small helpers ------------------------------------------------------------------------------
def log(msg: str) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


class SetupError(Exception):
    """A problem that stops the run (exit status 2)."""


def fmt_duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


def fmt_length(length_s: float) -> str:
    return f"{length_s:g} s"


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tempo_ratio(distortion: str) -> float:
    """How much faster the query plays than its source (tempo_102, speed_102 -> 1.02)."""
    found = re.search(r"(?:tempo|speed)_(\d{3})", distortion)
    return int(found.group(1)) / 100 if found else 1.0


def default_max_ber(binary: str) -> float | None:
    """The service's --fingerprint-max-ber default, from `serve --help`."""
    try:
        out = subprocess.run([binary, "serve", "--help"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"--fingerprint-max-ber FLOAT=([0-9.eE+-]+)", out)
    return float(found.group(1)) if found else None


def max_ber_of(serve_args: list[str], default: float | None) -> float | None:
    """The service's threshold as --serve-args set it (None when unknown)."""
    value = default
    for i, arg in enumerate(serve_args):
        text = None
        if arg == "--fingerprint-max-ber" and i + 1 < len(serve_args):
            text = serve_args[i + 1]
        elif arg.startswith("--fingerprint-max-ber="):
            text = arg.split("=", 1)[1]
        if text is not None:
            try:
                value = float(text)
            except ValueError:
                value = None  # the service refuses it at start
    return value


# --- the manifest and the queries ---------------------------------------------------------------
class Works:
    """Manifest ids -> work (the equivalence classes as one work each)."""

    def __init__(self, manifest: dict):
        self.of: dict[str, str] = {}
        for members in manifest.get("equivalent", []):
            for member in members:
                self.of[member] = " = ".join(members)

    def __call__(self, manifest_id: str | None) -> str | None:
        if manifest_id is None:
            return None
        return self.of.get(manifest_id, manifest_id)


@dataclass
class Query:
    qid: str
    length_s: float
    distortion: str
    path: str
    kind: str
    truth: str | None
    offset_s: float

    @property
    def key(self) -> str:
        return f"{self.qid}|{self.length_s:g}|{self.distortion}"

    @property
    def positive(self) -> bool:
        return self.kind == "positive"


def read_queries(path: Path) -> list[Query]:
    if not path.is_file():
        raise SetupError(f"{path} not found (make it with make_queries.py)")
    lines = path.read_text().splitlines()
    header = lines[0].split("\t") if lines else []
    need = ["qid", "length_s", "distortion", "path", "kind", "truth", "offset_s"]
    if header[:len(need)] != need:
        raise SetupError(f"{path}: unexpected header {header}")
    queries = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < len(need):
            raise SetupError(f"{path}:{n}: {len(parts)} fields")
        qid, length_s, distortion, qpath, kind, truth, offset_s = parts[:7]
        queries.append(Query(qid, float(length_s), distortion, qpath, kind,
                             None if truth == "-" else truth, float(offset_s)))
    return queries


# --- the service --------------------------------------------------------------------------------
class Service:
    """plyr-core serve fingerprint on loopback, with a fresh data folder."""

    def __init__(self, binary: str, workdir: Path, log_path: Path, serve_args: list[str]):
        self.binary = binary
        self.workdir = workdir
        self.log_path = log_path
        self.serve_args = serve_args
        self.token = secrets.token_hex(16)
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.conn: http.client.HTTPConnection | None = None

    def start(self) -> None:
        data = self.workdir / "data"
        data.mkdir()
        ready = self.workdir / "ready.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLYR_")}
        env["PLYR_ADMIN_TOKEN"] = self.token
        cmd = [self.binary, "serve", "fingerprint", "--data", str(data),
               "--fingerprint-listen", "127.0.0.1:0", "--ready-file", str(ready), *self.serve_args]
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise SetupError(f"the service exited with status {self.proc.returncode} before it was ready "
                                 f"(see {self.log_path})")
            try:
                self.port = int(json.loads(ready.read_text())["fingerprint"])
                break
            except (OSError, ValueError, KeyError, TypeError):
                pass
            if time.monotonic() > deadline:
                raise SetupError(f"the service was not ready within {READY_TIMEOUT_S:g} s (see {self.log_path})")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "log_file", None):
            self.log_file.close()

    def request(self, method: str, target: str, body: bytes | None = None) -> tuple[int, dict | str, float]:
        """(status, JSON answer or text, wall ms); one retry on a dropped keep-alive connection."""
        headers = {"Authorization": f"Bearer {self.token}"}
        if body is not None:
            headers["Content-Type"] = "application/octet-stream"
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_S)
            try:
                started = time.perf_counter()
                self.conn.request(method, target, body=body, headers=headers)
                response = self.conn.getresponse()
                raw = response.read()
                ms = (time.perf_counter() - started) * 1000
                break
            except (http.client.HTTPException, ConnectionError, OSError) as e:
                self.conn.close()
                self.conn = None
                if self.proc is not None and self.proc.poll() is not None:
                    raise SetupError(f"the service died (exit status {self.proc.returncode}, see {self.log_path})")
                if attempt == 2:
                    raise SetupError(f"{method} {target}: {e}") from e
        text = raw.decode("utf-8", "replace")
        try:
            answer: dict | str = json.loads(text)
        except ValueError:
            answer = text
        return response.status, answer, ms


def register_references(service: Service, manifest: dict) -> tuple[dict[str, str], list[str]]:
    """Registers every manifest reference; (reference id -> manifest id, refusals)."""
    by_ref: dict[str, str] = {}
    refused: list[str] = []
    refs = manifest["references"]
    last = time.monotonic()
    for n, ref in enumerate(refs, start=1):
        body = Path(ref["path"]).read_bytes()
        target = "/v1/references?" + urllib.parse.urlencode(
            {"title": ref["id"], "artist": ref["package"], "allow_duplicate": "1"})
        status, answer, _ = service.request("POST", target, body)
        if status == 201 and isinstance(answer, dict) and "id" in answer:
            by_ref[answer["id"]] = ref["id"]
        else:
            refused.append(f"{ref['id']}: HTTP {status} {json.dumps(answer)[:200] if not isinstance(answer, str) else answer[:200]}")
        if time.monotonic() - last > PROGRESS_EVERY_S or n == len(refs):
            log(f"registered {n}/{len(refs)} references ({len(refused)} refused)")
            last = time.monotonic()
    return by_ref, refused


# --- answers and their cache --------------------------------------------------------------------
def translate(answer: dict, by_ref: dict[str, str]) -> dict:
    """The parts of a /v1/match answer the evaluation needs, reference ids as manifest ids."""
    def ref(entry: dict) -> str:
        return by_ref.get(entry.get("reference_id", ""), f"?{entry.get('reference_id')}")

    return {
        "matches": [{"ref": ref(m), "query_offset_s": m.get("query_offset_s", 0.0),
                     "reference_offset_s": m.get("reference_offset_s"), "duration_s": m.get("duration_s"),
                     "score": m.get("score"), "speed": m.get("speed")} for m in answer.get("matches", [])],
        "candidates": [{"window": c.get("window"), "ref": ref(c), "query_offset_s": c.get("query_offset_s"),
                        "reference_offset_s": c.get("reference_offset_s"), "ber": c.get("ber"),
                        "speed": c.get("speed"), "accepted": c.get("accepted")}
                       for c in answer.get("candidates", [])],
        "windows": answer.get("windows"),
        "is_flagged": answer.get("is_flagged"),
    }


class AnswerCache:
    """RESULTS_DIR/seed<N>.jsonl: a header line, then one answer a line."""

    def __init__(self, path: Path, header: dict):
        self.path = path
        self.records: dict[str, dict] = {}
        fresh = True
        if path.is_file():
            lines = path.read_text().splitlines()
            try:
                fresh = json.loads(lines[0]).get("header") != header
            except (IndexError, ValueError, AttributeError):
                fresh = True
            if fresh:
                log(f"{path.name}: made by another binary, reference set or service settings: starting over")
            else:
                for line in lines[1:]:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue  # a line cut short by an interruption
                    self.records[record["key"]] = record
        if fresh:
            path.write_text(json.dumps({"header": header}) + "\n")
        else:
            # Rewrite without a cut line, so that appends start on a line of their own.
            path.write_text("\n".join([json.dumps({"header": header}),
                                       *(json.dumps(r) for r in self.records.values())]) + "\n")
        self.file = open(path, "a")

    def add(self, record: dict) -> None:
        self.records[record["key"]] = record
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def ask_queries(service: Service, seed: int, queries: list[Query], cache: AnswerCache,
                by_ref: dict[str, str]) -> list[dict]:
    """The answer record of every query, from the cache or asked now."""
    records = []
    cached = sum(q.key in cache.records for q in queries)
    log(f"seed {seed}: {len(queries)} queries, {cached} answered in an earlier run")
    started = last = time.monotonic()
    asked = errors = 0
    for n, q in enumerate(queries, start=1):
        record = cache.records.get(q.key)
        if record is None:
            try:
                body = Path(q.path).read_bytes()
            except OSError as e:
                raise SetupError(f"query file {q.path}: {e}") from e
            status, answer, ms = service.request("POST", "/v1/match?explain=1", body)
            record = {"key": q.key, "status": status, "latency_ms": round(ms, 3)}
            if status == 200 and isinstance(answer, dict):
                record["answer"] = translate(answer, by_ref)
            else:
                record["error"] = answer if isinstance(answer, str) else json.dumps(answer)
            cache.add(record)
            asked += 1
        if record["status"] != 200:
            errors += 1
        records.append(record)
        now = time.monotonic()
        if now - last > PROGRESS_EVERY_S or n == len(queries):
            rate = asked / (now - started) if asked else 0
            eta = (len(queries) - n) / rate if rate else 0
            log(f"seed {seed}: {n}/{len(queries)} ({asked} asked, {n - asked} cached), {errors} HTTP errors, "
                f"{fmt_duration(now - started)}" + (f", about {fmt_duration(eta)} left" if n < len(queries) else ""))
            last = now
    return records


# --- decisions ----------------------------------------------------------------------------------
@dataclass
class Outcome:
    """One query's outcome at one threshold."""
    hit: bool = False
    wrong: list[str] = field(default_factory=list)  # refs of other works
    offset_ok: bool | None = None
    error: bool = False


def decide_service(q: Query, record: dict, works: Works) -> Outcome:
    if record["status"] != 200:
        return Outcome(error=True)
    matches = record["answer"]["matches"]
    if not q.positive:
        return Outcome(wrong=[m["ref"] for m in matches])
    truth = works(q.truth)
    right = [m for m in matches if works(m["ref"]) == truth]
    out = Outcome(hit=bool(right), wrong=[m["ref"] for m in matches if works(m["ref"]) != truth])
    if right:
        # Right when some match of the work aligns where the excerpt was cut. A looping track
        # holds the excerpt's music at several offsets, and the service may report another
        # repetition (or several matches of one reference, one per repetition).
        def aligned(m: dict) -> bool:
            expected = q.offset_s + (m.get("query_offset_s") or 0.0) * tempo_ratio(q.distortion)
            return m.get("reference_offset_s") is not None and \
                abs(m["reference_offset_s"] - expected) <= OFFSET_TOLERANCE_S
        out.offset_ok = any(aligned(m) for m in right)
    return out


def decide_calibrated(q: Query, record: dict, works: Works, tau: float | None) -> Outcome | None:
    if tau is None:
        return None
    if record["status"] != 200:
        return Outcome(error=True)
    below = [c for c in record["answer"]["candidates"] if c.get("ber") is not None and c["ber"] <= tau]
    if not q.positive:
        return Outcome(wrong=[c["ref"] for c in below])
    truth = works(q.truth)
    return Outcome(hit=any(works(c["ref"]) == truth for c in below),
                   wrong=[c["ref"] for c in below if works(c["ref"]) != truth])


def impostors(queries: list[Query], records: list[dict], works: Works) -> dict[float, list[tuple]]:
    """Per length, (ber, query, candidate) of every impostor candidate, lowest BER first."""
    found: dict[float, list[tuple]] = {}
    for q, r in zip(queries, records):
        found.setdefault(q.length_s, [])
        if r["status"] != 200:
            continue
        for c in r["answer"]["candidates"]:
            if c.get("ber") is None:
                continue
            if not q.positive or works(c["ref"]) != works(q.truth):
                found[q.length_s].append((c["ber"], q, c))
    for items in found.values():
        items.sort(key=lambda t: t[0])
    return found


@dataclass
class Row:
    length_s: float
    distortion: str
    n: int = 0
    negatives: int = 0
    hits: int = 0
    hits_tau: int | None = None
    wrong: int = 0
    wrong_tau: int | None = None
    fp: int = 0
    fp_tau: int | None = None
    offset_ok: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    anchor: float | None = None
    target: tuple[float, bool] | None = None

    @property
    def recall(self) -> float | None:
        return self.hits / self.n if self.n else None

    @property
    def recall_tau(self) -> float | None:
        return self.hits_tau / self.n if self.n and self.hits_tau is not None else None

    @property
    def met(self) -> bool | None:
        if self.target is None or self.recall is None:
            return None
        minimum, zero_fp = self.target
        return self.recall >= minimum - 1e-9 and (not zero_fp or (self.fp == 0 and self.wrong == 0))


def tabulate(queries: list[Query], records: list[dict], works: Works,
             tau: dict[float, float | None]) -> tuple[dict[float, list[Row]], list[dict], list[dict]]:
    """Rows per length (distortions in the order of queries.tsv), and the WRONG and FP cases."""
    rows: dict[tuple[float, str], Row] = {}
    wrong_cases, fp_cases = [], []
    for q, r in zip(queries, records):
        row = rows.setdefault((q.length_s, q.distortion), Row(
            q.length_s, q.distortion, anchor=ANCHOR.get(q.length_s, {}).get(q.distortion),
            target=TARGETS.get(q.length_s, {}).get(q.distortion)))
        row.latencies.append(r["latency_ms"])
        svc = decide_service(q, r, works)
        cal = decide_calibrated(q, r, works, tau.get(q.length_s))
        row.errors += svc.error
        if q.positive:
            row.n += 1
            row.hits += svc.hit
            row.offset_ok += bool(svc.offset_ok)
            row.wrong += bool(svc.wrong)
            if cal is not None:
                row.hits_tau = (row.hits_tau or 0) + cal.hit
                row.wrong_tau = (row.wrong_tau or 0) + bool(cal.wrong)
        else:
            row.negatives += 1
            row.fp += bool(svc.wrong)
            if cal is not None:
                row.fp_tau = (row.fp_tau or 0) + bool(cal.wrong)
        if svc.wrong:
            case = {"qid": q.qid, "length_s": q.length_s, "distortion": q.distortion, "truth": q.truth,
                    "matched": [{"ref": m["ref"], "score": m.get("score"),
                                 "reference_offset_s": m.get("reference_offset_s")}
                                for m in r["answer"]["matches"] if m["ref"] in svc.wrong]}
            (wrong_cases if q.positive else fp_cases).append(case)
    by_length: dict[float, list[Row]] = {}
    for (length_s, _), row in rows.items():
        by_length.setdefault(length_s, []).append(row)
    return dict(sorted(by_length.items())), wrong_cases, fp_cases


def total_row(rows: list[Row], length_s: float | None) -> Row:
    t = Row(length_s or 0, "total")
    for r in rows:
        t.n += r.n
        t.negatives += r.negatives
        t.hits += r.hits
        t.wrong += r.wrong
        t.fp += r.fp
        t.offset_ok += r.offset_ok
        t.errors += r.errors
        t.latencies += r.latencies
        if r.hits_tau is not None:
            t.hits_tau = (t.hits_tau or 0) + r.hits_tau
            t.wrong_tau = (t.wrong_tau or 0) + (r.wrong_tau or 0)
        if r.fp_tau is not None:
            t.fp_tau = (t.fp_tau or 0) + r.fp_tau
    return t


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def fmt_count(value: int | None) -> str:
    return "-" if value is None else str(value)


def fmt_fp(count: int | None, trials: int) -> str:
    return "-" if count is None or not trials else f"{count}/{trials}"


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def fmt_target(target: tuple[float, bool] | None) -> str:
    if target is None:
        return "-"
    minimum, zero_fp = target
    return f"{minimum:.2f}, 0 FP" if zero_fp else f">= {minimum:.2f}"


def markdown_table(rows: list[Row]) -> list[str]:
    head = ["distortion", "n", "recall", "recall τ", "anchor", "target", "status", "wrong", "FP",
            "wrong τ", "FP τ", "offset", "p50 ms", "p99 ms", "HTTP err"]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["--:"] * (len(head) - 1)) + "|"]
    for r in [*rows, total_row(rows, rows[0].length_s if rows else None)]:
        total = r.distortion == "total"
        if total:
            judged = [x.met for x in rows if x.met is not None]
            status = f"{sum(judged)}/{len(judged)} met" if judged else "-"
        else:
            status = {None: "-", True: "met", False: "**missed**"}[r.met]
        cells = [f"**{r.distortion}**" if total else r.distortion, str(r.n), fmt_ratio(r.recall),
                 fmt_ratio(r.recall_tau), fmt_ratio(r.anchor), fmt_target(r.target), status,
                 str(r.wrong), fmt_fp(r.fp, r.negatives), fmt_count(r.wrong_tau), fmt_fp(r.fp_tau, r.negatives),
                 fmt_ratio(r.offset_ok / r.hits if r.hits else None),
                 fmt_ms(percentile(r.latencies, 50)), fmt_ms(percentile(r.latencies, 99)), str(r.errors)]
        out.append("| " + " | ".join(cells) + " |")
    return out


# --- speed against fpcalc -----------------------------------------------------------------------
def run_timed(cmd: list[str], ok_codes: tuple[int, ...]) -> tuple[float, float, str | None, str]:
    """(CPU s of the child, wall s, fingerprint or None, error)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    found = re.search(r"^FINGERPRINT=(\S+)", proc.stdout, re.M)
    if proc.returncode in ok_codes and found:
        return cpu, wall, found.group(1), ""
    return cpu, wall, None, f"exit {proc.returncode}: {proc.stderr.strip()[-200:]}"


def raw_items(cmd: list[str], ok_codes: tuple[int, ...]) -> list[int] | None:
    """The items of a --raw / -raw fingerprint as unsigned 32-bit integers."""
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    found = re.search(r"^FINGERPRINT=(\S+)", proc.stdout, re.M)
    if proc.returncode not in ok_codes or not found:
        return None
    try:
        return [int(x) & 0xFFFFFFFF for x in found.group(1).split(",")]
    except ValueError:
        return None


def speed_test(binary: str, manifest: dict, count: int) -> list[str]:
    lines = ["## Fingerprint speed against fpcalc", ""]
    if count <= 0:
        return lines + ["skipped (--speed-files 0)", ""]
    fpcalc = shutil.which("fpcalc")
    if fpcalc is None:
        return lines + ["skipped: fpcalc not found (apt-get install libchromaprint-tools)", ""]
    files = sorted(manifest["references"], key=lambda r: (-r["duration_s"], r["id"]))[:count]
    minutes = sum(f["duration_s"] for f in files) / 60
    tools = {"fpcalc": ([fpcalc, "-length", "0"], (0, 3)), "plyr-core": ([binary, "fingerprint"], (0,))}
    cpu = {t: 0.0 for t in tools}
    wall = {t: 0.0 for t in tools}
    prints: dict[str, dict[str, str | None]] = {t: {} for t in tools}
    failures: list[str] = []
    log(f"speed: {len(files)} files ({minutes:.1f} min of audio) x {SPEED_ROUNDS} rounds, fpcalc and plyr-core")
    for rnd in range(SPEED_ROUNDS):
        for f in files:
            for tool, (cmd, ok) in tools.items():
                c, w, fp, err = run_timed([*cmd, f["path"]], ok)
                cpu[tool] += c
                wall[tool] += w
                if rnd == 0:
                    prints[tool][f["id"]] = fp
                if fp is None:
                    failures.append(f"{tool} {f['id']} (round {rnd + 1}): {err}")
    audio_min = minutes * SPEED_ROUNDS
    lines += [f"{len(files)} longest reference files, {minutes:.1f} min of audio, {SPEED_ROUNDS} rounds "
              f"({audio_min:.1f} min in all), each file through `fpcalc -length 0 FILE` and "
              "`plyr-core fingerprint FILE` in turn, one process at a time. CPU = user+sys of the process.", "",
              "| tool | CPU s | wall s | CPU s / audio min | wall s / audio min |",
              "|---|--:|--:|--:|--:|"]
    for tool in tools:
        lines.append(f"| {tool} | {cpu[tool]:.2f} | {wall[tool]:.2f} | {cpu[tool] / audio_min:.4f} | "
                     f"{wall[tool] / audio_min:.4f} |")
    cpu_ratio = cpu["plyr-core"] / cpu["fpcalc"] if cpu["fpcalc"] else float("nan")
    wall_ratio = wall["plyr-core"] / wall["fpcalc"] if wall["fpcalc"] else float("nan")
    both = [i for i in prints["fpcalc"] if prints["fpcalc"][i] and prints["plyr-core"].get(i)]
    same = sum(prints["fpcalc"][i] == prints["plyr-core"][i] for i in both)
    lines += ["", f"plyr-core / fpcalc (lower is better): CPU {cpu_ratio:.3f}, wall {wall_ratio:.3f}", "",
              f"Output: both printed a fingerprint for {len(both)}/{len(files)} files; "
              f"the same fingerprint string for {same}/{len(both)}."]
    # Not timed: the raw items of both, compared position by position.
    compared = []
    for f in files:
        a = raw_items([fpcalc, "-raw", "-length", "0", f["path"]], (0, 3))
        b = raw_items([binary, "fingerprint", "--raw", f["path"]], (0,))
        if a and b:
            n = min(len(a), len(b))
            diff_bits = sum(bin(x ^ y).count("1") for x, y in zip(a, b))
            compared.append((f["id"], len(a), len(b), sum(x == y for x, y in zip(a, b)) / n, diff_bits / (32 * n)))
    if compared:
        lines += ["", "Raw items (`fpcalc -raw`, `plyr-core fingerprint --raw`), position by position:", "",
                  "| file | items fpcalc | items plyr-core | identical items | bit error rate |",
                  "|---|--:|--:|--:|--:|"]
        lines += [f"| {i} | {na} | {nb} | {same_share:.3f} | {ber:.4f} |" for i, na, nb, same_share, ber in compared]
    lines += ["", *job_stage_speed(binary, files, cpu["fpcalc"] / SPEED_ROUNDS)]
    if failures:
        lines += ["", "Failures:", *(f"- {x}" for x in failures)]
    return lines + [""]


def job_stage_speed(binary: str, files: list[dict], fpcalc_cpu: float) -> list[str]:
    """The fingerprint stage inside a transcoder job: `fingerprint_cpu_s` of `plyr-core transcode`
    (its 11025 Hz resampling and Chromaprint, the decode being the job's own) for one speed and
    for the default three, against fpcalc's CPU for the same files (one round)."""
    settings = {"1": "1", "1, 0.98, 1.02 (default)": "1,0.98,1.02"}
    stage = {name: 0.0 for name in settings}
    errors = []
    with tempfile.TemporaryDirectory(prefix="fp-job-") as out:
        for _ in range(SPEED_ROUNDS):
            for f in files:
                for name, speeds in settings.items():
                    proc = subprocess.run([binary, "transcode", f["path"], "--out", out, "--renditions", "wav",
                                           "--fingerprint-speeds", speeds],
                                          stdin=subprocess.DEVNULL, capture_output=True, text=True)
                    try:
                        stage[name] += float(json.loads(proc.stdout)["fingerprint_cpu_s"])
                    except (ValueError, KeyError, TypeError):
                        errors.append(f"{f['id']} ({speeds}): exit {proc.returncode} {proc.stderr.strip()[-200:]}")
    lines = ["Inside a transcoder job (`plyr-core transcode FILE --renditions wav --fingerprint-speeds S`, "
             f"`fingerprint_cpu_s` of the result: the stage's resampling and Chromaprint, the decode being shared), "
             f"same files, {SPEED_ROUNDS} rounds; target: 0.10 of fpcalc:", "",
             "| speeds | stage CPU s per round | against fpcalc's CPU |", "|---|--:|--:|"]
    for name, total in stage.items():
        per_round = total / SPEED_ROUNDS
        lines.append(f"| {name} | {per_round:.3f} | {per_round / fpcalc_cpu if fpcalc_cpu else float('nan'):.3f} |")
    if errors:
        lines += ["", "Job failures:", *(f"- {x}" for x in errors)]
    return lines


# --- the run ------------------------------------------------------------------------------------
def whole_negatives(service: "Service", manifest: dict, by_ref: dict[str, str]) -> list[dict]:
    """POSTs every negative track whole to /v1/match; one record per track."""
    names = {v: k for k, v in by_ref.items()}
    out = []
    for track in manifest["negatives"]:
        body = Path(track["path"]).read_bytes()
        status, answer, latency = service.request("POST", "/v1/match", body)
        record = {"id": track["id"], "status": status, "latency_ms": latency, "windows": 0, "matches": []}
        if status == 200 and isinstance(answer, dict):
            record["windows"] = answer.get("windows", {}).get("total", 0)
            record["matches"] = [f"{names.get(m.get('reference_id'), m.get('reference_id'))}"
                                 f"@{m.get('reference_offset_s')}s score {m.get('score')}"
                                 for m in answer.get("matches", [])]
        out.append(record)
    log(f"whole negative tracks: {len(out)}, {sum(r['windows'] for r in out)} windows, "
        f"{sum(1 for r in out if r['matches'])} with a match")
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="evaluate.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--queries", type=Path, required=True, help="make_queries.py's output folder")
    p.add_argument("--calibrate-seed", type=int, required=True, metavar="A", help="seed that sets τ")
    p.add_argument("--report-seed", type=int, required=True, metavar="B", help="seed of the tables")
    p.add_argument("--bin", required=True, metavar="PLYR_CORE", help="the plyr-core binary")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="RESULTS_DIR",
                   help="answers, report.md, summary.json and service.log (default: bench/out/fingerprint/results)")
    p.add_argument("--assert-anchor", action="store_true",
                   help="exit 1 unless the 10-s clean/mp3_64k/opus_32k/vol_m10/snr10 recall is 1.0 and no negative matches")
    p.add_argument("--speed-files", type=int, default=10, metavar="N",
                   help="reference files for the speed comparison with fpcalc (default 10; 0 skips it)")
    p.add_argument("--serve-args", default="", metavar="ARGS",
                   help='extra `plyr-core serve` arguments, e.g. --serve-args="--fingerprint-max-ber 0.22"')
    args = p.parse_args(argv)
    args.serve_args = shlex.split(args.serve_args)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    command_line = shlex.join(["bench/fingerprint/evaluate.py", *argv])
    started_at = datetime.datetime.now(datetime.timezone.utc)
    binary = Path(args.bin)
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise SetupError(f"{binary}: not an executable file")
    manifest_path = args.queries / "manifest.json"
    if not manifest_path.is_file():
        raise SetupError(f"{manifest_path} not found (make it with make_queries.py)")
    manifest = json.loads(manifest_path.read_text())
    works = Works(manifest)
    seeds = list(dict.fromkeys([args.calibrate_seed, args.report_seed]))
    queries = {s: read_queries(args.queries / f"seed{s}" / "queries.tsv") for s in seeds}
    args.out.mkdir(parents=True, exist_ok=True)

    timings: list[tuple[str, float]] = []
    stat = binary.stat()
    header = {"binary_mtime_ns": stat.st_mtime_ns, "binary_size": stat.st_size,
              "manifest_sha256": sha256_of(manifest_path), "serve_args": args.serve_args}
    max_ber = max_ber_of(args.serve_args, default_max_ber(str(binary)))

    workdir = Path(tempfile.mkdtemp(prefix="fp-eval-"))
    service = None
    try:
        # A private copy: a rebuild of the original during the run changes nothing.
        own_binary = workdir / "plyr-core"
        shutil.copy2(binary, own_binary)
        service = Service(str(own_binary), workdir, args.out / "service.log", args.serve_args)
        t0 = time.monotonic()
        service.start()
        log(f"service listening on 127.0.0.1:{service.port}")
        by_ref, refused = register_references(service, manifest)
        status, index, _ = service.request("GET", "/v1/index")
        if status != 200 or not isinstance(index, dict):
            raise SetupError(f"GET /v1/index: HTTP {status} {index}")
        if index.get("references") != len(by_ref):
            raise SetupError(f"GET /v1/index counts {index.get('references')} references, "
                             f"{len(by_ref)} were registered")
        timings.append((f"service start and {len(by_ref)} references registered", time.monotonic() - t0))
        index_line = (f"{index['references']} references of {len(manifest['references'])} in the manifest, "
                      f"{index['hours']:.2f} h of audio, {index['items']} items, "
                      f"{index['memory_bytes'] / 2**20:.1f} MiB of index memory, key_bits {index['key_bits']}")
        log(f"index: {index_line}")
        if refused:
            log(f"refused references: {'; '.join(refused)}")

        records: dict[int, list[dict]] = {}
        for s in seeds:
            t0 = time.monotonic()
            cache = AnswerCache(args.out / f"seed{s}.jsonl", header)
            try:
                records[s] = ask_queries(service, s, queries[s], cache, by_ref)
            finally:
                cache.close()
            timings.append((f"seed {s}: {len(queries[s])} queries", time.monotonic() - t0))

        # Every never-indexed track whole, as an upload: hundreds of windows per track, each a trial.
        t0 = time.monotonic()
        whole = whole_negatives(service, manifest, by_ref)
        timings.append((f"{len(whole)} whole negative tracks", time.monotonic() - t0))
        service.stop()

        t0 = time.monotonic()
        speed_lines = speed_test(str(own_binary), manifest, args.speed_files)
        if args.speed_files > 0:
            timings.append(("speed comparison", time.monotonic() - t0))
    finally:
        if service is not None:
            service.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    # Calibration on seed A.
    a, b = args.calibrate_seed, args.report_seed
    imp = impostors(queries[a], records[a], works)
    tau = {length: (items[0][0] - TAU_MARGIN if items else None) for length, items in imp.items()}

    by_length, wrong_cases, fp_cases = tabulate(queries[b], records[b], works, tau)
    report = [f"# Fingerprint evaluation, seed {b} (τ calibrated on seed {a})", "",
              f"- command: `{command_line}`",
              f"- date: {started_at.strftime('%Y-%m-%d %H:%M UTC')}",
              f"- binary: {binary.name}, {stat.st_size} bytes, modified "
              f"{datetime.datetime.fromtimestamp(stat.st_mtime, datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')}",
              f"- service settings: {shlex.join(args.serve_args) or '(defaults)'}; max_ber "
              f"{'?' if max_ber is None else f'{max_ber:g}'}",
              f"- manifest: {len(manifest['references'])} references "
              f"({', '.join(manifest.get('reference_packages', []))}), {len(manifest['negatives'])} negative tracks "
              f"({', '.join(manifest.get('negative_packages', []))}), {len(manifest.get('equivalent', []))} "
              "equivalence classes",
              f"- index: {index_line}", ""]
    if refused:
        registered = set(by_ref.values())
        lost = [q for q in queries[b] if q.positive and q.truth not in registered]
        per_row = {}
        for q in lost:
            per_row[(q.length_s, q.distortion)] = per_row.get((q.length_s, q.distortion), 0) + 1
        report += ["**References the service refused** (their positive queries count as misses):", "",
                   *(f"- {x}" for x in refused), "",
                   f"On seed {b}, {len(lost)} positive queries are of these references "
                   f"(at most {max(per_row.values(), default=0)} in one table row).", ""]
    if a == b:
        report += [f"**τ is calibrated on seed {a} itself**: the τ columns are optimistic (tuned on the "
                   "queries they are measured on).", ""]

    report += ["## Calibration", "",
               f"Impostor candidates on seed {a} (every candidate of a negative query, every candidate of a "
               "positive query naming another work); τ = lowest impostor BER − 0.01.", ""]
    for length, items in sorted(imp.items()):
        if not items:
            report.append(f"- {fmt_length(length)}: no impostor candidate: τ undefined")
            continue
        ber, q, c = items[0]
        lowest = ", ".join(f"{x[0]:.3f}" for x in items[:5])
        report.append(f"- {fmt_length(length)}: τ = {tau[length]:.3f}, set by {q.qid} ({q.distortion}, "
                      f"{q.kind}{'' if q.truth is None else ' of ' + q.truth}) against {c['ref']} "
                      f"at ber {ber:.3f} (window {c['window']}, "
                      f"{'accepted' if c.get('accepted') else 'rejected'} by the service); "
                      f"{len(items)} impostor candidates, lowest {lowest}")
    report.append("")

    summary_rows = []
    for length, rows in by_length.items():
        report += [f"## {fmt_length(length)} queries (seed {b})", "", *markdown_table(rows), ""]
        for r in [*rows, total_row(rows, length)]:
            summary_rows.append({"length_s": length, "distortion": r.distortion, "n": r.n,
                                 "negatives": r.negatives, "recall": r.recall, "recall_tau": r.recall_tau,
                                 "anchor": r.anchor, "met": r.met, "wrong": r.wrong, "fp": r.fp,
                                 "wrong_tau": r.wrong_tau, "fp_tau": r.fp_tau,
                                 "offset_ok": r.offset_ok, "hits": r.hits, "errors": r.errors,
                                 "p50_ms": percentile(r.latencies, 50), "p99_ms": percentile(r.latencies, 99)})
    all_rows = [r for rows in by_length.values() for r in rows]
    overall = total_row(all_rows, None)
    report += [f"All lengths: recall {fmt_ratio(overall.recall)} at the service's threshold "
               f"({overall.hits}/{overall.n}), {fmt_ratio(overall.recall_tau)} at τ; FP on negatives "
               f"{fmt_fp(overall.fp, overall.negatives)} (at τ {fmt_fp(overall.fp_tau, overall.negatives)}); "
               f"WRONG {overall.wrong}; HTTP errors {overall.errors}; latency p50 "
               f"{fmt_ms(percentile(overall.latencies, 50))} ms, p99 {fmt_ms(percentile(overall.latencies, 99))} ms.",
               "",
               "Columns: n = positive queries; recall at the service's threshold (its `matches`) and at τ "
               "(from `candidates`); anchor = the anchor's recall at 0 FP (design notes); status = the target "
               "met or missed at the service's threshold (\"0 FP\" targets also need no FP and no WRONG on the "
               "row); wrong = positive queries with a match to another work; FP = negative queries with a "
               "match / negative queries; offset = hits with a match within 1 s of the excerpt's position "
               "in the source / hits (a looping track may match at another repetition); "
               "latency over all queries of the row (client wall time of the request).", ""]

    matched_whole = [r for r in whole if r["matches"] or r["status"] != 200]
    report += ["## Whole never-indexed tracks", "",
               f"Each negative track POSTed whole, as an upload: {len(whole)} tracks, "
               f"{sum(r['windows'] for r in whole)} windows (each matched at every speed variant); "
               f"tracks with a match or an error: {len(matched_whole)}.", ""]
    report += [f"- {r['id']}: HTTP {r['status']} {'; '.join(r['matches'])}" for r in matched_whole]
    report.append("")
    report += ["## Wall time", "", *(f"- {name}: {fmt_duration(secs)}" for name, secs in timings), ""]
    report += speed_lines

    report += [f"## Cases (seed {b}, service's threshold)", ""]
    errors = [(q, r) for q, r in zip(queries[b], records[b]) if r["status"] != 200]
    report.append(f"HTTP errors: {len(errors)}")
    report += [f"- {q.qid} {fmt_length(q.length_s)} {q.distortion}: HTTP {r['status']} {str(r.get('error'))[:160]}"
               for q, r in errors[:50]]
    report += ["", f"WRONG (a positive matched to another work): {len(wrong_cases)}"]
    pairs: dict[tuple[str, str], list[str]] = {}
    for case in wrong_cases:
        for m in case["matched"]:
            pairs.setdefault((case["truth"], m["ref"]), []).append(
                f"{case['qid']} {case['length_s']:g}s {case['distortion']} score {m['score']}")
    for (truth, ref), cases in sorted(pairs.items(), key=lambda kv: -len(kv[1])):
        report.append(f"- {truth} → {ref}: {len(cases)} ({'; '.join(cases[:6])}{'; ...' if len(cases) > 6 else ''})")
    report += ["", f"FP (a negative with a match): {len(fp_cases)}"]
    report += [f"- {c['qid']} {c['length_s']:g}s {c['distortion']} → "
               + ", ".join(f"{m['ref']} (score {m['score']}, at {m['reference_offset_s']} s)" for m in c["matched"])
               for c in fp_cases[:50]]
    report.append("")

    failed: list[str] = []
    if args.assert_anchor:
        rows10 = {r.distortion: r for r in by_length.get(10.0, [])}
        for d in ASSERT_ROWS:
            r = rows10.get(d)
            if r is not None and r.n and r.hits != r.n:
                failed.append(f"10 s {d}: recall {r.recall:.3f} ({r.hits}/{r.n}), must be 1.0")
        if overall.fp:
            failed.append(f"FP on negatives {overall.fp}/{overall.negatives}, must be 0")
        if matched_whole:
            failed.append(f"{len(matched_whole)} whole negative tracks matched something, must be 0")
        report += ["## Anchor assertion", "",
                   "failed:" if failed else "passed: recall 1.0 on the 10-s clean, mp3_64k, opus_32k, vol_m10 and "
                   "snr10 rows present, and no FP on negatives, excerpts or whole tracks", *(f"- {x}" for x in failed), ""]

    text = "\n".join(report)
    (args.out / "report.md").write_text(text)
    (args.out / "summary.json").write_text(json.dumps(
        {"command": command_line, "date": started_at.isoformat(timespec="seconds"), "calibrate_seed": a,
         "report_seed": b, "tau": {f"{k:g}": v for k, v in tau.items()}, "index": index,
         "rows": summary_rows, "whole_negatives": whole}, indent=1) + "\n")
    print(text)
    log(f"report: {args.out / 'report.md'}")
    if failed:
        log("anchor assertion failed: " + "; ".join(failed))
        return 1
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    # Ctrl-C, kill and a closed terminal all stop the service and keep the answers so far (also
    # when started in the background, where SIGINT would otherwise be ignored).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    try:
        sys.exit(main(sys.argv[1:]))
    except SetupError as e:
        log(f"ERROR: {e}")
        sys.exit(2)
    except KeyboardInterrupt:
        log("interrupted (the answers so far are kept and a new run resumes from them)")
        sys.exit(130)
