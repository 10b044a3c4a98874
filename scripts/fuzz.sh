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

out=$(mktemp)
trap 'rm -f "$out"' EXIT

i=0
for t in "${targets[@]}"; do
	pkg=${t% *}
	name=${t#* }
	i=$((i + 1))
	echo "fuzz: [$i/${#targets[@]}] $name ($pkg)"
	for attempt in 1 2; do
		if "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$out"; then
			break
		fi
		# Go before 1.27 can fail a target whose -fuzztime ends while a
		# worker is busy, with a bare "context deadline exceeded" and no
		# failing input (golang/go#75804). That, once, is run again; a
		# failing input, or the same twice, is a failure.
		if [ "$attempt" = 1 ] && grep -q 'context deadline exceeded' "$out" &&
			! grep -qE 'Failing input written|panic:|_test\.go:[0-9]+:' "$out"; then
			echo "fuzz: $name: the fuzzing engine's deadline race (golang/go#75804), no failing input; once more" >&2
			continue
		fi
		echo "fuzz: FAIL $name in $pkg" >&2
		exit 1
	done
done
echo "fuzz: all ${#targets[@]} targets passed"
