#!/usr/bin/env bash
# scripts/install-deps.sh leaves the host's services alone: no script of the set-up or the
# benchmarks stops, disables or restarts a service, and while apt-get runs, Debian's
# policy-rc.d refuses every service start (then it is gone again). apt-get, dpkg-query and id are
# stand-ins on PATH here: nothing is installed. Exit 0 when every check holds.
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# 1. Nothing in the set-up or benchmark scripts touches a system service.
if grep -nE 'systemctl|pkill|killall|invoke-rc\.d|(^|[^a-z_-])service [a-z0-9_.-]+ (stop|restart|reload)' \
    "$REPO"/scripts/*.sh "$REPO"/bench/*/run.sh; then
  fail "a script stops, disables or restarts a service (lines above)"
fi

# 2. Stand-ins: every package but ca-certificates is "installed"; apt-get records what it sees.
mkdir -p "$work/bin"
cat >"$work/bin/dpkg-query" <<'STUB'
#!/bin/sh
for last; do :; done
[ "$last" = ca-certificates ] && exit 1
echo "install ok installed"
STUB
cat >"$work/bin/apt-get" <<STUB
#!/bin/sh
echo "apt-get \$*" >>"$work/apt.log"
if [ -x "$work/policy-rc.d" ]; then "$work/policy-rc.d" nginx start; echo "policy exit \$?" >>"$work/apt.log"; fi
STUB
cat >"$work/bin/id" <<STUB
#!/bin/sh
echo "\${FAKE_UID:-0}"
STUB
chmod +x "$work/bin/"*

# As a normal user with a package missing: a clear message, exit 1, no apt-get.
out=$(FAKE_UID=1000 PATH="$work/bin:$PATH" PLYR_POLICY_RC_D="$work/policy-rc.d" "$REPO/scripts/install-deps.sh" run 2>&1)
rc=$?
[ $rc -eq 1 ] || fail "as a normal user with a package missing: exit $rc, expected 1"
grep -q "missing packages: ca-certificates" <<<"$out" || fail "the missing package is not named: $out"
[ ! -e "$work/apt.log" ] || fail "apt-get ran for a normal user"

# As root: apt-get runs with service starts refused (policy-rc.d exits 101), which is removed after.
FAKE_UID=0 PATH="$work/bin:$PATH" PLYR_POLICY_RC_D="$work/policy-rc.d" "$REPO/scripts/install-deps.sh" run >/dev/null 2>&1
rc=$?
[ $rc -eq 0 ] || fail "as root: exit $rc"
grep -q "install .*ca-certificates" "$work/apt.log" 2>/dev/null || fail "apt-get did not install the missing package"
grep -q "policy exit 101" "$work/apt.log" 2>/dev/null || fail "service starts were not refused during apt-get"
[ ! -e "$work/policy-rc.d" ] || fail "policy-rc.d was left behind"

# A policy-rc.d of the host's own is neither replaced nor removed.
printf '#!/bin/sh\nexit 0\n' >"$work/policy-rc.d"
chmod +x "$work/policy-rc.d"
rm -f "$work/apt.log"
FAKE_UID=0 PATH="$work/bin:$PATH" PLYR_POLICY_RC_D="$work/policy-rc.d" "$REPO/scripts/install-deps.sh" run >/dev/null 2>&1
grep -q "policy exit 0" "$work/apt.log" 2>/dev/null || fail "the host's own policy-rc.d was replaced"
[ -e "$work/policy-rc.d" ] || fail "the host's own policy-rc.d was removed"

# The run set holds no test or benchmark tool.
if sed -n '/^run_packages=(/,/^)/p' "$REPO/scripts/install-deps.sh" | grep -qwE 'nginx-light|wrk|chromium|nodejs|libgtest-dev'; then
  fail "the run command installs a test or benchmark tool"
fi
"$REPO/scripts/install-deps.sh" nonsense >/dev/null 2>&1
[ $? -eq 2 ] || fail "an unknown mode is not a usage error"

[ $failures -eq 0 ] && echo "install-deps: every check holds"
exit $((failures > 0))
