#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with the Rust toolchain:
# installs what the tests need, then runs every test. `.ci/run` calls this.
#
# What the tests need beyond the Rust toolchain:
# - Chromium (Debian's `chromium`, as /usr/bin/chromium; or HVO_CHROMIUM
#   naming another binary): crates/hvo/tests/html.rs renders the HTML report
#   headless. Installed here with apt-get when missing.
# - herd7's conformance data (../shared/conformance beside the repository,
#   or HVO_CONFORMANCE naming a directory of the same layout): the litmus
#   crate's ratchet and fuzz tests read it. Not installed here; the README
#   says where it comes from.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${HVO_CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
  echo "== installing chromium (for the HTML report's test)"
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: no apt-get here; install Chromium and set HVO_CHROMIUM to its binary" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >/dev/null
  $sudo apt-get install -y -qq --no-install-recommends \
    chromium fonts-dejavu-core fonts-liberation >/dev/null
fi

cargo test --workspace --release "$@"
