#!/usr/bin/env bash
# Range serving: the app (uvicorn) against nginx serving the same file, in one run.
#
#   bench/range_serving.sh [SECONDS_PER_RUN=10] [CONNECTIONS=16]
#   WORKERS=2 ROUNDS=3 bench/range_serving.sh ...   (defaults: 1 worker, 2 rounds)
#   UVICORN_OPTIONS= bench/range_serving.sh ...      (plain uvicorn: no zero-copy sends)
#
# Makes a 4-minute pink-noise FLAC (about 40 MB) and its 256k rendition, then runs wrk for
# whole files and 64 KiB ranges against: (1) uvicorn serving the rendition through
# /stream/<id>/, (2) nginx serving the same MP3 as a static file, (3) nginx in front of the
# app with AUDIO_CACHE_SENDFILE=nginx (deploy/nginx.conf). Prints requests/s, MB/s and the
# ratios, then the app's peak RSS growth while 200 clients stream the 40 MB original at once.
# Like is compared with like: nginx runs WORKERS worker processes and each uvicorn WORKERS
# processes (default one each). wrk (2 threads) shares the machine's cores with both, so
# each run also prints the CPU time per request of the app, nginx and wrk; the six runs are
# repeated ROUNDS times, interleaved, and the best of each is kept (other load on the
# machine then skews the ratios less).
# Needs wrk, nginx and curl (apt-get install wrk nginx-light curl). Everything is on loopback
# and removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
CONNECTIONS=${2:-16}
WORKERS=${WORKERS:-1}
ROUNDS=${ROUNDS:-2}
# As make run starts uvicorn (audiocache/zerocopy.py); set it empty for uvicorn's defaults.
UVICORN_OPTIONS=${UVICORN_OPTIONS-"--loop asyncio --http audiocache.delivery.zerocopy:HttpToolsProtocol"}
PY=${PY:-.venv/bin/python}
for tool in wrk nginx curl ffmpeg; do
    command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || { echo "missing: $tool" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

WORK=$(mktemp -d /tmp/range-bench-XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

export DJANGO_SETTINGS_MODULE=config.settings DATA_ROOT=$WORK/data MUSIC_ROOT=$WORK/music \
    AUDIO_CACHE_MAX_WORKERS=0 LOG_LEVEL=warning SECRET_KEY=range-bench-only-$RANDOM-key-0123456789abcdef
mkdir -p "$MUSIC_ROOT"
echo "Preparing a 4-minute FLAC and its rendition in $WORK ..."
ffmpeg -v error -nostdin -f lavfi -i "anoisesrc=color=pink:amplitude=0.4:duration=240:sample_rate=44100" \
    -ac 2 -c:a flac -sample_fmt s16 "$MUSIC_ROOT/long.flac"
$PY manage.py migrate -v 0
$PY manage.py scanlibrary -v 0 >/dev/null
$PY manage.py precache --all --quality high --inline --workers 2 >/dev/null
TRACK=$($PY manage.py shell -v 0 -c "
from django.contrib.auth.models import User
from mixtapes.models import Mixtape, MixtapeTrack, Track
t = Track.objects.get()
m = Mixtape.objects.create(owner=User.objects.create(username='bench'), title='bench', is_public=True)
MixtapeTrack.objects.create(mixtape=m, track=t, position=0)
print(t.pk)")
RENDITION=$(ls "$DATA_ROOT"/cache/audio/*.mp3)
echo "rendition: $(stat -c %s "$RENDITION") bytes; original: $(stat -c %s "$MUSIC_ROOT/long.flac") bytes"

port() { $PY -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }
APP_PORT=$(port); ACCEL_APP_PORT=$(port); STATIC_PORT=$(port); FRONT_PORT=$(port)
# shellcheck disable=SC2086 # UVICORN_OPTIONS is a list of words
$PY -m uvicorn config.asgi:application $UVICORN_OPTIONS --host 127.0.0.1 --port "$APP_PORT" --log-level warning \
    --workers "$WORKERS" &
APP_PID=$!; PIDS+=("$APP_PID")
# shellcheck disable=SC2086
AUDIO_CACHE_SENDFILE=nginx $PY -m uvicorn config.asgi:application $UVICORN_OPTIONS --host 127.0.0.1 \
    --port "$ACCEL_APP_PORT" --log-level warning --workers "$WORKERS" &
ACCEL_PID=$!; PIDS+=("$ACCEL_PID")

mkdir -p "$WORK/nginx"
sed -e "s|\${LISTEN}|127.0.0.1:$FRONT_PORT|g" -e "s|\${APP_UPSTREAM}|127.0.0.1:$ACCEL_APP_PORT|g" \
    -e "s|\${STATIC_ROOT}|$WORK/static|g" -e "s|\${AUDIO_CACHE_DIR}|$DATA_ROOT/cache/audio|g" \
    -e "s|\${MUSIC_ROOT}|$MUSIC_ROOT|g" deploy/nginx.conf >"$WORK/nginx/mixtapes.conf"
USER_LINE=""; [[ $(id -u) -eq 0 ]] && USER_LINE="user root;"
cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
$USER_LINE
worker_processes $WORKERS;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$STATIC_PORT;
        location = /file.mp3 { alias $RENDITION; sendfile on; tcp_nopush on; }
    }
    include $WORK/nginx/mixtapes.conf;
}
EOF
"$NGINX" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
PIDS+=("$!")
for p in "$APP_PORT" "$ACCEL_APP_PORT" "$STATIC_PORT" "$FRONT_PORT"; do
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$p/healthz" && break; sleep 0.1; done
done

STREAM="/stream/$TRACK/?quality=high"
NGINX_PID=${PIDS[-1]}
declare -A RPS MBS CPU
ticks() {  # CPU clock ticks (user + system) used so far by these processes and their children
    local pid total=0
    for pid in "$@" $(for p in "$@"; do pgrep -P "$p" || true; done); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
waited_ticks() { awk '{print $16 + $17}' "/proc/$$/stat"; }  # wrk's, once it has been waited for
run() {  # name app_pid url [range]: keeps the best of the rounds, with its CPU time per request
    local name=$1 app=$2 url=$3 range=${4:-}
    local args=(-t 2 -c "$CONNECTIONS" -d "${SECONDS_PER_RUN}s")
    [[ -n $range ]] && args+=(-H "Range: $range")
    local out rps mbs a0 n0 w0 cpu
    a0=$(ticks $app); n0=$(ticks "$NGINX_PID"); w0=$(waited_ticks)
    out=$(wrk "${args[@]}" "$url")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    mbs=$(awk '/Transfer\/sec/ {v=$2; u=substr(v, length(v)-1); n=v+0;
        if (u=="GB") n*=1024; else if (u=="KB") n/=1024; else if (u!="MB") n/=1048576; printf "%.1f", n}' <<<"$out")
    cpu=$(awk -v a=$(($(ticks $app) - a0)) -v n=$(($(ticks "$NGINX_PID") - n0)) -v w=$(($(waited_ticks) - w0)) \
        -v r="$rps" -v d="$SECONDS_PER_RUN" -v hz="$(getconf CLK_TCK)" 'BEGIN { k = 1000 / hz / (r * d);
        printf "app %.2f nginx %.2f wrk %.2f", a * k, n * k, w * k }')
    printf "%-28s %10s req/s %10s MB/s   CPU ms/request: %s\n" "$name" "$rps" "$mbs" "$cpu"
    if awk -v a="$rps" -v b="${RPS[$name]:-0}" 'BEGIN { exit !(a > b) }'; then
        RPS[$name]=$rps MBS[$name]=$mbs CPU[$name]=$cpu
    fi
}
echo
echo "wrk: 2 threads, $CONNECTIONS connections, ${SECONDS_PER_RUN}s per run, best of $ROUNDS interleaved rounds;" \
    "nginx worker_processes $WORKERS, uvicorn --workers $WORKERS ${UVICORN_OPTIONS:-(plain)}"
for round in $(seq "$ROUNDS"); do
    echo "round $round (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    run "nginx static, whole" "" "http://127.0.0.1:$STATIC_PORT/file.mp3"
    run "app (uvicorn), whole" "$APP_PID" "http://127.0.0.1:$APP_PORT$STREAM"
    run "app + nginx accel, whole" "$ACCEL_PID" "http://127.0.0.1:$FRONT_PORT$STREAM"
    run "nginx static, 64 KiB range" "" "http://127.0.0.1:$STATIC_PORT/file.mp3" "bytes=0-65535"
    run "app (uvicorn), 64 KiB range" "$APP_PID" "http://127.0.0.1:$APP_PORT$STREAM" "bytes=0-65535"
    run "app + nginx accel, 64 KiB" "$ACCEL_PID" "http://127.0.0.1:$FRONT_PORT$STREAM" "bytes=0-65535"
done
echo
echo "best of $ROUNDS:"
for name in "nginx static, whole" "app (uvicorn), whole" "app + nginx accel, whole" "nginx static, 64 KiB range" \
    "app (uvicorn), 64 KiB range" "app + nginx accel, 64 KiB"; do
    printf "%-28s %10s req/s %10s MB/s   CPU ms/request: %s\n" "$name" "${RPS[$name]}" "${MBS[$name]}" "${CPU[$name]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo
echo "whole-file MB/s, app / nginx:         $(ratio "${MBS[app (uvicorn), whole]}" "${MBS[nginx static, whole]}")  (target >= 0.5)"
echo "whole-file MB/s, app+accel / nginx:   $(ratio "${MBS[app + nginx accel, whole]}" "${MBS[nginx static, whole]}")  (target ~ 1.0)"
echo "64 KiB req/s, app / nginx:            $(ratio "${RPS[app (uvicorn), 64 KiB range]}" "${RPS[nginx static, 64 KiB range]}")"
echo "64 KiB req/s, app+accel / nginx:      $(ratio "${RPS[app + nginx accel, 64 KiB]}" "${RPS[nginx static, 64 KiB range]}")"

rss_kb() {  # the app's processes: uvicorn itself and, with --workers > 1, its worker processes
    local pid total=0
    for pid in "$APP_PID" $(pgrep -P "$APP_PID" || true); do
        total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
BASE=$(rss_kb); PEAK=$BASE
CLIENTS=()
for _ in $(seq 200); do
    curl -s -o /dev/null --limit-rate 400k "http://127.0.0.1:$APP_PORT/stream/$TRACK/?quality=original" &
    CLIENTS+=("$!")
done
for _ in $(seq 50); do
    now=$(rss_kb); ((now > PEAK)) && PEAK=$now
    sleep 0.2
done
kill "${CLIENTS[@]}" 2>/dev/null || true
echo
echo "200 clients streaming the $(($(stat -c %s "$MUSIC_ROOT/long.flac") / 1048576)) MB original for 10 s:"
echo "app RSS before: $((BASE / 1024)) MB, peak: $((PEAK / 1024)) MB, growth: $(((PEAK - BASE) / 1024)) MB"
