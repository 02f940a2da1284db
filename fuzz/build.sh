#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (AddressSanitizer and UndefinedBehaviorSanitizer
# on), each from the few sources it exercises: no CMake, a few minutes on 2 cores.
#   fuzz/build.sh            # -> build/fuzz/<target>
# Needs clang (Debian's clang-14 ships libFuzzer) and the libraries of the normal build.
set -euo pipefail
cd "$(dirname "$0")/.."
CXX=${CXX_FUZZ:-clang++}
command -v "$CXX" >/dev/null || { echo "fuzz/build.sh: $CXX not found (apt-get install clang)" >&2; exit 2; }
out=build/fuzz
mkdir -p "$out"
flags=(-std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -I. -DBOOST_ASIO_NO_DEPRECATED)

# One line a target: its name | the sources beyond fuzz/<target>.cpp | the libraries it links.
table='
range_header_fuzz       | streamer/byte_range.cpp | 
stream_ticket_fuzz      | streamer/stream_ticket.cpp common/comma_list.cpp | -lsodium -lboost_json
ws_frame_fuzz           | labeler/ws_frame.cpp | 
multipart_fuzz          | transcoder/multipart_reader.cpp common/status.cpp | -lfmt
label_fields_fuzz       | labeler/label.cpp common/status.cpp | -lboost_json -lcrypto -lfmt
fingerprint_string_fuzz | common/media/chromaprint.cpp common/media/test2_calculator.cpp common/media/cpu.cpp common/comma_list.cpp common/status.cpp | -lchromaprint -lswresample -lavcodec -lavutil -lfmt
proxy_and_log_fuzz      | common/trusted_proxies.cpp common/log.cpp common/json_text.cpp common/comma_list.cpp common/status.cpp | -lboost_json -lspdlog -lfmt
job_options_fuzz        | transcoder/rendition.cpp common/media/chromaprint.cpp common/media/test2_calculator.cpp common/media/cpu.cpp common/comma_list.cpp common/status.cpp | -lchromaprint -lswresample -lavcodec -lavutil -lfmt
label_input_fuzz        | labeler/label.cpp labeler/label_cbor.cpp common/status.cpp | -lcrypto -lcbor -lfmt
audio_decode_fuzz       | fingerprint/audio_fingerprint.cpp common/media/chromaprint.cpp common/media/test2_calculator.cpp common/media/cpu.cpp common/media/ffmpeg_util.cpp common/comma_list.cpp common/status.cpp | -lavformat -lavcodec -lswresample -lavutil -lchromaprint -lspdlog -lfmt
request_target_fuzz     | common/router.cpp common/url_impl.cpp | 
xrpc_query_fuzz         | labeler/xrpc_params.cpp labeler/label.cpp common/comma_list.cpp common/status.cpp common/url_impl.cpp | -lboost_json -lcrypto -lfmt
'
declare -A sources libs
while IFS='|' read -r name srcs links; do
  name=$(echo "$name" | xargs)
  [ -n "$name" ] || continue
  sources[$name]=$srcs
  libs[$name]=$links
done <<<"$table"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${!sources[@]}")
pids=()
for t in "${targets[@]}"; do
  [ -n "${sources[$t]+x}" ] || { echo "fuzz/build.sh: no target $t" >&2; exit 2; }
  # shellcheck disable=SC2086
  "$CXX" "${flags[@]}" "fuzz/$t.cpp" ${sources[$t]} -o "$out/$t" ${libs[$t]} -DSPDLOG_FMT_EXTERNAL \
    -DSPDLOG_COMPILED_LIB &
  pids+=($!)
  # two compilers at a time
  if [ ${#pids[@]} -ge 2 ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p"; done
echo "fuzz/build.sh: built ${targets[*]} in $out"
