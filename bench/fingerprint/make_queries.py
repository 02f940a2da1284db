#!/usr/bin/env python3
"""Query set for the audio-fingerprint evaluation, cut from the real-music corpus.

The corpus is the game soundtracks that bench/corpus/fetch.sh unpacks from Debian packages. The
tracks of the reference packages are the works an index holds; the tracks of the negative
packages are never indexed, so a match on one of their excerpts is a false positive. From each
track the script cuts excerpts at random offsets and distorts them (re-encoding, noise, tempo,
pitch, speed, band limit) with ffmpeg.

Usage:
  bench/fingerprint/make_queries.py --out DIR --seed N [--offsets K] [--lengths 10,30]
      [--distortions LIST] [--jobs J] [--max-refs M] [--max-negatives M]
      [--reference-packages "P ..."] [--negative-packages "P ..."]
  bench/fingerprint/make_queries.py --out DIR --list    # manifest summary only

  # a small subset, e.g. for CI: 3 references, 2 negatives, 10-s excerpts
  bench/fingerprint/make_queries.py --out fpq --seed 1 --max-refs 3 --max-negatives 2 --lengths 10

Output:
  DIR/manifest.json        the reference and negative tracks (id such as "wesnoth/northerners",
                           path, duration, package, version, sha256, loudness), the classes of
                           ids that are the same work ("equivalent") and the tracks left out
                           with the reason. The same for every seed.
  DIR/seed<N>/<L>s/<distortion>/<qid>.<ext>
                           one query file; qid = "<id with / as _>@<offset in s, 0.1 s>",
                           e.g. wesnoth_northerners@61.3. Lossless results are FLAC, lossy
                           ones keep their own container (.mp3, .opus, .m4a).
  DIR/seed<N>/queries.tsv  one row a query file, tab-separated, with a header:
                           qid length_s distortion path kind truth offset_s
                           kind is positive or negative, truth the reference id ("-" for a
                           negative), offset_s the excerpt's start in the source track (also for
                           the tempo and speed changes); paths absolute.
  DIR/.loudness-cache.json volumedetect results by file sha256, start and length, so that runs
                           after the first need no new measurement for the choices they repeat.

What is chosen:
  tracks   every audio file of the packages (fetch.sh's manifest) of 20 s or longer whose
           max_volume is -50 dB or more (wesnoth's silence.ogg is left out). --max-refs and
           --max-negatives take a fixed-seed sample of the ids (not depending on --seed).
  offsets  for each track of 45 s or longer, K offsets drawn uniformly in [5, duration - 35]
           by a random.Random seeded from --seed and the track id; an offset whose 30-s excerpt
           has a mean_volume under -40 dB is drawn again, up to 6 tries, then given up (on
           stderr).
  excerpts for every offset and length, the clean excerpt is decoded with an accurate seek
           to 44.1 kHz stereo 16-bit, and each distortion made from it (see DISTORTIONS).
  noise    white or pink noise (anoisesrc, seeded from --seed and the qid) scaled so that the
           excerpt's mean_volume minus the noise's is the SNR; the noise's level at amplitude
           0.5 is measured once at start.

Idempotent: an existing non-empty query file is not made again, and every file is written under
a temporary name and renamed once complete. ffmpeg runs in --jobs threads (default: the CPU
count). Needs ffmpeg with libmp3lame, libopus and rubberband. Standard library only.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PROG = "make_queries"
FETCH_SH = Path(__file__).resolve().parents[1] / "corpus" / "fetch.sh"

DEFAULT_REFERENCE_PACKAGES = "wesnoth-1.16-music hedgewars-data supertux-data freedroidrpg-data extremetuxracer-data"
DEFAULT_NEGATIVE_PACKAGES = "warzone2100-music lincity-ng-data"

MIN_TRACK_S = 20.0        # shorter files (stingers, jingles) are not tracks
SILENT_MAX_DB = -50.0     # a file whose max_volume is below this is silence
MIN_QUERY_TRACK_S = 45.0  # shorter tracks are indexed but give no query
OFFSET_HEAD_S = 5.0       # offsets are drawn in [OFFSET_HEAD_S, duration - OFFSET_TAIL_S]
OFFSET_TAIL_S = 35.0
CHECK_LENGTH_S = 30.0     # the excerpt whose loudness decides whether an offset is kept
QUIET_MEAN_DB = -40.0     # ... it is too quiet when its mean_volume is below this
OFFSET_TRIES = 6
SAMPLE_RATE = 44100
NOISE_AMPLITUDE = 0.5
VOLUME_FLOOR_DB = -120.0  # stands for -inf dB (digital silence) in the JSON files
PROGRESS_EVERY = 50

# Known near-duplicates: file stems, within one package (by its short name), that are the same
# work. A class enters the manifest with those of its members that are tracks there (two or more).
KNOWN_EQUIVALENTS = {
    "wesnoth": [("frantic", "frantic-old")],
    "supertux": [("forest", "forest2", "forest3"), ("ghostforest", "ghostforest2")],
}


# --- distortions --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Codec:
    ext: str
    args: tuple[str, ...]
    encoder: str


FLAC = Codec("flac", ("-c:a", "flac", "-sample_fmt", "s16"), "flac")
MP3_64K = Codec("mp3", ("-c:a", "libmp3lame", "-b:a", "64k"), "libmp3lame")
OPUS_32K = Codec("opus", ("-c:a", "libopus", "-b:a", "32k"), "libopus")
AAC_96K = Codec("m4a", ("-c:a", "aac", "-b:a", "96k"), "aac")


@dataclass(frozen=True)
class Distortion:
    """What is done to the clean excerpt: noise added first (colour, SNR in dB), then the filter
    chain, then the encoder."""
    name: str
    filter: str | None = None
    noise: tuple[str, float] | None = None
    codec: Codec = FLAC

    def filters(self) -> set[str]:
        """Names of the ffmpeg filters this distortion uses."""
        names = {"anoisesrc", "volume", "aformat", "amix"} if self.noise else set()
        if self.filter:
            names |= {step.split("=", 1)[0] for step in self.filter.split(",")}
        return names


def _speed(ratio: float) -> str:
    """Pitch and tempo together: play the samples as if recorded at another rate."""
    return f"asetrate={round(SAMPLE_RATE * ratio)},aresample={SAMPLE_RATE}"


DISTORTIONS = {d.name: d for d in (
    Distortion("clean"),
    Distortion("vol_m10", filter="volume=-10dB"),
    Distortion("mp3_64k", codec=MP3_64K),
    Distortion("opus_32k", codec=OPUS_32K),
    Distortion("aac_96k", codec=AAC_96K),
    Distortion("snr10", noise=("white", 10.0)),
    Distortion("snr0", noise=("white", 0.0)),
    Distortion("pink10", noise=("pink", 10.0)),
    Distortion("tempo_095", filter="atempo=0.95"),
    Distortion("tempo_098", filter="atempo=0.98"),
    Distortion("tempo_102", filter="atempo=1.02"),
    Distortion("tempo_105", filter="atempo=1.05"),
    Distortion("pitch_098", filter="rubberband=pitch=0.98"),
    Distortion("pitch_102", filter="rubberband=pitch=1.02"),
    Distortion("speed_098", filter=_speed(0.98)),
    Distortion("speed_102", filter=_speed(1.02)),
    Distortion("band", filter="highpass=f=300,lowpass=f=3400"),
    Distortion("mp3_64k+snr10", noise=("white", 10.0), codec=MP3_64K),
    Distortion("opus_32k+tempo_102", filter="atempo=1.02", codec=OPUS_32K),
)}


# --- small helpers ------------------------------------------------------------------------------
_print_lock = threading.Lock()


def log(msg: str) -> None:
    with _print_lock:
        print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def die(msg: str) -> None:
    log(f"ERROR: {msg}")
    sys.exit(2)


def stable_int(*parts: object) -> int:
    """A 63-bit integer from the parts, the same in every run (unlike the salted hash())."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(text)
    os.replace(tmp, path)


def fmt_seconds(value: float) -> str:
    """10.0 -> "10", 7.5 -> "7.5" (folder names and the TSV)."""
    return f"{value:g}"


def fmt_duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class FfmpegError(RuntimeError):
    def __init__(self, cmd: list[str], stderr: str):
        tail = " | ".join(stderr.strip().splitlines()[-3:]) or "no message"
        super().__init__(f"{' '.join(cmd)}: {tail}")


def run_ffmpeg(args: list[str]) -> str:
    """Runs ffmpeg with args; returns its stderr, raises FfmpegError on failure."""
    cmd = ["ffmpeg", "-hide_banner", "-nostdin", *args]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise FfmpegError(cmd, proc.stderr)
    return proc.stderr


_VOLUME_RE = re.compile(r"\b(mean|max)_volume: (\S+) dB")


def volumedetect(input_args: list[str]) -> tuple[float, float]:
    """(mean_volume, max_volume) in dBFS of the audio that input_args open, as volumedetect
    measures them; VOLUME_FLOOR_DB for silence or no audio at all."""
    stderr = run_ffmpeg(["-nostats", *input_args, "-af", "volumedetect", "-f", "null", "-"])
    found = dict(_VOLUME_RE.findall(stderr))

    def level(key: str) -> float:
        try:
            return max(float(found[key]), VOLUME_FLOOR_DB) + 0.0  # + 0.0: no "-0.0" in the JSON
        except (KeyError, ValueError):
            return VOLUME_FLOOR_DB
    return level("mean"), level("max")


class LoudnessCache:
    """volumedetect results of source files (whole or an excerpt), by sha256, start and length,
    kept in a JSON file across runs."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()
        self.dirty = False
        try:
            self.entries = json.loads(path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    def measure(self, track_path: str, sha256: str, start: float | None = None,
                length: float | None = None) -> tuple[float, float]:
        key = f"{sha256} {start} {length}"
        with self.lock:
            if key in self.entries:
                return tuple(self.entries[key])
        args = []
        if start is not None:
            args += ["-ss", f"{start:.3f}"]
        if length is not None:
            args += ["-t", f"{length:.3f}"]
        levels = volumedetect([*args, "-i", track_path])
        with self.lock:
            self.entries[key] = list(levels)
            self.dirty = True
        return levels

    def save(self) -> None:
        with self.lock:
            if self.dirty:
                write_atomically(self.path, json.dumps(self.entries, indent=0, sort_keys=True) + "\n")
                self.dirty = False


def check_ffmpeg(distortions: list[Distortion]) -> None:
    """Fails unless ffmpeg has every encoder and filter that the chosen distortions need."""
    if shutil.which("ffmpeg") is None:
        die("ffmpeg is required (apt-get install ffmpeg)")

    def names(kind: str) -> set[str]:
        out = subprocess.run(["ffmpeg", "-hide_banner", f"-{kind}"], capture_output=True, text=True).stdout
        # Rows look like " A....D libmp3lame   description" / " ..C atempo   A->A   description".
        return {parts[1] for parts in (line.split() for line in out.splitlines()) if len(parts) >= 2}

    need_encoders = {"pcm_s16le", "flac"} | {d.codec.encoder for d in distortions}
    need_filters = {"volumedetect"}.union(*(d.filters() for d in distortions))
    missing = sorted(need_encoders - names("encoders")) + sorted(need_filters - names("filters"))
    if missing:
        die(f"this ffmpeg lacks {', '.join(missing)}, which the distortions need "
            "(Debian's ffmpeg package has them all: libmp3lame, libopus, rubberband)")


# --- manifest -----------------------------------------------------------------------------------
@dataclass
class Track:
    id: str
    path: str
    duration_s: float
    package: str
    version: str
    sha256: str = ""
    mean_volume_db: float = 0.0
    max_volume_db: float = 0.0
    negative: bool = False
    offsets: list[float] = field(default_factory=list)

    def entry(self) -> dict:
        return {"id": self.id, "path": self.path, "duration_s": self.duration_s,
                "package": self.package, "version": self.version, "sha256": self.sha256,
                "mean_volume_db": self.mean_volume_db, "max_volume_db": self.max_volume_db}


def package_short(package: str) -> str:
    """wesnoth-1.16-music -> wesnoth, hedgewars-data -> hedgewars, lincity-ng-data -> lincity-ng."""
    parts = package.split("-")
    while len(parts) > 1 and (parts[-1] in ("data", "music") or re.fullmatch(r"[\d.]+", parts[-1])):
        parts.pop()
    return "-".join(parts)


def track_id(package: str, path: str) -> str:
    """<package short>/<file stem>, the stem with spaces and other odd characters as '_'."""
    stem = re.sub(r"[^A-Za-z0-9._+-]+", "_", Path(path).stem).strip("_")
    return f"{package_short(package)}/{stem}"


def fetch_corpus(packages: list[str]) -> list[dict]:
    """Rows of fetch.sh's manifest (downloading and unpacking what is not there yet)."""
    log(f"corpus: {FETCH_SH.name} {' '.join(packages)}")
    env = dict(os.environ, PACKAGES=" ".join(packages))
    proc = subprocess.run([str(FETCH_SH)], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        die(f"{FETCH_SH.name} failed (exit {proc.returncode}) for {' '.join(packages)}")
    lines = proc.stdout.splitlines()
    if not lines or not lines[0].startswith("duration_s\t"):
        die(f"{FETCH_SH.name} printed no manifest")
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:] if line]


def select_tracks(rows: list[dict], negative: bool, cap: int | None, cache: LoudnessCache,
                  pool: concurrent.futures.Executor, skipped: list[dict]) -> list[Track]:
    """The tracks of one set: long enough and not silent; with a cap, the first `cap` of those in
    a fixed-seed shuffle of the ids (measuring only as many files as that takes)."""
    candidates = []
    for row in rows:
        track = Track(id=track_id(row["package"], row["path"]), path=row["path"],
                      duration_s=float(row["duration_s"]), package=row["package"],
                      version=row["version"], negative=negative)
        if track.duration_s < MIN_TRACK_S:
            skipped.append({"id": track.id, "path": track.path,
                            "reason": f"shorter than {MIN_TRACK_S:g} s ({track.duration_s:.1f} s)"})
        else:
            candidates.append(track)
    candidates.sort(key=lambda t: t.id)
    if cap is not None:
        random.Random(stable_int("subset", "negatives" if negative else "references")).shuffle(candidates)

    def measure(track: Track) -> Track:
        track.sha256 = sha256_of(track.path)
        track.mean_volume_db, track.max_volume_db = cache.measure(track.path, track.sha256)
        return track

    kept: list[Track] = []
    todo = candidates
    while todo and (cap is None or len(kept) < cap):
        batch_size = len(todo) if cap is None else cap - len(kept)
        batch, todo = todo[:batch_size], todo[batch_size:]
        for track in pool.map(measure, batch):
            if track.max_volume_db < SILENT_MAX_DB:
                skipped.append({"id": track.id, "path": track.path,
                                "reason": f"silent (max_volume {track.max_volume_db:.1f} dB)"})
            else:
                kept.append(track)
    return sorted(kept, key=lambda t: t.id)


def build_manifest(args, cache: LoudnessCache, pool) -> tuple[dict, list[Track]]:
    ref_packages, neg_packages = args.reference_packages.split(), args.negative_packages.split()
    both = {p.split("=")[0] for p in ref_packages} & {p.split("=")[0] for p in neg_packages}
    if both:
        die(f"packages both reference and negative: {' '.join(sorted(both))}")
    ref_rows, neg_rows = fetch_corpus(ref_packages), fetch_corpus(neg_packages)

    ids: dict[str, str] = {}
    for row in ref_rows + neg_rows:
        tid = track_id(row["package"], row["path"])
        if ids.setdefault(tid, row["path"]) != row["path"]:
            die(f"two files have the id {tid}: {ids[tid]} and {row['path']}")

    skipped: list[dict] = []
    refs = select_tracks(ref_rows, False, args.max_refs, cache, pool, skipped)
    negs = select_tracks(neg_rows, True, args.max_negatives, cache, pool, skipped)
    cache.save()

    present = {t.id for t in refs + negs}
    equivalent = []
    for short, classes in KNOWN_EQUIVALENTS.items():
        for stems in classes:
            members = [f"{short}/{stem}" for stem in stems if f"{short}/{stem}" in present]
            if len(members) >= 2:
                equivalent.append(members)

    manifest = {
        "reference_packages": ref_packages,
        "negative_packages": neg_packages,
        "max_refs": args.max_refs,
        "max_negatives": args.max_negatives,
        "references": [t.entry() for t in refs],
        "negatives": [t.entry() for t in negs],
        "equivalent": equivalent,
        "skipped": sorted(skipped, key=lambda s: s["id"]),
    }
    write_atomically(args.out / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    return manifest, refs + negs


def print_summary(manifest: dict, out: Path) -> None:
    def hours(entries: list[dict]) -> float:
        return sum(e["duration_s"] for e in entries) / 3600

    refs, negs = manifest["references"], manifest["negatives"]
    print(f"manifest: {out / 'manifest.json'}")
    print(f"references: {len(refs)} tracks, {hours(refs):.2f} h "
          f"({sum(e['duration_s'] >= MIN_QUERY_TRACK_S for e in refs)} of {MIN_QUERY_TRACK_S:g} s or longer)")
    for package in manifest["reference_packages"]:
        mine = [e for e in refs if e["package"] == package.split("=")[0]]
        print(f"  {package}: {len(mine)} tracks, {hours(mine):.2f} h")
    print(f"negatives: {len(negs)} tracks, {hours(negs):.2f} h "
          f"({sum(e['duration_s'] >= MIN_QUERY_TRACK_S for e in negs)} of {MIN_QUERY_TRACK_S:g} s or longer)")
    for package in manifest["negative_packages"]:
        mine = [e for e in negs if e["package"] == package.split("=")[0]]
        print(f"  {package}: {len(mine)} tracks, {hours(mine):.2f} h")
    print(f"equivalence classes: {len(manifest['equivalent'])}")
    for members in manifest["equivalent"]:
        print(f"  {' = '.join(members)}")
    print(f"left out: {len(manifest['skipped'])}")
    for s in manifest["skipped"]:
        print(f"  {s['id']}: {s['reason']}")


# --- offsets ------------------------------------------------------------------------------------
def choose_offsets(track: Track, seed: int, count: int, cache: LoudnessCache) -> list[float]:
    """Up to `count` distinct offsets (0.1 s) whose CHECK_LENGTH_S excerpt is not mostly quiet."""
    rng = random.Random(stable_int("offsets", seed, track.id))
    offsets: list[float] = []
    for slot in range(count):
        for _ in range(OFFSET_TRIES):
            offset = round(rng.uniform(OFFSET_HEAD_S, track.duration_s - OFFSET_TAIL_S), 1)
            if offset in offsets:
                continue
            mean_db, _ = cache.measure(track.path, track.sha256, offset, CHECK_LENGTH_S)
            if mean_db >= QUIET_MEAN_DB:
                offsets.append(offset)
                break
        else:
            log(f"{track.id}: offset {slot + 1} given up: {OFFSET_TRIES} draws gave a "
                f"{CHECK_LENGTH_S:g}-s excerpt with mean_volume under {QUIET_MEAN_DB:g} dB")
    return offsets


# --- queries ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Query:
    track: Track
    offset_s: float
    length_s: float
    distortion: Distortion
    path: Path

    @property
    def qid(self) -> str:
        return query_id(self.track, self.offset_s)


def query_id(track: Track, offset_s: float) -> str:
    return f"{track.id.replace('/', '_')}@{offset_s:.1f}"


class Progress:
    def __init__(self, total: int):
        self.total, self.done, self.made, self.failed = total, 0, 0, 0
        self.lock = threading.Lock()
        self.start = time.monotonic()

    def count(self, made: int = 0, existing: int = 0, failed: int = 0) -> None:
        with self.lock:
            before = self.done // PROGRESS_EVERY
            self.done += made + existing + failed
            self.made += made
            self.failed += failed
            if self.done // PROGRESS_EVERY != before or self.done == self.total:
                log(self.line())

    def line(self) -> str:
        return (f"{self.done}/{self.total} query files ({self.made} made, "
                f"{self.done - self.made - self.failed} already there, {self.failed} failed), "
                f"{fmt_duration(time.monotonic() - self.start)}")


def make_excerpt(track: Track, offset_s: float, length_s: float, queries: list[Query],
                 seed: int, noise_db: dict[str, float], progress: Progress) -> list[str]:
    """Makes the missing query files of one excerpt; returns error messages."""
    missing = [q for q in queries if not (q.path.is_file() and q.path.stat().st_size > 0)]
    progress.count(existing=len(queries) - len(missing))
    if not missing:
        return []
    errors = []
    with tempfile.TemporaryDirectory(prefix="fpq-") as tmp:
        clean = os.path.join(tmp, "clean.wav")
        try:
            run_ffmpeg(["-v", "error", "-y", "-ss", f"{offset_s:.1f}", "-t", fmt_seconds(length_s),
                        "-i", track.path, "-ac", "2", "-ar", str(SAMPLE_RATE), "-c:a", "pcm_s16le", clean])
            signal_db = None
            if any(q.distortion.noise for q in missing):
                signal_db, _ = volumedetect(["-i", clean])
        except FfmpegError as e:
            progress.count(failed=len(missing))
            return [f"{query_id(track, offset_s)} ({fmt_seconds(length_s)} s): {e}"]
        for q in missing:
            part = q.path.with_name(f".{q.path.stem}.part{q.path.suffix}")
            cmd = ["-v", "error", "-y", "-i", clean]
            d = q.distortion
            if d.noise:
                colour, snr_db = d.noise
                gain_db = signal_db - snr_db - noise_db[colour]
                noise_seed = stable_int("noise", seed, q.qid, colour) & 0x7FFFFFFF
                graph = (f"[1:a]volume={gain_db:.2f}dB,aformat=channel_layouts=stereo[n];"
                         "[0:a][n]amix=inputs=2:duration=first:normalize=0")
                if d.filter:
                    graph += "," + d.filter
                cmd += ["-f", "lavfi", "-i", noise_source(colour, noise_seed), "-filter_complex", graph]
            elif d.filter:
                cmd += ["-af", d.filter]
            cmd += [*d.codec.args, str(part)]
            try:
                q.path.parent.mkdir(parents=True, exist_ok=True)
                run_ffmpeg(cmd)
                os.replace(part, q.path)
                progress.count(made=1)
            except (FfmpegError, OSError) as e:
                errors.append(f"{q.path.name} ({d.name}): {e}")
                progress.count(failed=1)
            finally:
                part.unlink(missing_ok=True)
    return errors


def noise_source(colour: str, seed: int, duration_s: float | None = None) -> str:
    spec = f"anoisesrc=color={colour}:amplitude={NOISE_AMPLITUDE}:sample_rate={SAMPLE_RATE}:seed={seed}"
    return spec + (f":duration={duration_s:g}" if duration_s else "")


def measure_noise(colours: set[str]) -> dict[str, float]:
    """mean_volume of each noise colour at NOISE_AMPLITUDE as it is mixed in: made stereo the
    same way, which spreads the mono source over both channels at -3 dB (white: about -13.8 dB,
    pink: about -23.3 dB)."""
    return {c: volumedetect(["-f", "lavfi", "-i", f"{noise_source(c, 1, 120)},aformat=channel_layouts=stereo"])[0]
            for c in sorted(colours)}


def make_queries(args, tracks: list[Track], cache: LoudnessCache, pool) -> int:
    distortions = [DISTORTIONS[name] for name in args.distortions]
    seed_dir = args.out / f"seed{args.seed}"
    query_tracks = [t for t in tracks if t.duration_s >= MIN_QUERY_TRACK_S]

    log(f"seed {args.seed}: choosing {args.offsets} offset(s) in each of {len(query_tracks)} tracks")
    offsets = pool.map(lambda t: choose_offsets(t, args.seed, args.offsets, cache), query_tracks)
    for track, chosen in zip(query_tracks, offsets):
        track.offsets = chosen
        if not chosen:
            log(f"{track.id}: left out of the queries (no offset found)")
    cache.save()

    noise_db = measure_noise({d.noise[0] for d in distortions if d.noise})
    for colour, level in noise_db.items():
        log(f"{colour} noise at amplitude {NOISE_AMPLITUDE}: mean_volume {level:.1f} dB")

    excerpts = []  # (track, offset, length, [Query])
    for track in query_tracks:
        for offset_s in track.offsets:
            for length_s in args.lengths:
                folder = seed_dir / f"{fmt_seconds(length_s)}s"
                excerpts.append((track, offset_s, length_s, [
                    Query(track, offset_s, length_s, d,
                          folder / d.name / f"{query_id(track, offset_s)}.{d.codec.ext}")
                    for d in distortions]))
    progress = Progress(sum(len(qs) for *_, qs in excerpts))
    log(f"seed {args.seed}: {len(excerpts)} excerpts x {len(distortions)} distortions = "
        f"{progress.total} query files in {seed_dir}, {args.jobs} jobs")

    futures = [pool.submit(make_excerpt, t, o, length, qs, args.seed, noise_db, progress)
               for t, o, length, qs in excerpts]
    errors = [msg for f in futures for msg in f.result()]
    for msg in errors:
        log(f"FAILED {msg}")

    rows = ["qid\tlength_s\tdistortion\tpath\tkind\ttruth\toffset_s"]
    for t, o, length_s, queries in sorted(excerpts, key=lambda e: (e[2], e[0].negative, e[0].id, e[1])):
        for q in queries:
            if q.path.is_file():
                kind, truth = ("negative", "-") if t.negative else ("positive", t.id)
                rows.append(f"{q.qid}\t{fmt_seconds(length_s)}\t{q.distortion.name}\t"
                            f"{q.path.resolve()}\t{kind}\t{truth}\t{o:.1f}")
    write_atomically(seed_dir / "queries.tsv", "\n".join(rows) + "\n")
    log(f"done: {progress.line()}; {len(rows) - 1} rows in {seed_dir / 'queries.tsv'}")
    return 1 if errors else 0


# --- command line -------------------------------------------------------------------------------
def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="make_queries.py", description=__doc__.split("\n\n")[0],
        epilog="Distortions: " + ", ".join(DISTORTIONS))
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--seed", type=int, help="seed of the offsets and the noise (required unless --list)")
    p.add_argument("--offsets", type=int, default=1, metavar="K", help="offsets per track (default 1)")
    p.add_argument("--lengths", default="10,30", help="excerpt lengths in seconds, comma-separated "
                   f"(default 10,30; at most {CHECK_LENGTH_S:g})")
    p.add_argument("--distortions", default=",".join(DISTORTIONS),
                   help="comma-separated subset of the distortions (default: all)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, metavar="J",
                   help="parallel ffmpeg jobs (default: the CPU count)")
    p.add_argument("--max-refs", type=int, metavar="M", help="at most M reference tracks (a fixed sample)")
    p.add_argument("--max-negatives", type=int, metavar="M", help="at most M negative tracks (a fixed sample)")
    p.add_argument("--reference-packages", default=DEFAULT_REFERENCE_PACKAGES, metavar="'P ...'",
                   help=f"Debian packages of the indexed works (default: {DEFAULT_REFERENCE_PACKAGES})")
    p.add_argument("--negative-packages", default=DEFAULT_NEGATIVE_PACKAGES, metavar="'P ...'",
                   help=f"Debian packages never indexed (default: {DEFAULT_NEGATIVE_PACKAGES})")
    p.add_argument("--list", action="store_true", help="print the manifest summary and exit")
    args = p.parse_args(argv)

    if args.seed is None and not args.list:
        p.error("--seed is required (unless --list)")
    if args.offsets < 1 or args.jobs < 1:
        p.error("--offsets and --jobs must be 1 or more")
    for cap in (args.max_refs, args.max_negatives):
        if cap is not None and cap < 0:
            p.error("--max-refs and --max-negatives must be 0 or more")
    try:
        args.lengths = sorted({float(x) for x in args.lengths.split(",") if x.strip()})
    except ValueError:
        p.error(f"--lengths: not a comma-separated list of numbers: {args.lengths}")
    if not args.lengths or not all(0 < x <= CHECK_LENGTH_S for x in args.lengths):
        p.error(f"--lengths must be in (0, {CHECK_LENGTH_S:g}] s")
    args.distortions = [d.strip() for d in args.distortions.split(",") if d.strip()]
    unknown = [d for d in args.distortions if d not in DISTORTIONS]
    if unknown or not args.distortions:
        p.error(f"--distortions: unknown {', '.join(unknown) or '(empty)'}; known: {', '.join(DISTORTIONS)}")
    args.distortions = list(dict.fromkeys(args.distortions))
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    check_ffmpeg([DISTORTIONS[name] for name in args.distortions])
    args.out.mkdir(parents=True, exist_ok=True)
    cache = LoudnessCache(args.out / ".loudness-cache.json")
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        try:
            manifest, tracks = build_manifest(args, cache, pool)
            if args.list:
                print_summary(manifest, args.out)
                return 0
            log(f"manifest: {len(manifest['references'])} references, {len(manifest['negatives'])} "
                f"negatives, {len(manifest['equivalent'])} equivalence classes, "
                f"{len(manifest['skipped'])} files left out")
            status = make_queries(args, tracks, cache, pool)
        except FfmpegError as e:
            die(f"ffmpeg failed: {e}")
        except KeyboardInterrupt:
            pool.shutdown(wait=True, cancel_futures=True)
            log("interrupted")
            return 130
        finally:
            cache.save()
    log(f"wall time {fmt_duration(time.monotonic() - started)}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
