#!/usr/bin/env bash
# Real-music corpus for the benchmarks and evaluations: game soundtracks from Debian bookworm
# packages, fetched with `apt-get download` and unpacked with `dpkg-deb -x` into a cache folder.
# Nothing is installed on the host (no dpkg database change, no root needed once the apt lists
# are there).
#
#   bench/corpus/fetch.sh [DEST]                         # every package of PACKAGES below
#   PACKAGES=wesnoth-1.16-music bench/corpus/fetch.sh    # just one (what bench/transcode needs)
#
# DEST defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/plyr-core/corpus. Idempotent: a package whose
# version is already unpacked there is neither downloaded nor unpacked again, and its durations
# are read from the manifest made the first time. Several runs at once take turns (flock).
#
# Output:
#   stdout            the manifest of the requested packages, tab-separated, one audio file a line,
#                     with a header: duration_s  package  version  codec  sample_rate  channels
#                     size  path   (path absolute; duration from ffprobe's format duration)
#   DEST/manifest.tsv the same for every package unpacked in DEST so far
#   stderr            progress, and a count of tracks by length per package
#
# Knobs (environment):
#   PACKAGES    space-separated Debian packages, "name" or "name=version" (default: the list below)
#   PATH_REGEX  extended regex (case-insensitive) a file's path inside the package must match to
#               count as music (default '/music/': all the packages below keep their soundtrack in
#               a folder named music, sound effects elsewhere)
#   KEEP_DEBS=1 keep the downloaded .deb files in DEST/debs (deleted after unpacking by default)
#
# What the packages hold (bookworm, measured with this script: tracks under 2 / 2-3 / 3-4 / over
# 4 min by ffprobe's duration; all Ogg Vorbis, 44.1 kHz stereo but for one 48 kHz file in etr):
#   wesnoth-1.16-music   1:1.16.9-1  153 MB  41 tracks: 14 / 2 / 14 / 11. Orchestral, composed as
#                                            pieces (northerners.ogg 207.2 s, elvish-theme.ogg 205.2 s);
#                                            the short ones are stingers (victory, defeat) and
#                                            silence.ogg (10 s of silence)
#   hedgewars-data       1.0.2-6     145 MB  26 tracks: 4 / 4 / 6 / 12
#   supertux-data        0.6.3-2     162 MB  51 tracks: 30 / 12 / 6 / 3, mostly level loops
#   freedroidrpg-data    1.0-1       228 MB  16 tracks: 4 / 4 / 6 / 2
#   extremetuxracer-data 0.8.2-1      41 MB  10 tracks, all under 2 min
# The five: 144 files, 82 of them 2 min or longer, 847 MB unpacked (sound effects and graphics
# included; only the music is in the manifest).
# For a fingerprint evaluation mind what game soundtracks contain: loops (tracks that repeat a
# section), silence, near-duplicates (wesnoth's frantic.ogg / frantic-old.ogg, supertux's
# forest / forest2 / forest3, ghostforest / ghostforest2), and remixes of one theme.
set -euo pipefail

DEFAULT_PACKAGES="wesnoth-1.16-music hedgewars-data supertux-data freedroidrpg-data extremetuxracer-data"
PACKAGES=${PACKAGES:-$DEFAULT_PACKAGES}
PATH_REGEX=${PATH_REGEX:-/music/}
KEEP_DEBS=${KEEP_DEBS:-0}
DEST=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/plyr-core/corpus}
AUDIO_EXT_REGEX='\.(ogg|oga|opus|mp3|flac|wav|m4a)$'

die() { echo "fetch.sh: ERROR: $*" >&2; exit 1; }
log() { echo "fetch.sh: $*" >&2; }

(($# <= 1)) || die "usage: fetch.sh [DEST]   (packages via PACKAGES=\"...\")"
for c in apt-get apt-cache dpkg-deb ffprobe flock; do
  command -v "$c" >/dev/null || die "$c is required (ffprobe: apt-get install ffmpeg)"
done
[[ -n ${PACKAGES// /} ]] || die "PACKAGES is empty"

mkdir -p "$DEST/debs" "$DEST/pkgs"
DEST=$(cd "$DEST" && pwd)
exec 9>"$DEST/.lock"
flock 9

APT_OPTS=()
# As root, apt drops to the _apt user to download, which cannot write into root's home: let it
# download as root instead of printing a warning and doing so anyway.
[[ $(id -u) == 0 ]] && APT_OPTS=(-o APT::Sandbox::User=root)

UPDATED=0
candidate() { # package -> candidate version (empty if apt does not know it)
  apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" {print $2; exit}'
}

# Writes the manifest rows of one unpacked package (no header).
make_manifest() { # pkg version root out
  local pkg=$1 ver=$2 root=$3 out=$4 f rel probe
  : >"$out.tmp"
  while IFS= read -r -d '' f; do
    rel=${f#"$root"}
    [[ ${rel,,} =~ $PATH_REGEX ]] || continue
    [[ ${rel,,} =~ $AUDIO_EXT_REGEX ]] || continue
    # key=value lines (side data may add others): keep the first of each key we asked for.
    probe=$(ffprobe -v error -select_streams a:0 -show_entries stream=codec_name,sample_rate,channels:format=duration \
      -of default=nw=1 "$f" 2>/dev/null |
      awk -F= '!($1 in v) {v[$1] = $2} END {print v["codec_name"] "," v["sample_rate"] "," v["channels"] "," v["duration"]}') || probe=""
    IFS=, read -r codec rate ch dur <<<"$probe"
    if [[ -z ${dur:-} || $dur == N/A ]]; then
      log "  $rel: ffprobe could not read it; left out"
      continue
    fi
    printf '%.3f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$dur" "$pkg" "$ver" "$codec" "$rate" "$ch" "$(stat -c %s "$f")" "$f" >>"$out.tmp"
  done < <(find "$root" -type f -print0 | sort -z)
  mv "$out.tmp" "$out"
}

HEADER=$'duration_s\tpackage\tversion\tcodec\tsample_rate\tchannels\tsize\tpath'
REQUESTED=()
for spec in $PACKAGES; do
  pkg=${spec%%=*}
  want=""
  [[ $spec == *=* ]] && want=${spec#*=}
  [[ $pkg =~ ^[a-z0-9][a-z0-9+.-]+$ ]] || die "'$pkg' is not a Debian package name"
  ver=$want
  if [[ -z $ver ]]; then
    ver=$(candidate "$pkg")
    if [[ -z $ver && $UPDATED == 0 && $(id -u) == 0 ]]; then
      log "apt does not know $pkg; running apt-get update once"
      apt-get update -qq >&2 || die "apt-get update failed"
      UPDATED=1
      ver=$(candidate "$pkg")
    fi
    [[ -n $ver ]] || die "apt knows no candidate version of $pkg (is bookworm main in the sources, and apt-get update done?)"
  fi
  # Folder name: the version with ':' (epoch) made file-name safe.
  dir=$DEST/pkgs/${pkg}_${ver//:/%3a}
  REQUESTED+=("$dir")
  if [[ -f $dir/.unpacked && -f $dir/manifest.tsv ]]; then
    log "$pkg $ver: already in $dir"
    continue
  fi
  if [[ ! -f $dir/.unpacked ]]; then
    rm -rf "$dir" "$dir.partial"
    deb=$(find "$DEST/debs" -maxdepth 1 -name "${pkg}_${ver//:/%3a}_*.deb" -print -quit)
    if [[ -z $deb ]]; then
      log "$pkg $ver: downloading"
      (cd "$DEST/debs" && apt-get download -q "${APT_OPTS[@]}" "$pkg=$ver" >&2) || die "apt-get download $pkg=$ver failed"
      deb=$(find "$DEST/debs" -maxdepth 1 -name "${pkg}_${ver//:/%3a}_*.deb" -print -quit)
      [[ -n $deb ]] || die "apt-get download $pkg=$ver left no .deb in $DEST/debs"
    fi
    log "$pkg $ver: unpacking $(basename "$deb") ($(($(stat -c %s "$deb") / 1048576)) MiB)"
    mkdir -p "$dir.partial"
    dpkg-deb -x "$deb" "$dir.partial/root" || die "dpkg-deb -x $deb failed"
    mv "$dir.partial" "$dir"
    echo "$pkg $ver" >"$dir/.unpacked"
    [[ $KEEP_DEBS == 1 ]] || rm -f "$deb"
  fi
  log "$pkg $ver: probing durations"
  make_manifest "$pkg" "$ver" "$dir/root" "$dir/manifest.tsv"
  n=$(wc -l <"$dir/manifest.tsv")
  ((n > 0)) || log "WARNING: $pkg $ver has no audio file whose path matches '$PATH_REGEX'"
done

# Every package in DEST (a later run with fewer PACKAGES keeps the others in the full manifest).
{
  echo "$HEADER"
  for m in "$DEST"/pkgs/*/manifest.tsv; do [[ -f $m ]] && cat "$m"; done
} >"$DEST/manifest.tsv.tmp"
mv "$DEST/manifest.tsv.tmp" "$DEST/manifest.tsv"

echo "$HEADER"
for dir in "${REQUESTED[@]}"; do cat "$dir/manifest.tsv"; done
for dir in "${REQUESTED[@]}"; do
  awk -F'\t' -v name="$(basename "$dir")" '
    { n++; if ($1 < 120) s++; else if ($1 < 180) m++; else if ($1 <= 240) t++; else l++ }
    END { printf "fetch.sh: %s: %d tracks: %d under 2 min, %d of 2-3 min, %d of 3-4 min, %d longer\n", name, n, s, m, t, l }' \
    "$dir/manifest.tsv" >&2
done
log "manifest of everything in $DEST: $DEST/manifest.tsv"
