#!/usr/bin/env bash
# Store the finished units of a stored study computed in another checkout (a clean worktree at a
# committed revision, as the studies require) into this one, check them, and commit them.
#
#   scripts/store_units.sh SOURCE_TREE [RESULTS_SUBDIR]     (default subdirectory: ground_truth)
#
# For every unit (sidecar *.json with its *.npz) in SOURCE_TREE/results/SUBDIR that this tree
# does not hold yet:
#   1. every unit must come from a clean commit (its sidecar's git_commit has no "-dirty"):
#      one that does not stops the script before anything is copied;
#   2. they are copied here, and tests/test_provenance.py retrains two of its seeds for their first
#      epochs: every stored number of theirs must come back bit for bit;
#   3. the new units are committed, with their activation, noise or bits, network count, wall
#      time and source commit in the message.
# A unit that fails its check is removed again and nothing is committed.
set -euo pipefail
src=${1:?usage: scripts/store_units.sh SOURCE_TREE [RESULTS_SUBDIR]}
sub=${2:-ground_truth}
here=$(git rev-parse --show-toplevel)
cd "$here"
py=${PY:-$here/.venv/bin/python}
mkdir -p "results/$sub"
new=()
for side in "$src/results/$sub"/*.json; do   # first every new unit is vetted: nothing is copied yet
  [ -e "$side" ] || continue
  name=$(basename "$side" .json)
  [ -e "results/$sub/$name.json" ] && continue
  [ -e "${side%.json}.npz" ] || { echo "skip $name: no .npz beside its sidecar (unfinished?)"; continue; }
  commit=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["meta"]["git_commit"])' "$side")
  case "$commit" in *-dirty|"") echo "refuse $name: made from a dirty or unknown tree ($commit); nothing copied"; exit 1;; esac
  new+=("$name")
done
for name in "${new[@]}"; do cp "$src/results/$sub/$name.json" "$src/results/$sub/$name.npz" "results/$sub/"; done
[ ${#new[@]} -gt 0 ] || { echo "nothing new in $src/results/$sub"; exit 0; }
expr=$(printf ' or %s' "${new[@]}"); expr=${expr# or }
echo "checking ${new[*]}"
if ! IBTOOLS_PROVENANCE_UNITS=all IBTOOLS_PROVENANCE_FULL=0 OMP_NUM_THREADS=1 IBTOOLS_THREADS=1 \
     "$py" -m pytest -q -p no:randomly tests/test_provenance.py -k "invariant and ($expr)"; then
  for name in "${new[@]}"; do rm -f "results/$sub/$name.json" "results/$sub/$name.npz"; done
  echo "a unit did not reproduce: nothing stored"; exit 1
fi
summary=$("$py" - "$sub" "${new[@]}" <<'EOF'
import json, sys
sub, names = sys.argv[1], sys.argv[2:]
parts = []
for name in names:
    d = json.load(open(f"results/{sub}/{name}.json"))
    c, m = d["config"], d["meta"]
    noise, bits = c.get("noise_std"), c.get("quantize_bits")
    what = f"noise {noise}" if noise else (f"{bits} bits" if bits else "")
    if c.get("l2"):
        what += f" l2 {c['l2']}"
    if c.get("task"):
        what += f" {c['task']}"
    parts.append(f"{c.get('activation', '?')} {what} {len(c['seeds'])} nets "
                 f"{m['wall_time_s'] / 60:.0f} min {m['git_commit'][:7]}".replace("  ", " "))
print("; ".join(parts))
EOF
)
git add "results/$sub"
git commit -q -m "results/$sub: ${#new[@]} more unit(s) ($summary); each reproduces bit for bit: up to 2 of its seeds retrained for 20 epochs"
git log -1 --format='%h %s'
