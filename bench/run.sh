#!/usr/bin/env bash
# Outpost beside nginx, Varnish, Traffic Server and a bare Go server, on
# loopback (README "Performance" says how to read the tables).
#
#   bench/run.sh                                   everything, 3 rounds (about 35 min)
#   ROUNDS=1 DURATION=5s WORKLOADS="1k h2-1k" bench/run.sh
#   TARGETS="outpost nginx bare" bench/run.sh
#   COMPARE=/tmp/outpost-main bench/run.sh          adds that binary as "compare", "compare-tls"
#   COMPARE=/tmp/outpost COMPARE_ARGS='--config /tmp/fast.yaml' TARGETS="outpost compare bare" WORKLOADS="1k many 64k" bench/run.sh
#                                                   the same or another binary with extra flags on its
#                                                   plain listener (here a file with fast_path: true)
#
# Each server under test is pinned to SERVER_CPU and the load generators
# (and the origin) to CLIENT_CPU; servers not being measured are stopped
# with SIGSTOP. Rounds rotate the order of the targets, and each ratio is
# taken within a round, so a machine that slows down for a minute skews no
# ratio. Everything listens on 127.0.0.1, ports PORT_BASE..PORT_BASE+49;
# the script stops only the processes it started.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"

COMPARE="${COMPARE:-}"            # another outpost binary, measured beside this one
TARGETS="${TARGETS:-outpost ${COMPARE:+compare }nginx ats varnish nginx-static bare outpost-tls ${COMPARE:+compare-tls }nginx-tls bare-tls}"
WORKLOADS="${WORKLOADS:-1k many 64k 1m h2-1k h2-64k h1s-1k h1s-64k hs-full hs-resumed coalesce}"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10s}"       # per measured run
WARMUP="${WARMUP:-2s}"            # one unrecorded run per target and workload
CONNS="${CONNS:-64}"              # wrk connections
H2_CONNS="${H2_CONNS:-32}"        # h2load connections (and handshake workers)
H2_STREAMS="${H2_STREAMS:-10}"    # HTTP/2 streams per connection
COALESCE_N="${COALESCE_N:-200}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
PORT_BASE="${PORT_BASE:-18300}"
PAUSE="${PAUSE:-1}"               # seconds of quiet before each run
OUTPOST="${OUTPOST:-}"            # an outpost binary; default: built from this checkout
# Outpost's TLS flags; {certs} is the directory of rig certs, {dir} the target's.
DEFAULT_TLS_ARGS='--config {dir}/tls.yaml'
OUTPOST_TLS_ARGS="${OUTPOST_TLS_ARGS:-$DEFAULT_TLS_ARGS}"
COMPARE_TLS_ARGS="${COMPARE_TLS_ARGS:-$OUTPOST_TLS_ARGS}"
# Extra flags for the compare target's plain listener ({certs} and {dir} as above).
COMPARE_ARGS="${COMPARE_ARGS:-}"
RESULTS="${RESULTS:-$HERE/results/$(date +%Y%m%d-%H%M%S)}"
KEEP_TMP="${KEEP_TMP:-0}"

P_ORIGIN=$PORT_BASE
declare -A PORT=([bare]=$((PORT_BASE + 1)) [bare-tls]=$((PORT_BASE + 2))
	[outpost]=$((PORT_BASE + 10)) [outpost-tls]=$((PORT_BASE + 12)) [compare]=$((PORT_BASE + 14)) [compare-tls]=$((PORT_BASE + 16))
	[nginx]=$((PORT_BASE + 20)) [nginx-tls]=$((PORT_BASE + 21)) [nginx-static]=$((PORT_BASE + 22))
	[varnish]=$((PORT_BASE + 30)) [ats]=$((PORT_BASE + 40)) [origin]=$PORT_BASE)
# The process behind each target: some serve several.
declare -A PROC=([bare]=bare [bare-tls]=bare [outpost]=outpost [outpost-tls]=outpost-tls [compare]=compare [compare-tls]=compare-tls
	[nginx]=nginx [nginx-tls]=nginx [nginx-static]=nginx [varnish]=varnish [ats]=ats [origin]=origin)
declare -A PID=()    # process -> root PID
ORIGIN="http://127.0.0.1:$P_ORIGIN"

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() { log "FATAL: $*"; exit 1; }
has() { [[ " $2 " == *" $1 "* ]]; }
tls_target() { [[ $1 == *-tls ]]; }
tls_workload() { [[ $1 == h2-* || $1 == h1s-* || $1 == hs-* ]]; }

cleanup() {
	local rc=$? p all=""
	trap - EXIT INT TERM
	for p in "${PID[@]}"; do all="$all $("$RIG" pids "$p" 2>/dev/null)"; done
	for p in $all; do kill -CONT "$p" 2>/dev/null; done
	for p in "${PID[@]}"; do kill -TERM "$p" 2>/dev/null; done
	sleep 1
	for p in $all; do kill -KILL "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ -n "${TMP:-}" ] && [ "$KEEP_TMP" != 1 ] && rm -rf "$TMP"
	exit $rc
}

# ------------------------------------------------------------------ setup
for c in go wrk h2load taskset curl; do command -v $c >/dev/null || die "$c not found (apt-get install -y wrk nghttp2-client)"; done
declare -a T=()
for t in $TARGETS; do
	case ${PROC[$t]:-} in
	nginx) command -v nginx >/dev/null || { log "skip $t: nginx not installed"; continue; } ;;
	varnish) command -v varnishd >/dev/null || { log "skip $t: varnishd not installed"; continue; } ;;
	ats) command -v traffic_server >/dev/null || { log "skip $t: traffic_server not installed"; continue; } ;;
	compare*) [ -x "$COMPARE" ] || die "$t needs COMPARE=<outpost binary>" ;;
	"") die "unknown target $t" ;;
	esac
	T+=("$t")
done
TARGETS="${T[*]}"
for p in $P_ORIGIN $(printf '%s ' "${PORT[@]}") $((PORT_BASE + 11)) $((PORT_BASE + 13)) $((PORT_BASE + 15)) $((PORT_BASE + 17)) $((PORT_BASE + 31)); do
	(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && die "port $p is in use (set PORT_BASE)"
done

TMP="$(mktemp -d "${TMPDIR:-/tmp}/outpost-bench.XXXXXX")"
chmod 755 "$TMP" # nginx and Varnish workers run as other users
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$RESULTS/raw" "$TMP/certs" "$TMP/bin"
RUNS="$RESULTS/runs.jsonl"
log "results in $RESULTS"

(cd "$ROOT" && go build -o "$TMP/bin/rig" ./bench/rig) || die "building rig"
RIG="$TMP/bin/rig"
if [ -z "$OUTPOST" ]; then
	(cd "$ROOT" && go build -o "$TMP/bin/outpost" ./cmd/outpost) || die "building outpost"
	OUTPOST="$TMP/bin/outpost"
fi
"$RIG" certs -dir "$TMP/certs" || die "certificates"

# render SRC DST DIR PORT: the @VARS@ of the configuration templates.
render() {
	sed -e "s#@DIR@#$3#g" -e "s#@PORT@#$4#g" -e "s#@PORT_ORIGIN@#$P_ORIGIN#g" -e "s#@CERTS@#$TMP/certs#g" \
		-e "s#@PORT_CACHE@#${PORT[nginx]}#g" -e "s#@PORT_TLS@#${PORT[nginx-tls]}#g" \
		-e "s#@PORT_STATIC@#${PORT[nginx-static]}#g" "$1" >"$2"
}

# start NAME CPU CMD...: runs CMD (which must exec) pinned to CPU.
start() {
	local name=$1 cpu=$2
	shift 2
	taskset -c "$cpu" "$@" >"$TMP/$name.log" 2>&1 &
	PID[$name]=$!
}
pin() { # every thread of a process tree to SERVER_CPU (ATS re-binds its threads)
	local p
	for p in $("$RIG" pids "${PID[$1]}"); do taskset -a -p -c "$SERVER_CPU" "$p" >/dev/null 2>&1; done
}
freeze() { [ "$1" = origin ] || kill -STOP $("$RIG" pids "${PID[$1]}") 2>/dev/null; }
thaw() { [ "$1" = origin ] || kill -CONT $("$RIG" pids "${PID[$1]}" | tr ' ' '\n' | tac) 2>/dev/null; }
client() { taskset -c "$CLIENT_CPU" "$@"; }
url() { if tls_target "$1"; then echo "https://127.0.0.1:${PORT[$1]}"; else echo "http://127.0.0.1:${PORT[$1]}"; fi; }

# start_outpost NAME [tls]: Outpost (or COMPARE) with a disk tier, as a
# CDN runs it; with tls, an ECDSA and an RSA pair and a ticket key file.
start_outpost() {
	local bin=$OUTPOST args=$OUTPOST_TLS_ARGS D="$TMP/$1" port=${PORT[$1]}
	[[ $1 == compare* ]] && bin=$COMPARE args=$COMPARE_TLS_ARGS
	if [ "${2:-}" != tls ]; then
		args=""
		[[ $1 == compare* ]] && args=$COMPARE_ARGS
	fi
	cat >"$D/tls.yaml" <<-EOF
		tls:
		  certificates:
		    - {cert: $TMP/certs/ecdsa.pem, key: $TMP/certs/ecdsa.key}
		    - {cert: $TMP/certs/rsa.pem, key: $TMP/certs/rsa.key}
		  session_tickets: {key_file: $TMP/certs/tickets.key}
	EOF
	args=${args//\{certs\}/$TMP/certs}
	# shellcheck disable=SC2086
	start "$1" "$SERVER_CPU" "$bin" serve --listen "127.0.0.1:$port" --admin "127.0.0.1:$((port + 1))" \
		--origin "$ORIGIN" --cache-dir "$D/cache" ${args//\{dir\}/$D}
}

start origin "$CLIENT_CPU" "$RIG" origin -listen "127.0.0.1:$P_ORIGIN"
declare -a PROCS=()
for t in $TARGETS; do has "${PROC[$t]}" "${PROCS[*]:-}" || PROCS+=("${PROC[$t]}"); done
for p in "${PROCS[@]}"; do
	D="$TMP/$p"
	mkdir -p "$D"
	case $p in
	bare) start bare "$SERVER_CPU" "$RIG" bare -listen "127.0.0.1:${PORT[bare]}" -tls "127.0.0.1:${PORT[bare-tls]}" -certs "$TMP/certs" ;;
	outpost | compare) start_outpost "$p" ;;
	outpost-tls | compare-tls) start_outpost "$p" tls ;;
	nginx)
		mkdir -p "$D/tmp" "$D/cache"
		"$RIG" files -dir "$D/root" || die "writing nginx's files"
		render "$HERE/conf/nginx.conf" "$D/nginx.conf" "$D" 0
		start nginx "$SERVER_CPU" nginx -p "$D" -c "$D/nginx.conf" -e "$D/error.log" ;;
	varnish)
		render "$HERE/conf/varnish.vcl" "$D/bench.vcl" "$D" 0
		start varnish "$SERVER_CPU" varnishd -F -n "$D/work" -a "127.0.0.1:${PORT[varnish]}" -T "127.0.0.1:$((PORT_BASE + 31))" \
			-f "$D/bench.vcl" -s malloc,1g -p thread_pools=1 ;;
	ats)
		mkdir -p "$D/etc" "$D/run" "$D/log" "$D/cache" "$D/var" "$D/data"
		for f in records.config remap.config storage.config ip_allow.yaml; do render "$HERE/conf/ats/$f" "$D/etc/$f" "$D" "${PORT[ats]}"; done
		render "$HERE/conf/ats/runroot.yaml" "$D/runroot.yaml" "$D" 0
		for f in cache.config hosting.config parent.config plugin.config volume.config splitdns.config socks.config ssl_multicert.config; do : >"$D/etc/$f"; done
		start ats "$SERVER_CPU" traffic_server --run-root="$D/runroot.yaml" ;;
	esac
	log "started $p (pid ${PID[$p]})"
done

# ------------------------------------------------------------------ warm
client "$RIG" wait -url "$ORIGIN/obj/1k/probe" || die "origin did not start"
for t in $TARGETS; do
	client "$RIG" wait -url "$(url "$t")/obj/1k/probe" || { tail -20 "$TMP/${PROC[$t]}.log"; die "$t did not start"; }
	[ "$t" = nginx-static ] || [[ $t == bare* ]] && continue
	fetches=$(client "$RIG" warm -base "$(url "$t")" -origin "$ORIGIN") || die "warming $t"
	log "warmed $t: the second pass cost the origin $fetches fetches"
	[ "$fetches" = 0 ] || log "WARNING: $t does not serve every object from cache"
done

# load ROUND WORKLOAD TARGET DURATION [RUNS]: one run of the workload's generator.
load() {
	local round=$1 wl=$2 t=$3 d=$4 runs=$5 u
	u="$(url "$t")"
	local m=(client "$RIG" measure -out "$runs" -round "$round" -workload "$wl" -target "$t"
		-pids "${PID[${PROC[$t]}]}" -origin "$ORIGIN" -raw "$RESULTS/raw/$wl-$t-$round.txt" --)
	case $wl in
	1k | 64k | 1m) "${m[@]}" wrk -t1 -c"$CONNS" -d"$d" --latency -s "$HERE/wrk.lua" "$u/obj/$wl/hot" ;;
	many) "${m[@]}" env WRK_MANY=10000 wrk -t1 -c"$CONNS" -d"$d" --latency -s "$HERE/wrk.lua" "$u/" ;;
	h2-*) "${m[@]}" h2load -c"$H2_CONNS" -m"$H2_STREAMS" -D"${d%s}" "$u/obj/${wl#h2-}/hot" ;;
	h1s-*) "${m[@]}" h2load --h1 -c"$H2_CONNS" -m1 -D"${d%s}" "$u/obj/${wl#h1s-}/hot" ;;
	hs-full) "${m[@]}" "$RIG" handshake -addr "127.0.0.1:${PORT[$t]}" -c "$H2_CONNS" -d "$d" ;;
	hs-resumed) "${m[@]}" "$RIG" handshake -addr "127.0.0.1:${PORT[$t]}" -c "$H2_CONNS" -d "$d" -resume ;;
	coalesce) "${m[@]}" "$RIG" coalesce -n "$COALESCE_N" -url "$u/slow/500/64k/co-$round-$t-$RANDOM$RANDOM" -origin "$ORIGIN" ;;
	esac
}

# applies WORKLOAD TARGET: whether the workload runs against the target.
applies() {
	case $1 in
	coalesce) [[ $2 == outpost || $2 == compare || $2 == nginx || $2 == varnish || $2 == ats || $2 == origin ]] ;; # origin: no cache, the floor
	*) [ "$2" != origin ] || return 1
		if tls_workload "$1"; then tls_target "$2"; else ! tls_target "$2"; fi ;;
	esac
}

for p in "${PROCS[@]}"; do pin "$p"; done
for t in $TARGETS; do
	for wl in $WORKLOADS; do
		applies "$wl" "$t" && [ "$wl" != coalesce ] && load 0 "$wl" "$t" "$WARMUP" "$TMP/warmup.jsonl" >/dev/null
	done
done
for p in "${PROCS[@]}"; do pin "$p"; freeze "$p"; done

{
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
	echo "servers on CPU $SERVER_CPU, load generators and origin on CPU $CLIENT_CPU; $ROUNDS rounds of $DURATION per run"
	echo "wrk -t1 -c$CONNS; h2load -c$H2_CONNS -m$H2_STREAMS (HTTP/2), --h1 -c$H2_CONNS (HTTPS/1.1); handshakes: rig, $H2_CONNS workers"
	[ -n "$COMPARE" ] && echo "compare: $COMPARE ($("$COMPARE" version))${COMPARE_ARGS:+, plain listener with $COMPARE_ARGS}"
	echo "versions: $("$OUTPOST" version); $(nginx -v 2>&1 | cut -d' ' -f3); $(varnishd -V 2>&1 | head -1 | cut -d' ' -f2); ATS $(traffic_server -V 2>&1 | grep -o 'Server [0-9.]*' | head -1 | cut -d' ' -f2); $(go version | cut -d' ' -f3); $(h2load --version | head -1)"
	echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$RESULTS/env.txt"

# ------------------------------------------------------------------ measure
read -r -a TA <<<"$TARGETS origin"
for round in $(seq 1 "$ROUNDS"); do
	for wl in $WORKLOADS; do
		for i in "${!TA[@]}"; do
			t=${TA[$(((i + round) % ${#TA[@]}))]} # rotate the order every round
			applies "$wl" "$t" || continue
			thaw "${PROC[$t]}"
			sleep "$PAUSE"
			load "$round" "$wl" "$t" "$DURATION" "$RUNS" || log "run failed: $wl $t (see $RESULTS/raw)"
			freeze "${PROC[$t]}"
		done
	done
done
echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/env.txt"
{ cat "$RESULTS/env.txt"; "$RIG" summary -runs "$RUNS"; } | tee "$RESULTS/summary.txt"
