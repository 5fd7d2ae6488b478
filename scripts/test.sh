#!/usr/bin/env bash
# The README's test command: system setup (idempotent), then the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo test --workspace --release --locked "$@"
