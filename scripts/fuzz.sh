#!/usr/bin/env bash
# Runs every Go fuzz target of the module, one after another, for TIME
# each (a Go duration, default 10s), and stops at the first that fails:
#
#   scripts/fuzz.sh [TIME]
#
# Targets are found, not listed: every func FuzzXxx(*testing.F) in the test
# files that go list reports for the module's packages (so build tags and
# nested modules are respected). A failing input is written by go test to
# the package's testdata/fuzz/FuzzXxx/; commit it with the fix, and it runs
# as a plain test from then on. make fuzz runs this with FUZZTIME (30s);
# make test with 3s each, so that no target rots. docs/fuzzing.md lists
# the targets.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${1:-10s}
GO=${GO:-go}

# list_targets prints one line per target: "import/path FuzzName".
list_targets() {
	local pkg dir files f
	"$GO" list -f '{{.ImportPath}}{{"\t"}}{{.Dir}}{{"\t"}}{{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}' ./... |
		while IFS=$'\t' read -r pkg dir files; do
			for f in $files; do
				sed -nE 's/^func (Fuzz[A-Z0-9_][A-Za-z0-9_]*)\([A-Za-z_][A-Za-z0-9_]* \*testing\.F\).*/\1/p' "$dir/$f"
			done | sort -u | sed "s|^|$pkg |"
		done
}

list=$(list_targets)
targets=()
[ -z "$list" ] || mapfile -t targets <<<"$list"

if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi
echo "fuzz: ${#targets[@]} targets, $fuzztime each"

i=0
for t in "${targets[@]}"; do
	pkg=${t% *}
	name=${t#* }
	i=$((i + 1))
	echo "fuzz: [$i/${#targets[@]}] $name ($pkg)"
	if ! "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"; then
		echo "fuzz: FAIL $name in $pkg" >&2
		exit 1
	fi
done
echo "fuzz: all ${#targets[@]} targets passed"
