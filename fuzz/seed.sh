#!/usr/bin/env bash
# Fill the seed corpus of the `compile` fuzz target from the test fixtures (kept out of
# git: the fixtures are the source of truth). Run from anywhere; idempotent.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
corpus="$root/fuzz/corpus/compile"
mkdir -p "$corpus"
for file in "$root"/tests/fixtures/ok/*.yml "$root"/tests/fixtures/err/*.yml "$root"/tests/fixtures/regressions/*.yml \
  "$root"/examples/*.yml; do
  [[ -f $file ]] || continue
  cp -- "$file" "$corpus/$(basename "$(dirname "$file")")__$(basename "$file")"
done
printf 'seeded %s with %s files\n' "$corpus" "$(find "$corpus" -maxdepth 1 -type f | wc -l)"
