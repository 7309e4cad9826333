# shellcheck shell=bash
# Sourced by the sbatch scripts: the software environment, the dataset, signal forwarding and requeueing.
#
# Settings (environment variables; put them in cluster/env.sh, which is sourced when present and not tracked):
#   CITYSCAPES            the unzipped Cityscapes root on the shared file system (leftImg8bit/, gtFine/, ...);
#                         empty = the embedded SynthCity default
#   CITYSEG_IMAGE         an apptainer image built from cluster/cityseg.def; empty = the repository's .venv
#   CITYSEG_STAGE_DATA=1  copy $CITYSCAPES to node-local $TMPDIR first (container only: it is bound at the same
#                         path, /data/cityscapes, either way, so the params and DVC's dependency do not change)
#   CITYSEG_MAX_REQUEUES  stop requeueing after this many restarts (default 20)

EXIT_PREEMPTED=75  # the training stage's status after SIGUSR1/SIGTERM with its resume state saved
CONTAINER_DATA=/data/cityscapes

# The training processes of this job: python running stages/train.py, without its DataLoader workers (forked
# children with the same command line). Under torchrun its ranks, not torchrun itself: it would die of SIGUSR1
# (no handler) before they saved anything; the ranks agree to stop after the same step.
training_pids() {
    local pid parent pids=""
    if [ -n "${SLURM_JOB_ID:-}" ] && command -v scontrol >/dev/null 2>&1; then
        pids=$(scontrol listpids "$SLURM_JOB_ID" 2>/dev/null | awk 'NR > 1 {print $1}')
    elif [ -n "${CHILD:-}" ]; then
        pids="$CHILD $(descendants "$CHILD")"
    fi
    for pid in $pids; do
        is_training "$pid" || continue
        is_launcher "$pid" && continue
        parent=$(ps -o ppid= -p "$pid" 2>/dev/null | tr -d ' ')
        if is_training "$parent" && ! is_launcher "$parent"; then
            continue
        fi
        echo "$pid"
    done
}

is_launcher() {
    [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' < "/proc/$1/cmdline" | grep -qE "torchrun|torch\.distributed\.run"
}

is_training() {
    [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' < "/proc/$1/cmdline" | grep -q "stages/train.py"
}

descendants() {
    local child
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        echo "$child"
        descendants "$child"
    done
}

# The scheduler's warning (--signal=B:USR1@...) or preemption (TERM): pass it to training, which saves the
# current step and exits 75. Other stages (evaluate, report) are short and are left to finish.
forward_signal() {
    SIGNALLED=$1
    local pids
    pids=$(training_pids)
    if [ -n "$pids" ]; then
        echo "cityseg: SIG$1 received, forwarded to training process(es) $pids"
        # shellcheck disable=SC2086
        kill -s "$1" $pids || true
    else
        echo "cityseg: SIG$1 received while no training runs; letting the current stage finish"
    fi
}

setup_env() {
    # shellcheck disable=SC1091
    [ -f cluster/env.sh ] && . cluster/env.sh
    export DVC_NO_ANALYTICS=1
    export CITYSEG_PROGRESS_SECONDS=${CITYSEG_PROGRESS_SECONDS:-60}
    DATA_ROOT=""
    RUN=()
    if [ -n "${CITYSEG_IMAGE:-}" ]; then
        local src=${CITYSCAPES:-}
        if [ -n "$src" ] && [ "${CITYSEG_STAGE_DATA:-0}" = 1 ]; then
            echo "cityseg: copying $src to ${TMPDIR:?TMPDIR is not set}/cityscapes"
            mkdir -p "$TMPDIR/cityscapes"
            cp -a "$src/." "$TMPDIR/cityscapes/"
            src=$TMPDIR/cityscapes
        fi
        # The image holds the dependencies; the code is this checkout (src/ on the path, as `pip install -e .`).
        RUN=(apptainer exec --nv --env "PYTHONPATH=$PWD/src")
        if [ -n "$src" ]; then
            RUN+=(--bind "$src:$CONTAINER_DATA:ro")
            DATA_ROOT=$CONTAINER_DATA
        fi
        RUN+=("$CITYSEG_IMAGE")
    else
        # shellcheck disable=SC1091
        . .venv/bin/activate
        DATA_ROOT=${CITYSCAPES:-}
    fi
}

# Run "$@" (in the container when there is one) in the background so the traps fire while it works; requeue the
# job when training stopped for a signal. Returns the command's status.
run_requeueable() {
    SIGNALLED=""
    CHILD=""
    trap 'forward_signal USR1' USR1
    trap 'forward_signal TERM' TERM
    "${RUN[@]}" "$@" &
    CHILD=$!
    while kill -0 "$CHILD" 2>/dev/null; do
        wait "$CHILD" || true  # a trapped signal interrupts wait; the command runs on
    done
    local rc=0
    wait "$CHILD" || rc=$?
    trap - USR1 TERM
    # dvc reports a stage's status ("exited with 75") and exits non-zero itself; after a signal any failure is
    # treated as an interruption: the next job continues from the resume state and the run cache.
    if [ "$rc" -eq "$EXIT_PREEMPTED" ] || { [ "$rc" -ne 0 ] && [ -n "$SIGNALLED" ]; }; then
        requeue "$rc"
    fi
    return "$rc"
}

requeue() {
    local restarts=${SLURM_RESTART_COUNT:-0} max=${CITYSEG_MAX_REQUEUES:-20}
    if [ -z "${SLURM_JOB_ID:-}" ]; then
        echo "cityseg: interrupted (status $1); run the same command again to continue"
    elif [ "$restarts" -ge "$max" ]; then
        echo "cityseg: interrupted (status $1) after $restarts restarts (CITYSEG_MAX_REQUEUES=$max): not requeueing"
    else
        echo "cityseg: interrupted (status $1); requeueing job $SLURM_JOB_ID (restart $((restarts + 1)))"
        scontrol requeue "$SLURM_JOB_ID"
    fi
}
