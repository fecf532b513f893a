#!/usr/bin/env bash
# Launch a sweep as one Slurm job array, detached from the terminal (the launcher waits for every
# array task, so it must outlive an SSH session). Run it on a login node.
#
#   sweeps/launch.sh EXPERIMENT [override ...]
#   sweeps/launch.sh vocab_ablation data.path=/data/msmarco hydra.launcher.partition=gpu
#   LAUNCHER=slurm_multigpu sweeps/launch.sh head_scale data.path=/data/msmarco hydra.launcher.partition=gpu
#
# The launcher's log goes to $SPLADE_EXP_ROOT/launch/<experiment>-<time>.log. Relaunching the same
# command later skips finished runs and resumes unfinished ones from their last.ckpt.
set -euo pipefail
cd "$(dirname "$0")/.."

exp=${1:-}
if [[ -z "$exp" || ! -f "conf/experiment/$exp.yaml" ]]; then
  echo "usage: sweeps/launch.sh EXPERIMENT [override ...]" >&2
  echo "experiments: $(cd conf/experiment && ls *.yaml | sed 's/\.yaml$//' | tr '\n' ' ')" >&2
  exit 2
fi
shift

PY=${PY:-.venv/bin/python}   # the jobs run with this interpreter (submitit uses the launcher's)
LAUNCHER=${LAUNCHER:-slurm}
ROOT=${SPLADE_EXP_ROOT:-$PWD/runs}
mkdir -p "$ROOT/launch"
log="$ROOT/launch/$exp-$(date +%Y%m%d-%H%M%S).log"

nohup "$PY" -m splade_exp +experiment="$exp" launcher="$LAUNCHER" -m "$@" >"$log" 2>&1 </dev/null &
echo "launched $exp with launcher=$LAUNCHER (launcher pid $!)"
echo "  log:     tail -f $log"
echo "  jobs:    squeue --me --name=$exp"
echo "  results: $ROOT/results/$exp/"
