#!/usr/bin/env bash
# deploy/plyr-core.service is a unit systemd accepts without a warning, runs as its own user and
# keeps the sandboxing docs/deployment.md promises. Usage: systemd_unit_test.sh PLYR_CORE_BIN.
# Exit 77 (skipped) where systemd-analyze is missing.
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
unit=$REPO/deploy/plyr-core.service
bin=${1:?usage: $0 PLYR_CORE_BIN}
command -v systemd-analyze >/dev/null 2>&1 || { echo "systemd-analyze not found: skipped"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# verify checks that ExecStart's program exists: point it at the binary under test.
sed "s|/usr/local/bin/plyr-core|$bin|" "$unit" >"$work/plyr-core.service"
out=$(systemd-analyze verify "$work/plyr-core.service" 2>&1)
rc=$?
[ $rc -eq 0 ] || fail "systemd-analyze verify: exit $rc"
[ -z "$out" ] || fail "systemd-analyze verify says: $out"

for setting in 'User=plyr' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ReadWritePaths=/var/lib/plyr' \
    'ProtectHome=yes' 'PrivateTmp=yes' 'CapabilityBoundingSet=' 'RestartPreventExitStatus=2'; do
  grep -qx "$setting" "$unit" || fail "the unit lacks $setting"
done
# The command it runs is one plyr-core takes.
exec_start=$(sed -n 's/^ExecStart=[^ ]* //p' "$unit")
"$bin" $exec_start --help >/dev/null 2>&1 || fail "plyr-core does not take '$exec_start'"

[ $failures -eq 0 ] && echo "deploy/plyr-core.service: verified"
exit $((failures > 0))
