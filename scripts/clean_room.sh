#!/usr/bin/env bash
# Clean room: clone the committed project into a temporary folder, then run the README's two
# Quickstart commands there, exactly as written, in a fresh virtual environment.
# A missing dependency, an untracked file or a wrong README shows up here before a user sees it.
set -euo pipefail
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone --quiet "$repo" "$work/moebench"
cd "$work/moebench"
# The two commands are the first two ```bash blocks of the Quickstart section.
mapfile -t commands < <(awk '/^## Quickstart/{q=1} q&&/^```bash/{getline; print; n++} n==2{exit}' README.md)
[ "${#commands[@]}" -eq 2 ] || { echo "clean room: expected 2 Quickstart commands" >&2; exit 1; }
for cmd in "${commands[@]}"; do
  echo "clean room: $cmd"
  bash -c "$cmd"
done
echo "clean room: both Quickstart commands passed in a fresh clone"
