#!/usr/bin/env bash
# A simulated `incus` for the VM wait tests of tests/e2e_incus.rs: no Incus server is
# involved. VMs cannot run on the test machines (no KVM, no vhost_vsock), so the
# boot and agent waits of deploy.sh are exercised against this stand-in instead.
#
# It behaves as an empty server on which every change succeeds:
#   query /1.0                        answers
#   list --project P ... (the load)   nothing exists (empty output); with
#                                     $AK_SIM_RUNNING_STAMP set, the VM sim-vm exists,
#                                     RUNNING, with that stamp
#   list type=virtual-machine ...     sim-vm and its process count, $AK_SIM_PROCESSES
#                                     (default -1: no agent reports)
#   project/network/profile/storage volume show, and every get: not found (exit 1)
#   image info                        a virtual-machine image
#   list ^NAME$ ... --columns s       STOPPED for the first $AK_SIM_BOOT_POLLS polls, then RUNNING
#   exec NAME ... -- true             fails for the first $AK_SIM_AGENT_FAILS calls, then
#                                     succeeds ("never" or a negative value: always fails)
#   anything else                     succeeds silently
# Every call is appended to $AK_SIM_DIR/calls (arguments joined by spaces), status polls
# also to $AK_SIM_DIR/polls and agent probes to $AK_SIM_DIR/execs, one line each.
set -u
dir=${AK_SIM_DIR:?AK_SIM_DIR must be set}
printf '%s\n' "$*" >>"$dir/calls"

count_lines() { if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi; }

not_found() {
  echo "Error: not found" >&2
  exit 1
}

case "${1:-}" in
  query)
    echo '{"api_version": "1.0"}'
    exit 0
    ;;
  list)
    if [[ ${2:-} == type=virtual-machine ]]; then
      echo "sim-vm,${AK_SIM_PROCESSES:--1}"
    elif [[ ${2:-} == --project && -n ${AK_SIM_RUNNING_STAMP:-} ]]; then
      echo "sim-vm,RUNNING,VIRTUAL-MACHINE,$AK_SIM_RUNNING_STAMP"
    elif [[ ${2:-} == ^* ]]; then
      echo "$2" >>"$dir/polls"
      if (($(count_lines "$dir/polls") <= ${AK_SIM_BOOT_POLLS:-0})); then echo STOPPED; else echo RUNNING; fi
    fi
    exit 0
    ;;
  exec)
    echo "$2" >>"$dir/execs"
    fails=${AK_SIM_AGENT_FAILS:-0}
    [[ $fails != never ]] || exit 1
    (( fails < 0 || $(count_lines "$dir/execs") <= fails )) && exit 1
    exit 0
    ;;
  image)
    if [[ ${2:-} == info ]]; then
      printf 'Fingerprint: 0123456789abcdef\nType: virtual-machine\nArchitecture: x86_64\n'
      exit 0
    fi
    exit 0
    ;;
esac

case "${2:-}" in
  show | get) not_found ;;
esac
case "${2:-} ${3:-}" in
  "device get" | "volume show" | "volume get") not_found ;;
esac
exit 0
