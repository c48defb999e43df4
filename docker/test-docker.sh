#!/usr/bin/env bash
# `make test-docker`: the Docker deployment as a new user meets it, on this machine's Docker engine.
# Not part of `make test` (it takes minutes and root). It:
#   1. installs and starts dockerd and docker-compose when they are missing;
#   2. uses BASE_IMAGE (python:3.11-slim) if it can be pulled, else makes a stand-in from Debian's
#      packages (debootstrap + docker import); with no Docker Hub, PostgreSQL, Redis and the S3 store
#      are stand-ins too, given through docker/compose.standin.yml;
#   3. brings the stack up from fresh volumes with `docker-compose up -d --build`, waits for every
#      healthcheck, checks the first key the API printed and saved, and creates one with `exec`;
#   4. runs the README's curl walkthrough against the published port;
#   5. crashes the worker mid-job (SIGKILL from the host): the restart policy brings it back and the
#      job succeeds; then `docker kill`s it mid-job, which Docker counts as a manual stop, so
#      `up -d` brings it back and the job succeeds;
#   6. runs two jobs at once on `--scale worker=2`;
#   7. runs `down` and `up` and finds the datasets, jobs, models and keys still there (volumes).
# Meant for throwaway machines (Debian): run as root. It leaves the stack down and its images in place;
# `docker-compose -p epochly-test down -v` (with the same -f files) removes its volumes.
#
# Environment: BASE_IMAGE (default python:3.11-slim); DOCKERD_FLAGS, extra flags for a dockerd this
# script starts; EPOCHLY_PORT (default 18000), where the API is published during the test;
# STANDIN_STORAGE (local or s3, default local): with the stand-ins, where artifacts live. moto keeps
# objects in memory, so with s3 the models cannot outlive the `down`/`up` of step 7, and it skips them.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim}
STANDIN_BASE=epochly-standin/python:3.11-bookworm
EPOCHLY_PORT=${EPOCHLY_PORT:-18000}
STANDIN_STORAGE=${STANDIN_STORAGE:-local}
URL=http://127.0.0.1:$EPOCHLY_PORT
WORK=$(mktemp -d /tmp/epochly-test-docker.XXXXXX)
COMPOSE=(docker-compose -p epochly-test -f docker-compose.yml)
RESULTS=()
STEP=""
export EPOCHLY_PORT

step() {
    STEP=$1
    echo
    echo "=== $STEP"
}

passed() {
    RESULTS+=("PASS  $STEP${1:+ ($1)}")
    echo "--- passed${1:+: $1}"
}

summary() {
    local status=$?
    if [ "$status" -ne 0 ] && [ -n "$STEP" ]; then
        RESULTS+=("FAIL  $STEP")
        echo "--- failed; the last log lines of each service:" >&2
        "${COMPOSE[@]}" logs --tail=40 >&2 || true
    fi
    echo
    echo "=== make test-docker summary"
    printf '%s\n' "${RESULTS[@]}"
    rm -rf "$WORK"
    exit "$status"
}
trap summary EXIT

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2
    shift 2
    for _ in $(seq "$seconds"); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    echo "$what: not so after ${seconds}s" >&2
    return 1
}

ensure_engine() {
    if ! command -v dockerd >/dev/null || ! command -v docker-compose >/dev/null || ! command -v debootstrap >/dev/null; then
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y docker.io docker-compose debootstrap
    fi
    if ! docker info >/dev/null 2>&1; then
        # No init system in these sandboxes: dockerd in the background. The defaults (overlay2,
        # iptables for the bridge network and published ports) work here; DOCKERD_FLAGS for others.
        # shellcheck disable=SC2086
        nohup dockerd ${DOCKERD_FLAGS:-} >/var/log/epochly-dockerd.log 2>&1 &
        wait_for 60 "dockerd answering (see /var/log/epochly-dockerd.log)" docker info
    fi
}

pullable() {  # pullable IMAGE...: all of them could be pulled (Docker Hub reachable)
    local image
    for image in "$@"; do
        docker image inspect "$image" >/dev/null 2>&1 || timeout 120 docker pull -q "$image" >/dev/null 2>&1 || return 1
    done
}

make_standin_base() {
    if docker image inspect "$STANDIN_BASE" >/dev/null 2>&1; then
        echo "$STANDIN_BASE, made by an earlier run"
        return
    fi
    local rootfs=$WORK/rootfs
    # Debian 12's python3 is 3.11, which the project needs (>= 3.11); venv builds the image's virtualenv.
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" http://deb.debian.org/debian >&2
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import -c 'CMD ["/bin/bash"]' - "$STANDIN_BASE" >/dev/null
    rm -rf "$rootfs"
    echo "$STANDIN_BASE, made now with debootstrap"
}

api() {  # api METHOD PATH [curl args...]: the body; fails on an HTTP error
    local method=$1 path=$2
    shift 2
    curl -sf -X "$method" -H "Authorization: Bearer $KEY" "$URL$path" "$@"
}

healthy() {  # every container of the project is healthy, or exited 0 when it has no healthcheck
    local ids id state
    ids=$("${COMPOSE[@]}" ps -q)
    [ -n "$ids" ] || return 1
    for id in $ids; do
        state=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}:{{.State.ExitCode}}{{end}}' "$id")
        case $state in healthy | exited:0) ;; *) return 1 ;; esac
    done
}

wait_healthy() {
    if ! wait_for 600 "every service healthy" healthy; then
        "${COMPOSE[@]}" ps >&2
        return 1
    fi
    "${COMPOSE[@]}" ps
}

submit() {  # submit DATASET EPOCHS: a tutorial job's id
    api POST /v1/jobs -H 'content-type: application/json' -d '{
      "dataset_id": "'"$1"'", "name": "docker-test",
      "model": {"layers": [{"type": "Dense", "units": 16, "activation": "relu", "input_shape": [1]},
                           {"type": "Dense", "units": 32, "activation": "relu"},
                           {"type": "Dense", "units": 2, "activation": "sigmoid"}]},
      "compile": {"optimizer": {"type": "Adam", "learning_rate": 0.0001},
                  "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
      "fit": {"epochs": '"$2"', "batch_size": 10, "shuffle": true, "seed": 0, "normalize": "minmax"}}' | jq -r .id
}

job_field() {  # job_field JOB JQ-FILTER
    api GET "/v1/jobs/$1" | jq -r "$2"
}

epochs_at_least() {
    [ "$(job_field "$1" .epochs_completed)" -ge "$2" ]
}

succeeded() {
    local status
    status=$(job_field "$1" .status)
    if [ "$status" = failed ] || [ "$status" = cancelled ]; then
        echo "job $1 ended $status: $(job_field "$1" .error)" >&2
        exit 1
    fi
    [ "$status" = succeeded ]
}

worker_container() {  # the one worker container's id
    "${COMPOSE[@]}" ps -q worker | head -n 1
}

step "engine: dockerd and docker-compose"
ensure_engine
passed "$(docker version -f 'engine {{.Server.Version}}'), $(docker-compose version --short)"

step "base image and stand-ins"
if pullable "$BASE_IMAGE"; then
    how="$BASE_IMAGE pulled"
else
    how=$(make_standin_base | tail -n 1)
    BASE_IMAGE=$STANDIN_BASE
fi
export BASE_IMAGE
if pullable postgres:16 redis:7 minio/minio minio/mc; then
    how="$how; official postgres, redis and minio images"
else
    # moto's server stands in for MinIO: it goes into the wheelhouse next to the project's wheels.
    .venv/bin/pip wheel --quiet --wheel-dir wheels --find-links wheels 'moto[server]'
    COMPOSE+=(-f docker/compose.standin.yml)
    if [ "$STANDIN_STORAGE" = local ]; then
        export STANDIN_STORAGE_URL=""
    else
        export STANDIN_STORAGE_URL=s3://epochly/artifacts
    fi
    how="$how; postgres, redis and S3 (moto) stand-ins, artifacts in ${STANDIN_STORAGE_URL:-the /data volume}"
fi
passed "$how"

step "docker-compose up -d --build, from fresh volumes; every healthcheck passes"
"${COMPOSE[@]}" down -v --remove-orphans
"${COMPOSE[@]}" up -d --build
wait_healthy
passed "$(docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' epochly:local)"

step "the first start printed an API key and saved it in /data (mode 600)"
api_log=$("${COMPOSE[@]}" logs --no-color api)
first_key=$("${COMPOSE[@]}" exec -T api cat /data/local-api-key)
grep -q "No API key existed" <<<"$api_log"
grep -qF "  $first_key" <<<"$api_log"
[ "$("${COMPOSE[@]}" exec -T api stat -c '%a %U' /data/local-api-key)" = "600 epochly" ]
passed

step "docker-compose exec api epochly keys create --owner docker-test"
KEY=$("${COMPOSE[@]}" exec -T api epochly keys create --owner docker-test | tr -d '\r')
api GET /v1/jobs >/dev/null
passed "the key authenticates"

step "the README's curl walkthrough against the published port"
printf '%s\n' "$KEY" >"$WORK/key"
# The walkthrough block as tests/integration/test_readme.py takes it, pointed at this port and key.
.venv/bin/python - "$WORK/walkthrough.sh" "$URL" "$WORK/key" <<'PY'
import re, sys
from pathlib import Path
section = Path("README.md").read_text().split("## Walkthrough with curl", 1)[1]
script = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
Path(sys.argv[1]).write_text(script.replace("http://127.0.0.1:8000", sys.argv[2]).replace("var/local-api-key", sys.argv[3]))
PY
(cd "$WORK" && timeout 600 bash -euo pipefail walkthrough.sh >walkthrough.out)
grep -q '^Epoch 20/20 - ' "$WORK/walkthrough.out"
[ "$(stat -c %s "$WORK/tutorial.keras")" -gt 1000 ]
DATASET=$(api GET /v1/datasets | jq -r '.items[0].id')
TUTORIAL_JOB=$(api GET /v1/jobs | jq -r '.items[0].id')
passed "$(grep '^Epoch 20/20' "$WORK/walkthrough.out")"

step "the worker crashes mid-job (SIGKILL); the restart policy brings it back and the job succeeds"
JOB=$(submit "$DATASET" 300)
wait_for 180 "job $JOB past epoch 3" epochs_at_least "$JOB" 3
worker=$(worker_container)
restarts=$(docker inspect -f '{{.RestartCount}}' "$worker")
kill -9 "$(docker inspect -f '{{.State.Pid}}' "$worker")"
restarted() {
    [ "$(docker inspect -f '{{.RestartCount}} {{.State.Running}}' "$worker")" = "$((restarts + 1)) true" ]
}
wait_for 60 "worker restarted by its policy" restarted
wait_for 600 "job $JOB succeeded" succeeded "$JOB"
passed "killed at epoch >= 3; attempts $(job_field "$JOB" ".attempts | length"), $(job_field "$JOB" .epochs_completed) epochs"

step "docker kill of the worker mid-job: a manual stop for Docker, so up -d brings it back; the job succeeds"
JOB=$(submit "$DATASET" 300)
wait_for 180 "job $JOB past epoch 3" epochs_at_least "$JOB" 3
docker kill "$worker" >/dev/null
sleep 5
[ "$(docker inspect -f '{{.State.Status}}' "$worker")" = exited ]
"${COMPOSE[@]}" up -d
wait_healthy
wait_for 600 "job $JOB succeeded" succeeded "$JOB"
passed "attempts $(job_field "$JOB" ".attempts | length"), $(job_field "$JOB" .epochs_completed) epochs"

step "--scale worker=2 runs two jobs at once"
"${COMPOSE[@]}" up -d --scale worker=2
wait_healthy
first=$(submit "$DATASET" 150)
second=$(submit "$DATASET" 150)
both_running() {
    [ "$(job_field "$first" .status)" = running ] && [ "$(job_field "$second" .status)" = running ]
}
wait_for 180 "both jobs running at once" both_running
[ "$(job_field "$first" .worker)" != "$(job_field "$second" .worker)" ]
wait_for 600 "job $first succeeded" succeeded "$first"
wait_for 600 "job $second succeeded" succeeded "$second"
passed "on $(job_field "$first" .worker) and $(job_field "$second" .worker)"

step "down, then up: datasets, jobs, models and keys are still there"
jobs_before=$(api GET /v1/jobs | jq -c '[.items[] | {id, status}] | sort_by(.id)')
"${COMPOSE[@]}" down
"${COMPOSE[@]}" up -d
wait_healthy
[ "$(api GET /v1/jobs | jq -c '[.items[] | {id, status}] | sort_by(.id)')" = "$jobs_before" ]
api GET "/v1/datasets/$DATASET" >/dev/null
if [ "${STANDIN_STORAGE_URL-}" = s3://epochly/artifacts ]; then
    models="models not checked: the moto stand-in keeps objects in memory"
else
    api GET "/v1/jobs/$TUTORIAL_JOB/model" -o "$WORK/again.keras"
    cmp -s "$WORK/tutorial.keras" "$WORK/again.keras"
    models="the tutorial's model downloads byte for byte"
fi
second_notices=$("${COMPOSE[@]}" logs --no-color api | grep -c "No API key existed" || true)
[ "$second_notices" = 0 ]
passed "$(echo "$jobs_before" | jq length) jobs; $models; no second first key"

step "down (volumes kept)"
"${COMPOSE[@]}" down
docker image prune -f >/dev/null
passed "images: $(docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^epochly' | tr '\n' ';')"
STEP=""
