#!/bin/bash
# A fresh Debian 12 machine runs `make test` with only what scripts/install-deps.sh installs by default:
# every Python module any test imports is in Python's standard library (or tests/cli/lib, or a .py the test
# writes itself), python3 is in
# the default package set, and `make test` / `make demo` run install-deps first. The check runs under
# `python3 -I -S` (no site-packages), as a fresh machine's python3 would have none.
set -u
W=$(mktemp -d -t rlhf-fresh.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# default set = the PACKAGES=( ... ) array of install-deps.sh, options (--bench ...) not taken
sed -n '/^PACKAGES=(/,/^)/p' scripts/install-deps.sh | sed 's/#.*//' | tr ' ()' '\n\n\n' | grep -v '^PACKAGES=$' |
  grep -v '^$' >"$W/default"
grep -qx python3 "$W/default" || fail "python3 is not in install-deps.sh's default set: $(tr '\n' ' ' <"$W/default")"
grep -rlE 'python3' tests/cli/*.sh tests/cli/*.bash >/dev/null || fail "the scan found no python use at all"

/usr/bin/python3 -I -S - tests/cli/*.sh tests/cli/*.bash tests/cli/lib/*.py <<'PY' || fails=$((fails + 1))
import os, re, sys
local = {f[:-3] for f in os.listdir("tests/cli/lib") if f.endswith(".py")}
bad, seen = [], set()
for path in sys.argv[1:]:
    text = open(path, encoding="utf-8").read()
    # modules a test writes itself (cat >"$W/ticks.py" <<'PY') are its own
    own = set(re.findall(r"([A-Za-z_]\w*)\.py\b", text))
    from_re = r"\bfrom\s+([A-Za-z_][\w.]*)\s+import\s+[\w., ]+"
    names = [m.group(1).split(".")[0] for m in re.finditer(from_re, text)]
    for m in re.finditer(r"\bimport\s+([A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*)", re.sub(from_re, "", text)):
        names += [n.strip().split(".")[0] for n in m.group(1).split(",")]
    for n in names:
        seen.add(n)
        if n not in sys.stdlib_module_names and n not in local and n not in own:
            bad.append("%s imports %s" % (path, n))
if bad:
    print("FAIL: not in Python's standard library (a fresh machine lacks it):\n  " + "\n  ".join(sorted(set(bad))))
    sys.exit(1)
print("python modules the tests import, all standard library or tests/cli/lib: " + " ".join(sorted(seen)))
PY

# the test and demo targets run install-deps first
for target in test demo; do
  grep -qE "^$target:.*\bdeps\b" Makefile ||
    fail "make $target does not depend on deps (scripts/install-deps.sh)"
done
grep -qE '^deps:' Makefile && sed -n '/^deps:/,/^$/p' Makefile | grep -q 'scripts/install-deps.sh' ||
  fail "make deps does not run scripts/install-deps.sh"

[ $fails = 0 ] && echo "fresh_machine: all passed"
exit $((fails > 0))
