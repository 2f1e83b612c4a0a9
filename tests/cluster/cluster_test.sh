#!/usr/bin/env bash
# cluster_test.sh CASE - one cluster integration test against the real
# parts: redis-server, mlsec-devbroker over TCP, stage services and the
# orchestrator as processes, gRPC over loopback, mlsec-submit as the client.
# Registered with ctest once per case (label integration).
#
# Env: BIN (default build/bin), T_KEEP=1 keeps the scratch directory.
BIN=${BIN:-${MLSEC_BIN_DIR:-build/bin}}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

# Verdicts 0 and 2 end to end, Upload (dedup), stage-first form, JSON output.
case_verdicts() {
	make_fixtures
	start_redis
	start_broker
	start_stage s1
	start_orch --insecure-local
	submit --timeout 30 "$T_DIR/in/clean/config.pbtxt"
	expect_rc 0
	grep -q "no findings" "$T_DIR/out" || fail "clean report: $(cat "$T_DIR/out")"
	# the report names the user's file, not the cluster's upload path
	grep -q "$T_DIR/in/clean/config.pbtxt" "$T_DIR/out" || fail "path not mapped: $(cat "$T_DIR/out")"
	submit --timeout 30 "$T_DIR/in/evil/config.pbtxt"
	expect_rc 2
	grep -q "FAKE-EVIL" "$T_DIR/out" || fail "evil report: $(cat "$T_DIR/out")"
	expect_err "triton .*ALERT"
	# the original mlsec's stage-first form, summary output
	submit triton "$T_DIR/in/evil" --summary --timeout 30
	expect_rc 2
	grep -q "high=1" "$T_DIR/out" || fail "summary: $(cat "$T_DIR/out")"
	# --fail-on critical: a high finding passes the gate
	submit --fail-on critical --timeout 30 "$T_DIR/in/evil/config.pbtxt"
	expect_rc 0
	# JSON report: the same schema as mlsec
	submit --json --quiet --timeout 30 "$T_DIR/in/evil/config.pbtxt"
	expect_rc 2
	/usr/bin/python3 - "$T_DIR/out" <<'EOF' || fail "json report"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["stage"] == "cluster", r
assert r["exit_code"] == 2, r
f = r["artifacts"][0]["findings"][0]
assert f["rule_id"] == "FAKE-EVIL" and f["severity"] == "high", f
EOF
	# stage options travel with the job
	submit --option fake-severity=critical --timeout 30 "$T_DIR/in/clean/config.pbtxt"
	expect_rc 2
	grep -q "FAKE-OPTION" "$T_DIR/out" || fail "option not applied: $(cat "$T_DIR/out")"
	submit --option 'fake-severity="low"' --timeout 30 "$T_DIR/in/clean/config.pbtxt"
	expect_rc 0
	# uploads are content-addressed and deduplicated: 1 clean + 1 evil file
	n=$(find "$ROOT/uploads" -type f -not -path '*/.tmp/*' | wc -l)
	[ "$n" = 2 ] || fail "expected 2 stored uploads, found $n"
	# by reference: a path under the shared root
	cp "$T_DIR/in/evil/config.pbtxt" "$ROOT/config.pbtxt"
	submit --by-reference --timeout 30 config.pbtxt
	expect_rc 2
}

# Malformed requests: INVALID_ARGUMENT, exit 1.
case_invalid() {
	make_fixtures
	start_redis
	start_broker
	start_orch --insecure-local
	submit --stages nosuchstage --timeout 10 "$T_DIR/in/clean/config.pbtxt"
	expect_rc 1
	expect_err "INVALID_ARGUMENT"
	write_file "$T_DIR/in/notes.txt" 'plain bytes\n'
	submit --timeout 10 "$T_DIR/in/notes.txt"
	expect_rc 1
	expect_err "INVALID_ARGUMENT.*no stage handles"
	submit --by-reference --timeout 10 ""
	expect_rc 1
	expect_err "INVALID_ARGUMENT"
}

# Bearer token: missing/wrong -> UNAUTHENTICATED, exit 1; right -> runs.
case_auth() {
	make_fixtures
	start_redis
	start_broker
	start_stage s1
	printf 's3cret-token-%s\n' "$RANDOM$RANDOM" >"$T_DIR/token"
	chmod 600 "$T_DIR/token"
	printf 'wrong-token\n' >"$T_DIR/bad-token"
	local mport
	mport=$(free_port)
	start_orch --auth-token-file "$T_DIR/token" --metrics-listen "127.0.0.1:$mport"
	unset MLSEC_TOKEN_FILE
	submit --timeout 10 "$T_DIR/in/clean/config.pbtxt"
	expect_rc 1
	expect_err "authentication failed"
	submit --token-file "$T_DIR/bad-token" --timeout 10 "$T_DIR/in/clean/config.pbtxt"
	expect_rc 1
	expect_err "authentication failed"
	MLSEC_TOKEN_FILE="$T_DIR/token" submit --timeout 30 "$T_DIR/in/evil/config.pbtxt"
	expect_rc 2
	# refused calls are visible in the metrics (when built with libmicrohttpd)
	if grep -q "metrics-listen" <("$BIN/mlsec-orchestratord" --help 2>&1); then
		/usr/bin/python3 -c 'import sys, urllib.request
print(urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5).read().decode())' \
			"$mport" >"$T_DIR/metrics.txt" || fail "metrics scrape"
		grep -q 'mlsec_grpc_requests_total{method="/mlsec.v1.Orchestrator/Upload",code="UNAUTHENTICATED"} 2' \
			"$T_DIR/metrics.txt" || fail "metrics: $(grep grpc "$T_DIR/metrics.txt")"
	fi
	# health stays public (Kubernetes probes carry no token)
	"$BIN/mlsec-submit" --health "$ENDPOINT" >/dev/null || fail "health needs no token"
	# the token never reaches the log
	if grep -q "s3cret-token" "$T_DIR"/*.log; then fail "token leaked into a log"; fi
	# --insecure-local refuses a non-loopback bind
	if "$BIN/mlsec-orchestratord" --insecure-local --grpc-listen 0.0.0.0:0 >/dev/null 2>&1; then
		fail "insecure-local accepted 0.0.0.0"
	fi
	if MLSEC_AUTH_TOKEN_FILE= "$BIN/mlsec-orchestratord" --grpc-listen 127.0.0.1:0 \
		>/dev/null 2>&1; then
		fail "started without a token and without --insecure-local"
	fi
}

# Paths outside the artifact root are refused, also through symlinks.
case_confine() {
	make_fixtures
	start_redis
	start_broker
	start_orch --insecure-local
	submit --by-reference --timeout 10 /etc/passwd
	expect_rc 1
	expect_err "PERMISSION_DENIED.*outside the artifact root"
	submit --by-reference --timeout 10 ../../../etc/passwd
	expect_rc 1
	expect_err "PERMISSION_DENIED"
	ln -s /etc/passwd "$ROOT/config.pbtxt"
	submit --by-reference --timeout 10 config.pbtxt
	expect_rc 1
	expect_err "PERMISSION_DENIED"
	# a sha256 that does not match the file
	cp "$T_DIR/in/clean/config.pbtxt" "$ROOT/ok.pbtxt"
	/usr/bin/python3 "$HERE/wire_test.py" --endpoint "$ENDPOINT" --proto-out "$T_DIR/py" \
		bad-sha ok.pbtxt || fail "sha256 mismatch accepted"
}

# kill -9 of the stage service mid-job: Kafka redelivers to the restarted
# service, the job finishes, exactly one result event.
case_stage_crash() {
	make_fixtures
	start_redis
	start_broker
	export MLSEC_FAKE_LOG="$T_DIR/analyses" MLSEC_FAKE_SLOW_MS=4000
	start_stage s1
	start_orch --insecure-local
	# warm up: the consumer group is formed before the crash
	submit --timeout 30 "$T_DIR/in/clean/config.pbtxt"
	expect_rc 0
	: >"$T_DIR/analyses"
	"$BIN/mlsec-submit" --timeout 90 "$T_DIR/in/slow/config.pbtxt" >"$T_DIR/out" 2>"$T_DIR/err" &
	local sub=$!
	for _ in $(seq 100); do [ -s "$T_DIR/analyses" ] && break; sleep 0.1; done
	[ -s "$T_DIR/analyses" ] || fail "slow job never started"
	kill -KILL "$STAGE_PID_s1"
	MLSEC_FAKE_SLOW_MS=200 start_stage s2
	wait $sub
	RC=$?
	expect_rc 2
	JOB=$(sed -n 's/^mlsec-submit: job \([0-9a-f]*\):.*/\1/p' "$T_DIR/err" | head -n 1)
	[ -n "$JOB" ] || fail "no job id"
	# analysed twice (the crash, then the redelivery) ...
	[ "$(wc -l <"$T_DIR/analyses")" -ge 2 ] || fail "job was not redelivered"
	# ... but one stored result and one STAGE_DONE event
	local events
	events=$(redis-cli -p "$REDIS_PORT" xlen "mlsec:job:$JOB:events")
	[ "$events" = 3 ] || fail "expected 3 events (submitted, stage, verdict), got $events"
	[ "$(grep -c 'triton .*ALERT' "$T_DIR/err")" = 1 ] || fail "duplicate progress lines"
}

# SIGTERM mid-job: the stage service stops promptly with exit 0, hands the
# job back uncommitted, and the next replica finishes it.
case_stage_sigterm() {
	make_fixtures
	start_redis
	start_broker
	export MLSEC_FAKE_LOG="$T_DIR/analyses" MLSEC_FAKE_SLOW_MS=60000
	start_stage s1
	start_orch --insecure-local
	submit --timeout 30 "$T_DIR/in/clean/config.pbtxt"
	expect_rc 0
	: >"$T_DIR/analyses"
	"$BIN/mlsec-submit" --timeout 60 "$T_DIR/in/slow/config.pbtxt" >"$T_DIR/out" 2>"$T_DIR/err" &
	local sub=$!
	for _ in $(seq 100); do [ -s "$T_DIR/analyses" ] && break; sleep 0.1; done
	[ -s "$T_DIR/analyses" ] || fail "slow job never started"
	local t0 t1 rc
	t0=$(date +%s)
	kill -TERM "$STAGE_PID_s1"
	wait "$STAGE_PID_s1"
	rc=$?
	t1=$(date +%s)
	[ "$rc" = 0 ] || fail "stage exited $rc on SIGTERM"
	[ $((t1 - t0)) -le 8 ] || fail "SIGTERM took $((t1 - t0)) s"
	MLSEC_FAKE_SLOW_MS=100 start_stage s2
	wait $sub
	RC=$?
	expect_rc 2
	[ "$(wc -l <"$T_DIR/analyses")" -ge 2 ] || fail "job was not handed back"
}

# Orchestrator killed with a job in flight: a new one on the same endpoint
# consumes the result, decides the verdict, and mlsec-submit's Watch resumes.
case_orch_restart() {
	make_fixtures
	start_redis
	start_broker
	export MLSEC_FAKE_SLOW_MS=3000
	start_stage s1
	start_orch --insecure-local
	submit --timeout 30 "$T_DIR/in/clean/config.pbtxt"
	expect_rc 0
	rm -f "$T_DIR/err" # the warm-up's job line must not be mistaken for ours
	"$BIN/mlsec-submit" --timeout 90 "$T_DIR/in/slow/config.pbtxt" >"$T_DIR/out" 2>"$T_DIR/err" &
	local sub=$!
	for _ in $(seq 100); do grep -q "^mlsec-submit: job" "$T_DIR/err" 2>/dev/null && break; sleep 0.1; done
	grep -q "^mlsec-submit: job" "$T_DIR/err" || fail "job never submitted"
	kill -KILL "$ORCH_PID"
	wait "$ORCH_PID" 2>/dev/null
	sleep 1
	start_orch --insecure-local
	wait $sub
	RC=$?
	expect_rc 2
	grep -q "FAKE-EVIL" "$T_DIR/out" || fail "report after restart: $(cat "$T_DIR/out")"
}

# Redis stopped: a clear error and exit 1 within the timeout, no hang.
case_redis_down() {
	make_fixtures
	start_redis
	start_broker
	start_stage s1
	start_orch --insecure-local
	submit --timeout 30 "$T_DIR/in/clean/config.pbtxt"
	expect_rc 0
	stop_redis
	local t0 t1
	t0=$(date +%s)
	submit --timeout 10 "$T_DIR/in/clean/config.pbtxt"
	t1=$(date +%s)
	expect_rc 1
	expect_err "unavailable\|UNAVAILABLE"
	[ $((t1 - t0)) -le 12 ] || fail "took $((t1 - t0)) s with Redis down"
}

# Two stage replicas in one consumer group share the jobs.
case_replicas() {
	make_fixtures
	start_redis
	start_broker 4
	export MLSEC_FAKE_LOG="$T_DIR/analyses"
	start_stage s1
	start_stage s2
	start_orch --insecure-local
	# Batches of parallel jobs until both replicas have analysed some (the
	# group needs a rebalance after the second member joins): bounded.
	local batch i workers=0 pids
	for batch in 1 2 3 4 5 6; do
		pids=()
		for i in $(seq 8); do
			mkdir -p "$T_DIR/in/r$batch-$i"
			write_file "$T_DIR/in/r$batch-$i/config.pbtxt" "name: \"m$batch-$i\"\n"
			"$BIN/mlsec-submit" --quiet --timeout 60 "$T_DIR/in/r$batch-$i/config.pbtxt" \
				>/dev/null 2>>"$T_DIR/err.all" &
			pids+=($!)
		done
		for i in "${pids[@]}"; do
			wait "$i" || fail "a replica job failed: $(cat "$T_DIR/err.all")"
		done
		workers=$(awk '{print $1}' "$T_DIR/analyses" | sort -u | wc -l)
		[ "$workers" -ge 2 ] && break
		sleep 2
	done
	[ "$workers" -ge 2 ] || fail "all jobs went to one replica"
}

# A stage that never answers becomes an error at the deadline: exit 1.
case_deadline() {
	make_fixtures
	start_redis
	start_broker
	start_orch --insecure-local
	local t0 t1
	t0=$(date +%s)
	submit --stages checkpoint --timeout 4 "$T_DIR/in/clean/config.pbtxt"
	t1=$(date +%s)
	expect_rc 1
	expect_err "did not answer before its deadline"
	[ $((t1 - t0)) -le 8 ] || fail "deadline took $((t1 - t0)) s"
	# per-stage deadlines: checkpoint (no service) gives up after 1.5 s
	# while the job may run 60 s; triton still answers
	kill "$ORCH_PID"
	wait "$ORCH_PID" 2>/dev/null
	start_stage s1
	start_orch --insecure-local --stage-timeouts checkpoint=1500,triton=20000
	submit --stages triton,checkpoint --timeout 60 "$T_DIR/in/evil/config.pbtxt"
	expect_rc 2 # the finding still wins over the missing stage
	submit --stages triton,checkpoint --timeout 60 "$T_DIR/in/clean/config.pbtxt"
	expect_rc 1
	expect_err "checkpoint .*ERROR.*did not answer before its deadline"
	expect_err "triton .*ok"
	if "$BIN/mlsec-orchestratord" --insecure-local --grpc-listen 127.0.0.1:0 \
		--stage-timeouts nosuch=5 >/dev/null 2>&1; then
		fail "bad --stage-timeouts accepted"
	fi
}

# TLS, then mutual TLS.
case_tls() {
	command -v openssl >/dev/null || { echo "openssl CLI missing: skipped"; exit 77; }
	make_fixtures
	start_redis
	start_broker
	start_stage s1
	local d="$T_DIR/pki"
	mkdir -p "$d"
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=mlsec-test-ca" \
		-keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null || fail "openssl ca"
	openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$d/srv.key" \
		-out "$d/srv.csr" 2>/dev/null
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$d/san.ext"
	openssl x509 -req -in "$d/srv.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
		-days 1 -extfile "$d/san.ext" -out "$d/srv.pem" 2>/dev/null || fail "openssl srv"
	openssl req -newkey rsa:2048 -nodes -subj "/CN=client" -keyout "$d/cli.key" \
		-out "$d/cli.csr" 2>/dev/null
	openssl x509 -req -in "$d/cli.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
		-days 1 -out "$d/cli.pem" 2>/dev/null || fail "openssl cli"
	start_orch --insecure-local --tls-cert "$d/srv.pem" --tls-key "$d/srv.key"
	submit --tls-ca "$d/ca.pem" --timeout 30 "$T_DIR/in/evil/config.pbtxt"
	expect_rc 2
	submit --timeout 10 "$T_DIR/in/evil/config.pbtxt" # plaintext client
	expect_rc 1
	kill "$ORCH_PID"
	wait "$ORCH_PID" 2>/dev/null
	ORCH_PORT=
	start_orch --insecure-local --tls-cert "$d/srv.pem" --tls-key "$d/srv.key" --tls-ca "$d/ca.pem"
	submit --tls-ca "$d/ca.pem" --timeout 10 "$T_DIR/in/evil/config.pbtxt" # no client cert
	expect_rc 1
	submit --tls-ca "$d/ca.pem" --tls-cert "$d/cli.pem" --tls-key "$d/cli.key" --timeout 30 \
		"$T_DIR/in/evil/config.pbtxt"
	expect_rc 2
}

# Consumer lag from librdkafka statistics reaches /metrics: after a job the
# stage's partition has a committed offset, so its lag gauge appears.
case_metrics_lag() {
	make_fixtures
	start_redis
	start_broker 1
	local mport
	mport=$(free_port)
	start_stage s1 --metrics-listen "127.0.0.1:$mport" --kafka-stats-interval-ms 200
	local oport
	oport=$(free_port)
	start_orch --insecure-local --metrics-listen "127.0.0.1:$oport" --kafka-stats-interval-ms 200
	submit --timeout 30 "$T_DIR/in/clean/config.pbtxt"
	expect_rc 0
	local ok=0
	for _ in $(seq 50); do
		/usr/bin/python3 -c 'import sys,urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())' \
			"http://127.0.0.1:$mport/metrics" >"$T_DIR/metrics.txt" 2>/dev/null
		if grep -q '^mlsec_kafka_consumer_lag{topic="mlsec.stage.triton",partition="0",client="[^"]*"} 0' \
			"$T_DIR/metrics.txt"; then
			ok=1
			break
		fi
		sleep 0.2
	done
	[ "$ok" = 1 ] || fail "no lag gauge: $(grep kafka "$T_DIR/metrics.txt")"
	# the orchestrator's results consumer too (its partitions: 1 here)
	ok=0
	for _ in $(seq 50); do
		/usr/bin/python3 -c 'import sys,urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())' \
			"http://127.0.0.1:$oport/metrics" >"$T_DIR/metrics.txt" 2>/dev/null
		if grep -q '^mlsec_kafka_consumer_lag{topic="mlsec.results",partition="0",client="[^"]*"} 0' \
			"$T_DIR/metrics.txt"; then
			ok=1
			break
		fi
		sleep 0.2
	done
	[ "$ok" = 1 ] || fail "no orchestrator lag gauge: $(grep kafka "$T_DIR/metrics.txt")"
}

# health_is ENDPOINT SERVICE WANT SECONDS: waits until `mlsec-submit
# --health` prints WANT (SERVING / NOT_SERVING) for SERVICE.
health_is() {
	local i got
	for i in $(seq $(($4 * 5))); do
		got=$("$BIN/mlsec-submit" --health "$1" --service "$2" 2>/dev/null)
		[ "$got" = "$3" ] && return 0
		sleep 0.2
	done
	fail "health of $2 on $1: expected $3, got '$got'"
}

# --health-listen: a plain-text health-only port beside a TLS gRPC port,
# sharing the serving state; readiness (the API service name) follows
# Redis and Kafka, liveness ("") does not.
case_health_listen() {
	command -v openssl >/dev/null || { echo "openssl CLI missing: skipped"; exit 77; }
	make_fixtures
	start_redis
	start_broker
	local d="$T_DIR/pki" hs ho
	mkdir -p "$d"
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=localhost" \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout "$d/srv.key" -out "$d/srv.pem" 2>/dev/null || fail "openssl"
	hs=$(free_port)
	ho=$(free_port)
	start_stage s1 --health-listen "127.0.0.1:$hs" --health-interval-ms 200
	start_orch --insecure-local --tls-cert "$d/srv.pem" --tls-key "$d/srv.key" \
		--health-listen "127.0.0.1:$ho" --health-interval-ms 200
	# the main port speaks TLS only; the health port answers in plain text
	submit --health "$ENDPOINT" --timeout 3
	expect_rc 1
	health_is "127.0.0.1:$ho" mlsec.v1.Orchestrator SERVING 5
	health_is "127.0.0.1:$ho" "" SERVING 5
	health_is "127.0.0.1:$hs" mlsec.v1.Analyzer SERVING 5
	# nothing but health on that port
	submit --endpoint "127.0.0.1:$ho" --timeout 5 "$T_DIR/in/clean/config.pbtxt"
	expect_rc 1
	expect_err "UNIMPLEMENTED"
	submit --tls-ca "$d/srv.pem" --timeout 30 "$T_DIR/in/clean/config.pbtxt"
	expect_rc 0
	# Redis down: not ready, still alive; back: ready again
	stop_redis
	health_is "127.0.0.1:$ho" mlsec.v1.Orchestrator NOT_SERVING 10
	health_is "127.0.0.1:$hs" mlsec.v1.Analyzer NOT_SERVING 10
	health_is "127.0.0.1:$ho" "" SERVING 2
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
		--daemonize yes --pidfile "$T_DIR/redis.pid" --logfile "$T_DIR/redis.log" \
		--dir "$T_DIR" >/dev/null || fail "redis-server did not restart"
	health_is "127.0.0.1:$ho" mlsec.v1.Orchestrator SERVING 10
	health_is "127.0.0.1:$hs" mlsec.v1.Analyzer SERVING 10
	submit --tls-ca "$d/srv.pem" --timeout 30 "$T_DIR/in/evil/config.pbtxt"
	expect_rc 2
	# Kafka down: not ready
	kill "${T_PIDS[0]}"
	health_is "127.0.0.1:$hs" mlsec.v1.Analyzer NOT_SERVING 15
	health_is "127.0.0.1:$ho" mlsec.v1.Orchestrator NOT_SERVING 15
}

# MLSEC_REDIS_PASSWORD_FILE: the AUTH password from a file (with an ACL
# user in the URL and no password there); never logged.
case_redis_password_file() {
	make_fixtures
	REDIS_PORT=$(free_port)
	export REDISCLI_AUTH='Pw/with%odd:chars' # redis-cli here and in the cleanup
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
		--requirepass "$REDISCLI_AUTH" --daemonize yes --pidfile "$T_DIR/redis.pid" \
		--logfile "$T_DIR/redis.log" --dir "$T_DIR" >/dev/null || fail "redis-server"
	for _ in $(seq 50); do
		redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
		sleep 0.1
	done
	printf '%s\n' "$REDISCLI_AUTH" >"$T_DIR/redis-password"
	export MLSEC_REDIS_URL="redis://default@127.0.0.1:$REDIS_PORT/0"
	export MLSEC_REDIS_PASSWORD_FILE="$T_DIR/redis-password"
	start_broker
	start_stage s1 --log-level debug
	start_orch --insecure-local --log-level debug
	submit --timeout 30 "$T_DIR/in/evil/config.pbtxt"
	expect_rc 2
	! grep -q 'odd:chars' "$T_DIR"/s1.log "$T_DIR"/orch.log || fail "password logged"
	# without the file: the orchestrator cannot use Redis
	printf 'wrong-password\n' >"$T_DIR/redis-password"
	kill "$ORCH_PID"
	wait "$ORCH_PID" 2>/dev/null
	start_orch --insecure-local
	submit --timeout 10 "$T_DIR/in/evil/config.pbtxt"
	expect_rc 1
}

# Adversarial baselines live in Redis under the model name: a job with
# update-baseline records it, a later job of a weaker model under the same
# name regresses (exit 2); export/import move the same JSON.
case_adv_baseline() {
	[ -x "$BIN/mlsec-adversariald" ] || { echo "no mlsec-adversariald: skipped"; exit 77; }
	local d="$HERE/../data/adversarial"
	mkdir -p "$T_DIR/in/a" "$T_DIR/in/b"
	cp "$d/digits_mlp.onnx" "$T_DIR/in/a/model.onnx"
	cp "$d/digits_rescnn.onnx" "$T_DIR/in/b/model.onnx"
	start_redis
	start_broker
	STAGE_BIN="$BIN/mlsec-adversariald" start_stage adv
	start_orch --insecure-local
	local common=(--stages adversarial --timeout 120 --option attack=fgsm --option epsilon=0.1)
	submit "${common[@]}" --option update-baseline=true "$T_DIR/in/a/model.onnx"
	expect_rc 0
	redis-cli -p "$REDIS_PORT" get mlsec:baseline:model | grep -q '"fgsm"' ||
		fail "baseline not stored: $(redis-cli -p "$REDIS_PORT" keys 'mlsec:*')"
	# the same model again: stable
	submit "${common[@]}" --option tolerance=0.01 "$T_DIR/in/a/model.onnx"
	expect_rc 0
	grep -q "ADV-REGRESSION" "$T_DIR/out" && fail "stable model flagged: $(cat "$T_DIR/out")"
	# a less robust model under the same name: regression
	submit "${common[@]}" --option tolerance=0.01 --json "$T_DIR/in/b/model.onnx"
	expect_rc 2
	grep -q "ADV-REGRESSION" "$T_DIR/out" || fail "no regression: $(cat "$T_DIR/out")"
	# export prints the stored document; import stores it (under another name)
	"$BIN/mlsec-submit" --baseline-export model >"$T_DIR/exported.json" 2>"$T_DIR/err" ||
		fail "export: $(cat "$T_DIR/err")"
	/usr/bin/python3 - "$T_DIR/exported.json" "$T_DIR/import.json" <<'PY' || fail "exported JSON"
import json, sys
d = json.load(open(sys.argv[1]))
acc = d["model"]["fgsm"]["epsilon=0.1"]
assert 0 <= acc <= 1, d
json.dump({"renamed": d["model"]}, open(sys.argv[2], "w"))
PY
	submit --baseline-import "$T_DIR/import.json"
	expect_rc 0
	submit --baseline-export renamed
	expect_rc 0
	grep -q '"renamed"' "$T_DIR/out" || fail "imported baseline: $(cat "$T_DIR/out")"
	# model-name option picks the key explicitly: b as "renamed" regresses too
	submit "${common[@]}" --option tolerance=0.01 --option model-name=renamed "$T_DIR/in/b/model.onnx"
	expect_rc 2
	# a baseline path would be read on the stage's disk: refused
	submit "${common[@]}" --option baseline=/etc/passwd "$T_DIR/in/a/model.onnx"
	expect_rc 1
	expect_err "inline JSON object"
	submit --baseline-export nosuchmodel
	expect_rc 1
	expect_err "NOT_FOUND"
	write_file "$T_DIR/bad.json" '{"../x": {}}'
	submit --baseline-import "$T_DIR/bad.json"
	expect_rc 1
	expect_err "INVALID_ARGUMENT"
}

# auto routing: an ONNX model goes to export AND inspect, a safetensors
# checkpoint to checkpoint AND inspect, a pickle to checkpoint only;
# explicit --stages keeps exactly the stages named.
case_auto_routing() {
	for s in exportd inspectd checkpointd; do
		[ -x "$BIN/mlsec-$s" ] || { echo "no mlsec-$s: skipped"; exit 77; }
	done
	mkdir -p "$T_DIR/in"
	cp "$HERE/../data/inspect/clean_mlp.onnx" "$HERE/../data/inspect/clean_mlp.safetensors" \
		"$HERE/../data/checkpoint/benign.pkl" "$T_DIR/in/"
	start_redis
	start_broker
	STAGE_BIN="$BIN/mlsec-exportd" start_stage export
	STAGE_BIN="$BIN/mlsec-inspectd" start_stage inspect
	STAGE_BIN="$BIN/mlsec-checkpointd" start_stage checkpoint
	start_orch --insecure-local
	# routed WANT ARGS...: the stages of the JSON report's artifacts are WANT
	routed() {
		local want=$1 got
		shift
		submit --json --quiet --timeout 60 "$@"
		[ "$RC" != 1 ] || fail "$*: $(cat "$T_DIR/err")"
		got=$(/usr/bin/python3 -c 'import json,sys
r = json.load(open(sys.argv[1]))
print(",".join(sorted({a["stage"] for a in r["artifacts"]})))' "$T_DIR/out") ||
			fail "json report: $(cat "$T_DIR/out")"
		[ "$got" = "$want" ] || fail "$*: stages $got, expected $want"
	}
	routed export,inspect "$T_DIR/in/clean_mlp.onnx"
	routed checkpoint,inspect "$T_DIR/in/clean_mlp.safetensors"
	routed checkpoint "$T_DIR/in/benign.pkl"
	# explicit stages: exactly those
	routed inspect --stages inspect "$T_DIR/in/clean_mlp.onnx"
	routed export --stages export "$T_DIR/in/clean_mlp.onnx"
}

# TOCTOU: the artifact is swapped (rename) after the service verified it
# and while the engine works: a stage ERROR (exit 1), never a clean result.
case_toctou() {
	make_fixtures
	start_redis
	start_broker
	export MLSEC_FAKE_LOG="$T_DIR/analyses"
	MLSEC_FAKE_SLOW_MS=3000 start_stage s1
	start_orch --insecure-local
	mkdir -p "$ROOT/m"
	write_file "$ROOT/m/config.pbtxt" 'name: "m"\n# SLOW\n'
	write_file "$ROOT/m/evil.tmp" 'name: "m"\n# SLOW EVIL\n'
	"$BIN/mlsec-submit" --by-reference --timeout 30 m/config.pbtxt >"$T_DIR/out" 2>"$T_DIR/err" &
	local sp=$!
	# swap once the engine is at work (it logs before its slow part)
	wait_file "$T_DIR/analyses" 20 || fail "the analysis did not start"
	mv "$ROOT/m/evil.tmp" "$ROOT/m/config.pbtxt"
	wait "$sp"
	RC=$?
	expect_rc 1
	expect_err "replaced or modified during the analysis"
	# untouched: the same slow file passes
	write_file "$ROOT/m/config2.pbtxt" 'name: "m"\n# SLOW\n'
	submit --by-reference --timeout 30 m/config2.pbtxt
	expect_rc 0
}

# Uploads: the size limit holds while streaming (nothing past it is
# written, the temporary file is gone), and stale temporary files of a
# crashed orchestrator are removed at start (fresh ones are kept).
case_upload_limits() {
	make_fixtures
	start_redis
	start_broker
	start_stage s1
	mkdir -p "$ROOT/uploads/.tmp"
	echo old >"$ROOT/uploads/.tmp/up-crashed"
	touch -d '2 hours ago' "$ROOT/uploads/.tmp/up-crashed"
	echo live >"$ROOT/uploads/.tmp/up-live"
	echo mine >"$ROOT/uploads/.tmp/notours"
	touch -d '2 hours ago' "$ROOT/uploads/.tmp/notours"
	start_orch --insecure-local --max-artifact-bytes 4096
	[ ! -e "$ROOT/uploads/.tmp/up-crashed" ] || fail "stale upload kept"
	[ -e "$ROOT/uploads/.tmp/up-live" ] || fail "live upload removed"
	[ -e "$ROOT/uploads/.tmp/notours" ] || fail "a foreign file removed"
	rm -f "$ROOT/uploads/.tmp/up-live"
	{ printf 'name: "m"\n'; head -c 300000 /dev/zero | tr '\0' '#'; printf '\n'; } \
		>"$T_DIR/in/clean/big.pbtxt"
	mv "$T_DIR/in/clean/big.pbtxt" "$T_DIR/in/clean/config.pbtxt"
	submit --timeout 20 "$T_DIR/in/clean/config.pbtxt"
	expect_rc 1
	expect_err "larger than 4096"
	n=$(find "$ROOT/uploads" -type f -name 'up-*' | wc -l)
	[ "$n" = 0 ] || fail "$n temporary upload file(s) left"
	n=$(find "$ROOT/uploads" -type f -size +4k | wc -l)
	[ "$n" = 0 ] || fail "a file past the limit was written"
}

# mlsec-poisond --gradient-stream: the stage service also runs the
# mlsec.gradients consumer in-process; both stop cleanly on SIGTERM (the
# stream checkpoints its runs), and without the flag there is no stream.
case_poisond_stream() {
	[ -x "$BIN/mlsec-poisond" ] || { echo "no mlsec-poisond: skipped"; exit 77; }
	"$BIN/mlsec-poisond" --help | grep -q -- "--gradient-stream" ||
		{ echo "mlsec-poisond built without the stream: skipped"; exit 77; }
	start_redis
	start_broker
	STAGE_BIN="$BIN/mlsec-poisond" start_stage plain
	STAGE_BIN="$BIN/mlsec-poisond" start_stage p1 --gradient-stream --warmup 5
	for _ in $(seq 100); do
		grep -q "consuming mlsec.gradients" "$T_DIR/p1.log" && break
		sleep 0.1
	done
	grep -q "consuming mlsec.gradients" "$T_DIR/p1.log" || fail "no in-process stream"
	grep -q "consuming mlsec.gradients" "$T_DIR/plain.log" && fail "stream without the flag"
	"$BIN/mlsec-submit" --health "$(cat "$T_DIR/p1.ready")" >/dev/null || fail "health"
	kill -TERM "$STAGE_PID_p1"
	wait "$STAGE_PID_p1"
	[ $? = 0 ] || fail "poisond did not exit 0: $(tail -5 "$T_DIR/p1.log")"
	grep -q "poison stream: .* messages" "$T_DIR/p1.log" || fail "the stream did not stop cleanly"
}

# Python grpcio as an independent client: Submit, Watch, Get, Upload,
# health, INVALID_ARGUMENT on garbage.
case_python_wire() {
	/usr/bin/python3 -c 'import grpc, grpc_tools' 2>/dev/null ||
		{ echo "python3-grpcio/python3-grpc-tools missing: skipped"; exit 77; }
	make_fixtures
	start_redis
	start_broker
	start_stage s1
	start_orch --insecure-local
	cp "$T_DIR/in/evil/config.pbtxt" "$ROOT/config.pbtxt"
	/usr/bin/python3 "$HERE/wire_test.py" --endpoint "$ENDPOINT" --proto-out "$T_DIR/py" \
		full config.pbtxt >"$T_DIR/py.log" 2>&1 || fail "python wire test: $(cat "$T_DIR/py.log")"
}

# Watches are capped below the gRPC worker count: health checks and Submit
# stay served while clients wait; capped Watches are retried by the client.
case_watch_cap() {
	make_fixtures
	start_redis
	start_broker
	export MLSEC_FAKE_SLOW_MS=1500
	start_stage s1
	start_orch --insecure-local --grpc-threads 6 # at most 2 Watches
	submit --timeout 30 "$T_DIR/in/clean/config.pbtxt"
	expect_rc 0
	local i pids=()
	for i in 1 2 3 4; do
		"$BIN/mlsec-submit" --quiet --timeout 60 "$T_DIR/in/slow/config.pbtxt" >/dev/null \
			2>>"$T_DIR/err.all" &
		pids+=($!)
	done
	sleep 1
	timeout 5 "$BIN/mlsec-submit" --health "$ENDPOINT" >/dev/null || fail "health starved by watches"
	for i in "${pids[@]}"; do
		wait "$i"
		[ $? = 2 ] || fail "a capped job did not finish: $(cat "$T_DIR/err.all")"
	done
}

# Two orchestrator replicas share one Redis and one results group: a job
# submitted through one is watched and read through the other.
case_orch_replicas() {
	start_redis
	start_broker
	start_stage s1
	start_orch --insecure-local
	local first=$ENDPOINT
	ORCH_PORT=
	start_orch --insecure-local
	/usr/bin/python3 "$HERE/wire_test.py" --endpoint "$first" --proto-out "$T_DIR/py" \
		replicas "$ENDPOINT" >"$T_DIR/py.log" 2>&1 || fail "replicas: $(cat "$T_DIR/py.log")"
}

# valgrind on the services' start/serve/stop path: no leaks, no errors.
case_valgrind() {
	command -v valgrind >/dev/null || { echo "valgrind missing: skipped"; exit 0; }
	make_fixtures
	start_redis
	start_broker
	local vg="valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99 \
--suppressions=$HERE/valgrind.supp --num-callers=30"
	STAGE_BIN="$BIN/mlsec-fake-tritond" ORCH_WAIT=60 ORCH_WRAP="$vg --log-file=$T_DIR/vg-orch.txt" \
		start_orch --insecure-local
	MLSEC_ARTIFACT_ROOT="$ROOT" $vg --log-file="$T_DIR/vg-stage.txt" "$BIN/mlsec-fake-tritond" \
		--grpc-listen 127.0.0.1:0 --ready-file "$T_DIR/vstage.ready" >"$T_DIR/vstage.log" 2>&1 &
	local spid=$!
	T_PIDS+=($spid)
	wait_file "$T_DIR/vstage.ready" 60 || fail "stage under valgrind did not start"
	submit --timeout 90 "$T_DIR/in/evil/config.pbtxt"
	expect_rc 2
	/usr/bin/python3 "$HERE/wire_test.py" --endpoint "$ENDPOINT" --proto-out "$T_DIR/py" \
		analyze "$(cat "$T_DIR/vstage.ready")" || fail "Analyze under valgrind"
	kill -TERM "$ORCH_PID" "$spid"
	local rc1 rc2
	wait "$ORCH_PID"
	rc1=$?
	wait "$spid"
	rc2=$?
	[ "$rc1" = 0 ] || fail "orchestrator under valgrind exited $rc1: $(grep -A30 'definitely\|Invalid' "$T_DIR/vg-orch.txt" | head -60)"
	[ "$rc2" = 0 ] || fail "stage under valgrind exited $rc2: $(grep -A30 'definitely\|Invalid' "$T_DIR/vg-stage.txt" | head -60)"
}

# The real Triton engine as a service: the shipped examples give 0 and 2.
case_real_triton() {
	[ -x "$BIN/mlsec-tritond" ] || { echo "mlsec-tritond not built: skipped"; exit 77; }
	local ex
	ex=$(cd "$HERE/../.." && pwd)/examples/triton
	[ -d "$ex/clean" ] && [ -d "$ex/hostile" ] || { echo "examples missing: skipped"; exit 77; }
	start_redis
	start_broker
	STAGE_BIN="$BIN/mlsec-tritond" start_stage t1
	start_orch --insecure-local
	submit triton "$ex/clean" --timeout 30
	expect_rc 0
	submit triton "$ex/hostile" --timeout 30
	expect_rc 2
	grep -q "TRITON-OP-LIBRARY" "$T_DIR/out" || fail "hostile report: $(cat "$T_DIR/out")"
	# the same verdicts as the in-process CLI
	if [ -x "$BIN/mlsec" ]; then
		"$BIN/mlsec" triton "$ex/hostile" >/dev/null 2>&1
		[ $? = 2 ] || fail "mlsec triton disagrees"
	fi
}

"case_$1"
echo "PASS: $1"
