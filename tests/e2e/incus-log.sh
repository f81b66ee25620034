#!/usr/bin/env bash
# A logging stand-in for `incus`, used by tests/e2e_incus.rs: the test copies it to
# DIR/bin/incus and puts DIR/bin first on PATH before running deploy.sh.
#
# Every call is appended to $AK_E2E_LOG as one record: its class, then each argument,
# separated by the ASCII unit separator (0x1f), ended by the record separator (0x1e):
# an argument may hold newlines (a value that ends in one). Then the real incus
# ($AK_E2E_REAL_INCUS) runs with the same arguments and the same standard input.
#
# Classes (tests/e2e_incus.rs `classify` is the same rule, and a test checks they agree):
#   read      list, info, query without -X or with -X GET, and the show, get, list,
#             info and get-property verbs of config/profile/network/project/storage/image
#             (and of `network acl`)
#   probe     exec (the VM agent probe: it changes nothing Incus stores)
#   mutating  everything else
#
# Fault injection, on the Nth mutating call (counted in the file $AK_E2E_COUNTER):
#   AK_E2E_FAIL_AT=N   the call does not reach Incus: it prints an error and exits 1,
#                      like a refused or lost request.
#   AK_E2E_KILL_AT=N   the call starts, and $AK_E2E_KILL_DELAY seconds later the whole
#                      process group (deploy.sh, this wrapper, the incus client) gets
#                      SIGKILL: a crash in the middle of a request. The test runs
#                      deploy.sh in its own process group.
set -u

words=()
method=""
skip=""
for arg in "$@"; do
  if [[ -n $skip ]]; then
    [[ $skip == method ]] && method=$arg
    skip=""
    continue
  fi
  case $arg in
    -X | --request) skip=method ;;
    -X* ) method=${arg#-X} ;;
    --request=*) method=${arg#--request=} ;;
    --project | --format | -f | --columns | -c | --config | -p | --profile | -d | --data | \
      --type | -t | --target | -s | --storage | -n | --network | --description) skip=value ;;
    --) break ;;
    -*) ;;
    *) words+=("$arg") ;;
  esac
done

verb_class() {
  case ${1:-} in
    list | show | get | info | get-property) echo "read" ;;
    *) echo "mutating" ;;
  esac
}

case ${words[0]:-} in
  list | info) class="read" ;;
  query) if [[ -z $method || ${method^^} == GET ]]; then class="read"; else class="mutating"; fi ;;
  exec) class="probe" ;;
  config | profile | network)
    if [[ ${words[1]:-} == device || "${words[0]} ${words[1]:-}" == "network acl" ]]; then class=$(verb_class "${words[2]:-}"); else class=$(verb_class "${words[1]:-}"); fi ;;
  storage) class=$(verb_class "${words[2]:-}") ;;
  project | image) class=$(verb_class "${words[1]:-}") ;;
  *) class="mutating" ;;
esac

if [[ -n ${AK_E2E_LOG:-} ]]; then
  {
    printf '%s' "$class"
    printf '\x1f%s' "$@"
    printf '\x1e'
  } >>"$AK_E2E_LOG"
fi

real=${AK_E2E_REAL_INCUS:-/usr/bin/incus}
if [[ $class == mutating && -n ${AK_E2E_COUNTER:-} ]]; then
  count=$(cat "$AK_E2E_COUNTER" 2>/dev/null || echo 0)
  count=$((count + 1))
  echo "$count" >"$AK_E2E_COUNTER"
  if ((count == ${AK_E2E_FAIL_AT:-0})); then
    printf 'Error: injected failure of mutating call #%s (tests/e2e/incus-log.sh)\n' "$count" >&2
    [[ -z ${AK_E2E_LOG:-} ]] || printf 'injected\x1e' >>"$AK_E2E_LOG"
    exit 1
  fi
  if ((count == ${AK_E2E_KILL_AT:-0})); then
    [[ -z ${AK_E2E_LOG:-} ]] || printf 'killed\x1e' >>"$AK_E2E_LOG"
    "$real" "$@" &
    sleep "${AK_E2E_KILL_DELAY:-0.05}"
    kill -KILL 0
  fi
fi

exec "$real" "$@"
