#!/usr/bin/env bash
# Installs the system packages colloc builds against, idempotently (Debian/Ubuntu).
#   - coinor-libipopt-dev: Ipopt 3.11 (C interface, MUMPS, its pkg-config file)
#   - liblapack-dev, libblas-dev: LAPACK/BLAS that Ipopt and MUMPS call
#   - libopenblas-dev: optimized BLAS, registered as the libblas.so.3/liblapack.so.3
#     alternative; it speeds up MUMPS' dense kernels (see README, "BLAS")
#   - pkg-config: the build script finds Ipopt through it
#   - gfortran: runtime of MUMPS (pulled in by Ipopt anyway; listed to be explicit)
# Runs apt-get only when something is missing. Needs root (or sudo) for that step.
set -euo pipefail

packages=(coinor-libipopt-dev liblapack-dev libblas-dev libopenblas-dev pkg-config gfortran)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! pkg-config --atleast-version=3.11 ipopt; then
  echo "setup: Ipopt >= 3.11 is not visible to pkg-config (is coinor-libipopt-dev installed?)" >&2
  exit 1
fi
command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }
echo "setup: ok (Ipopt $(pkg-config --modversion ipopt), BLAS $(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || echo unknown))"
