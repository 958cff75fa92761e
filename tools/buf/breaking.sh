#!/usr/bin/env bash
# `buf breaking` of protos/ against the contracts of a git revision (default HEAD~1, the previous commit
# of main), as CI runs it:  tools/buf/breaking.sh [<revision>]
# The revision's protos/ is extracted with `git archive`, and the third-party copies of this tree
# (protos/buf, protos/google) fill in what it lacks, so a revision from before they were shipped still
# builds. A shallow clone (CI's usual checkout) is deepened by one commit for HEAD~1.
set -euo pipefail
cd "$(dirname "$0")/../.."
revision="${1:-HEAD~1}"
buf="${BUF:-tools/buf/node_modules/.bin/buf}"
if ! git rev-parse --verify --quiet "$revision^{commit}" >/dev/null \
  && [ "$(git rev-parse --is-shallow-repository)" = true ]; then
  git fetch --quiet --deepen=1
fi
against="$(mktemp -d)"
trap 'rm -rf "$against"' EXIT
git archive "$revision" protos | tar -x -C "$against"
find protos/buf protos/google -name '*.proto' | while read -r vendored; do
  if [ ! -e "$against/$vendored" ]; then
    mkdir -p "$(dirname "$against/$vendored")" && cp "$vendored" "$against/$vendored"
  fi
done
"$buf" breaking --against "$against/protos"
