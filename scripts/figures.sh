#!/usr/bin/env bash
# Measures the target figures of the issues (README, "Where colloc stands") on this machine and
# prints them as one table: figure, command, measured, target, met or not. Each figure is
# computed from the run's own outputs (summary.json, the examples' tables), never copied.
#
#   ./scripts/figures.sh            # everything, ~6 min on the 2-core AVX-512 machine
#   ./scripts/figures.sh --quick    # without vanderpol-long, the N = 20,001 bench, ADMM and
#                                   # the hyper-parameter sweep
#
# Needs what ./scripts/setup.sh installs; peak memory needs GNU time (/usr/bin/time).
# Speed figures: run on a quiet machine, and compare against the README's ranges.
# A run that fails leaves its figures as "?" and its row ✗; the table is still printed.
set -uo pipefail
cd "$(dirname "$0")/.."

QUICK=0
for a in "$@"; do
    case "$a" in
        --quick) QUICK=1 ;;
        *) echo "figures.sh: unknown argument '$a' (use --quick or nothing)" >&2; exit 2 ;;
    esac
done

cargo build --release --quiet --bin colloc --examples || exit 1
B=target/release
OUT=$(mktemp -d "${TMPDIR:-/tmp}/colloc-figures-XXXXXX") || exit 1
trap 'rm -rf "$OUT"' EXIT
ROWS="$OUT/rows.md"
: > "$ROWS"

# A top-level number or string of a summary.json (pretty-printed, two-space indent).
key() { sed -n "s/^  \"$2\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" "$1/summary.json" 2>/dev/null; }
# True when every argument is a number.
numeric() { for x in "$@"; do [[ "$x" =~ ^[-+]?[0-9.]+([eE][-+]?[0-9]+)?$ ]] || return 1; done; }
# Arithmetic on arguments, four significant digits: calc 'a/b' 1 2 ("?" unless all are numbers).
calc() {
    local e=$1; shift
    numeric "$@" || { echo "?"; return; }
    awk -v a="$1" -v b="${2:-0}" "BEGIN { printf \"%.4g\", $e }"
}
# ✓ when x ≤ y, ✗ otherwise or when either is missing.
ok() { numeric "$1" "$2" && awk -v x="$1" -v y="$2" 'BEGIN { exit !(x <= y) }' && echo "✓" || echo "✗"; }
row() { printf '| %s | `%s` | %s | %s | %s |\n' "$@" >> "$ROWS"; echo "  $1: $3 ($5)" >&2; }
solve() { "$B/colloc" solve "$1" --out "$2" -q > /dev/null 2>&1 || true; }

echo "figures: collocation (issue 3)" >&2
solve problems/vanderpol.toml "$OUT/vdp"
d="$OUT/vdp"
row "paper's case: status, iterations, fit_mse" "colloc solve problems/vanderpol.toml" \
    "$(key "$d" status), $(key "$d" iterations) it., fit_mse $(calc a "$(key "$d" fit_mse)")" \
    "fit ≤ 0.0225" "$(ok "$(key "$d" fit_mse)" 0.0225)"
row "paper's case: extrapolation" "colloc solve problems/vanderpol.toml" \
    "test_mse_clean $(calc a "$(key "$d" test_mse_clean)")" "≤ 0.65" \
    "$(ok "$(key "$d" test_mse_clean)" 0.65)"
row "paper's case: wall, build" "colloc solve problems/vanderpol.toml" \
    "$(calc a "$(key "$d" wall_s)") s, build $(calc a "$(key "$d" build_s)") s" \
    "≤ 3 s, build < 0.1 s" \
    "$(ok "$(key "$d" wall_s)" 3) $(ok "$(key "$d" build_s)" 0.1)"
eval_pct=$(calc '100*a/b' "$(key "$d" eval_s)" "$(key "$d" solve_s)")
row "paper's case: evaluations" "colloc solve problems/vanderpol.toml" \
    "${eval_pct} % of IPOPT's time" "≤ 10 %" "$(ok "$eval_pct" 10)"
solve problems/vanderpol-small.toml "$OUT/small"
d="$OUT/small"
row "small network" "colloc solve problems/vanderpol-small.toml" \
    "test_mse_clean $(calc a "$(key "$d" test_mse_clean)"), $(calc a "$(key "$d" wall_s)") s" \
    "≤ 1.0, ≤ 1.5 s" \
    "$(ok "$(key "$d" test_mse_clean)" 1.0) $(ok "$(key "$d" wall_s)" 1.5)"

echo "figures: sequential (issue 4)" >&2
"$B/examples/epoch_cost" 3 4000 30 > "$OUT/epoch.md" 2>/dev/null
lv_ms=$(awk -F'|' '$2 ~ /lotka_volterra/ && $3 ~ /vanilla/ { gsub(/ /, "", $5); print $5 }' "$OUT/epoch.md" 2>/dev/null)
row "vanilla epoch, Lotka–Volterra" "cargo run --release --example epoch_cost" \
    "${lv_ms:-?} ms (median of 3)" "≤ 0.5 ms" "$(ok "$lv_ms" 0.5)"
"$B/examples/sequential_comparison" --no-collocation --seeds 10 \
    --problems problems/lotka_volterra.toml,problems/lotka_volterra_long.toml,problems/lorenz.toml \
    > "$OUT/seq.md" 2>/dev/null
# Ratios to vanilla of one seed, from a sequential_comparison table: the line
# "seed  S: best epoch H, S; interp. H, S; extrap. H, S" after "<file>: ratios"; prints the six
# numbers (homotopy, shooting for each figure). Arguments: table, file, seed.
ratios() {
    awk -v f="$2" -v s="$3" '$0 ~ f": ratios" { on = 1; next }
        on && $0 ~ "seed +" s ":" { print; exit }' "$1" 2>/dev/null \
        | sed 's/[;,]//g' | awk '{ print $5, $6, $8, $9, $11, $12 }'
}
read -r be _ ip _ ex _ <<< "$(ratios "$OUT/seq.md" problems/lotka_volterra.toml 10)"
row "homotopy vs vanilla, Lotka–Volterra (seed 10)" "cargo run --release --example sequential_comparison" \
    "best epoch ${be:-?}×, interp. ${ip:-?}×, extrap. ${ex:-?}×" "≤ 0.25 / 1.1 / 1" \
    "$(ok "$be" 0.25) $(ok "$ip" 1.1) $(ok "$ex" 1)"
read -r _ _ ip _ _ _ <<< "$(ratios "$OUT/seq.md" problems/lotka_volterra_long.toml 10)"
row "the same, long window (seed 10)" "cargo run --release --example sequential_comparison" \
    "interp. ${ip:-?}×" "≤ 0.5" "$(ok "$ip" 0.5)"
read -r _ _ iph ips _ _ <<< "$(ratios "$OUT/seq.md" problems/lorenz.toml 10)"
row "Lorenz: homotopy, shooting vs vanilla (seed 10)" "cargo run --release --example sequential_comparison" \
    "interp. ${iph:-?}×, ${ips:-?}×" "≤ 0.2 each" "$(ok "$iph" 0.2) $(ok "$ips" 0.2)"
if [ "$QUICK" = 0 ]; then
    # The paper's protocol (App. F): each method's hyper-parameters swept on seed 10's training
    # MSE, then seeds 10, 20, 30 trained with the selected values.
    "$B/examples/sequential_comparison" --no-collocation --sweep --seeds 10,20,30 \
        --problems problems/lotka_volterra.toml,problems/lotka_volterra_long.toml \
        > "$OUT/sweep.md" 2>/dev/null
    for seed in 10 20 30; do
        read -r be _ ip _ ex _ <<< "$(ratios "$OUT/sweep.md" problems/lotka_volterra.toml "$seed")"
        read -r _ _ lip _ _ _ <<< "$(ratios "$OUT/sweep.md" problems/lotka_volterra_long.toml "$seed")"
        row "the same, hyper-parameters by the paper's sweep (seed $seed)" \
            "cargo run --release --example sequential_comparison -- --sweep" \
            "best epoch ${be:-?}×, interp. ${ip:-?}×, extrap. ${ex:-?}×; long window interp. ${lip:-?}×" \
            "≤ 0.25 / 1.1 / 1; ≤ 0.5" \
            "$(ok "$be" 0.25) $(ok "$ip" 1.1) $(ok "$ex" 1) $(ok "$lip" 0.5)"
    done
fi
solve problems/vanderpol.toml "$OUT/warm-col"
"$B/colloc" train problems/vanderpol.toml --init "$OUT/warm-col/model.json" \
    --out "$OUT/warm" -q > /dev/null 2>&1 || true
budget=$(calc 'a+b' "$(key "$OUT/warm-col" wall_s)" "$(key "$OUT/warm" wall_s)")
"$B/colloc" train problems/vanderpol.toml --epochs 1000000 --time-limit "$budget" \
    --out "$OUT/alone" -q > /dev/null 2>&1 || true
w=$(key "$OUT/warm" train_mse); a=$(key "$OUT/alone" train_mse)
row "warm start, same total time (${budget} s)" "colloc solve, then colloc train --init; colloc train --time-limit" \
    "train MSE $(calc a "$w") vs $(calc a "$a")" "lower" "$(ok "$w" "$a")"
"$B/examples/polyweight_nfe" > "$OUT/poly.md" 2>/dev/null
ratios_nfe=$(awk -F'|' '$2 ~ /[0-9]e-/ { gsub(/ /, "", $7); print $7 }' "$OUT/poly.md" 2>/dev/null | sort -g)
low=$(echo "$ratios_nfe" | head -1); high=$(echo "$ratios_nfe" | tail -1)
row "polynomial weights: NFE to the same loss" "cargo run --release --example polyweight_nfe" \
    "monomial needs ${low:-?}–${high:-?}× Legendre's NFE" "Legendre fewer" "$(ok 1.0001 "$low")"

echo "figures: finite elements (issue 6)" >&2
solve problems/vanderpol-fe.toml "$OUT/fe"
row "finite elements, 200-point case" "colloc solve problems/vanderpol-fe.toml" \
    "test_mse_clean $(calc a "$(key "$OUT/fe" test_mse_clean)"), $(calc a "$(key "$OUT/fe" wall_s)") s (global: $(calc a "$(key "$OUT/vdp" test_mse_clean)"), $(calc a "$(key "$OUT/vdp" wall_s)") s)" \
    "no worse, faster" \
    "$(ok "$(key "$OUT/fe" test_mse_clean)" "$(key "$OUT/vdp" test_mse_clean)") $(ok "$(key "$OUT/fe" wall_s)" "$(key "$OUT/vdp" wall_s)")"

if [ "$QUICK" = 0 ]; then
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -v "$B/colloc" solve problems/vanderpol-long.toml --out "$OUT/long" -q \
            > /dev/null 2> "$OUT/long.time" || true
        rss=$(awk -F: '/Maximum resident/ { printf "%.2f", $2 / 1e6 }' "$OUT/long.time")
    else
        solve problems/vanderpol-long.toml "$OUT/long"
        rss=""
    fi
    row "vanderpol-long (N = 20,001)" "colloc solve problems/vanderpol-long.toml" \
        "$(key "$OUT/long" status), $(key "$OUT/long" iterations) it., $(calc a "$(key "$OUT/long" wall_s)") s, peak RSS ${rss:-?} GB" \
        "≤ 120 s, ≤ 4 GB" "$(ok "$(key "$OUT/long" wall_s)" 120) $( [ -n "$rss" ] && ok "$rss" 4 || echo 'no /usr/bin/time')"
    "$B/examples/finite_elements_bench" 10,100 > "$OUT/feb.md" 2>/dev/null
    # s/iter of the two cases under the same settings (θ scaled; IPOPT's own inertia trials).
    per_it() { awk -F'|' -v m="$1" -v g="$2" '$2 + 0 == m && $3 ~ g { gsub(/ /, "", $12); print $12; exit }' "$OUT/feb.md"; }
    growth=$(calc 'b/a' "$(per_it 10 'θ × 10 $')" "$(per_it 100 'θ × 30 $')")
    growth_own=$(calc 'b/a' "$(per_it 10 'no skip')" "$(per_it 100 'no skip')")
    row "per-iteration growth N = 2,001 → 20,001" "cargo run --release --example finite_elements_bench 10,100" \
        "${growth}× (IPOPT's own inertia trials: ${growth_own}×)" "≤ 13×" "$(ok "$growth" 13)"

    echo "figures: ADMM (issue 5)" >&2
    "$B/colloc" admm problems/vanderpol-admm.toml --out "$OUT/admm" -q > /dev/null 2>&1 || true
    solve problems/vanderpol-admm.toml "$OUT/single"
    d="$OUT/admm"
    row "ADMM consensus vs single model (train / test MSE)" "colloc admm problems/vanderpol-admm.toml" \
        "$(calc a "$(key "$d" train_mse)") / $(calc a "$(key "$d" test_mse)") vs $(calc a "$(key "$OUT/single" train_mse)") / $(calc a "$(key "$OUT/single" test_mse)")" \
        "no worse" \
        "$(ok "$(key "$d" train_mse)" "$(key "$OUT/single" train_mse)") $(ok "$(key "$d" test_mse)" "$(key "$OUT/single" test_mse)")"
    row "ADMM residuals ($(key "$d" admm_iterations) iterations)" "colloc admm problems/vanderpol-admm.toml" \
        "primal $(calc a "$(key "$d" primal_residual)") (tol $(calc a "$(key "$d" eps_primal)")), dual $(calc a "$(key "$d" dual_residual)") (tol $(calc a "$(key "$d" eps_dual)"))" \
        "below tolerance" \
        "$(ok "$(key "$d" primal_residual)" "$(key "$d" eps_primal)") $(ok "$(key "$d" dual_residual)" "$(key "$d" eps_dual)")"
    par=$(calc 'a/b' "$(key "$d" iterations_s)" "$(key "$d" eval_s)")
    wc=$(calc 'a/b' "$(key "$d" mean_warm_iterations)" "$(key "$d" mean_cold_iterations)")
    row "ADMM parallel ratio, warm/cold IPOPT iterations" "colloc admm problems/vanderpol-admm.toml" \
        "${par}, ${wc}" "≤ 0.6, ≤ 1/3" "$(ok "$par" 0.6) $(ok "$wc" 0.3334)"
fi

echo
cpu=$(sed -n 's/^    "cpu": "\(.*\)",$/\1/p' "$OUT/vdp/summary.json")
blas=$(sed -n 's/^    "blas_core": "\(.*\)",$/\1/p' "$OUT/vdp/summary.json")
echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') on ${cpu:-an unknown CPU}, OpenBLAS kernels ${blas:-unknown} (summary.json: platform)."
echo
echo "| figure | command | measured | target | met |"
echo "|---|---|---|---|---|"
cat "$ROWS"
