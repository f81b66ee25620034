#!/usr/bin/env bash
# A simulated `incus` for the VM wait tests of tests/e2e_incus.rs: no Incus server is
# involved. VMs cannot run on the test machines (no KVM, no vhost_vsock), so the
# boot and agent waits of deploy.sh are exercised against this stand-in instead.
#
# It behaves as an empty server on which every change succeeds:
#   query /1.0                        a server with the network ACL extensions and nftables
#   network ACLs                      held as Incus holds them, in $AK_SIM_DIR/acls:
#                                     query -X POST -d DOC /1.0/network-acls creates one
#                                     (refused if it exists), query -X PUT -d DOC
#                                     /1.0/network-acls/NAME replaces it with DOC, query
#                                     /1.0/network-acls/NAME prints it as the incus client
#                                     does (DOC plus project and used_by: the bridges whose
#                                     security.acls names it), network acl show|delete see
#                                     the same ACLs (delete refuses one in use)
#   network create|set NAME K=V...    succeeds, but refuses (as Incus) a security.acls
#                                     naming an ACL that does not exist; network delete
#                                     forgets the bridge
#   query PATH?recursion=1...         the listings read before any change: the ACLs
#                                     above; the instances of $AK_SIM_INSTANCES (a file
#                                     as tests/common/listing.rs prints them) when set;
#                                     else nothing (an empty list)
#   list type=virtual-machine ...     simvm,sim-vm and its process count, $AK_SIM_PROCESSES
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

acls=$dir/acls
mkdir -p "$acls" "$dir/bridges"

acl_not_found() {
  echo "Error: Network ACL not found" >&2
  exit 1
}

# The bridges whose security.acls names the ACL $1, one /1.0/networks/NAME a line.
acl_users() {
  local bridge
  for bridge in "$dir/bridges"/*; do
    [[ -f $bridge ]] && grep -qxF "$1" "$bridge" && echo "/1.0/networks/${bridge##*/}"
  done
  return 0
}

acl_delete() {
  [[ -f $acls/$1 ]] || acl_not_found
  if [[ -n $(acl_users "$1") ]]; then
    echo "Error: Cannot delete an ACL that is in use" >&2
    exit 1
  fi
  rm -f "$acls/$1"
}

# network create|set NAME ARGS...: the ACLs security.acls names must exist.
bridge_acls() {
  local name=$1 arg list="" named=""
  shift
  for arg in "$@"; do
    [[ $arg == security.acls=* ]] && { named=1; list=${arg#security.acls=}; }
  done
  [[ -n $named ]] || return 0
  local acl
  IFS=, read -ra names <<<"$list"
  for acl in "${names[@]}"; do
    [[ -z $acl || -f $acls/$acl ]] || { echo "Error: Network ACL \"$acl\" does not exist" >&2; exit 1; }
  done
  printf '%s\n' "${names[@]}" >"$dir/bridges/$name"
}

case "${1:-}" in
  query)
    case "${2:-} ${3:-} ${4:-}" in
      "-X POST -d")
        if [[ ${6:-} == /1.0/network-acls ]]; then
          name=$(sed -n 's/^\t"name": "\(.*\)",\{0,1\}$/\1/p' <<<"$5")
          [[ -n $name ]] || { echo "Error: No name provided" >&2; exit 1; }
          [[ ! -f $acls/$name ]] || { echo "Error: The network ACL already exists" >&2; exit 1; }
          printf '%s' "$5" >"$acls/$name"
        fi
        exit 0
        ;;
      "-X PUT -d")
        if [[ ${6:-} == /1.0/network-acls/* ]]; then
          [[ -f $acls/${6##*/} ]] || acl_not_found
          printf '%s' "$5" >"$acls/${6##*/}"
        fi
        exit 0
        ;;
      "-X DELETE "*)
        [[ ${4:-} != /1.0/network-acls/* ]] || acl_delete "${4##*/}"
        exit 0
        ;;
      "-X "*) exit 0 ;;
    esac
    case "${2:-}" in
      /1.0) printf '{\n\t"api_extensions": [\n\t\t"network_acl",\n\t\t"network_bridge_acl"\n\t],\n\t"environment": {\n\t\t"firewall": "nftables"\n\t}\n}\n' ;;
      /1.0/network-acls/*)
        name=${2##*/}
        [[ -f $acls/$name ]] || acl_not_found
        doc=$(<"$acls/$name")
        users=$(acl_users "$name" | sed 's/.*/\t\t"&",/')
        if [[ -z $users ]]; then used='[]'; else used=$'[\n'"${users%,}"$'\n\t]'; fi
        printf '%s,\n\t"project": "default",\n\t"used_by": %s\n}\n' "${doc%$'\n}'}" "$used"
        ;;
      /1.0/network-acls\?*)
        items=()
        for file in "$acls"/*; do
          [[ -f $file ]] || continue
          name=${file##*/}
          doc=$(<"$file")
          users=$(acl_users "$name" | sed 's/.*/\t\t"&",/')
          if [[ -z $users ]]; then used='[]'; else used=$'[\n'"${users%,}"$'\n\t]'; fi
          items+=("$(printf '%s,\n\t"project": "default",\n\t"used_by": %s\n}' "${doc%$'\n}'}" "$used" | sed 's/^/\t/')")
        done
        if ((${#items[@]} == 0)); then echo '[]'; else
          joined=${items[0]}
          for item in "${items[@]:1}"; do joined+=$',\n'$item; done
          printf '[\n%s\n]\n' "$joined"
        fi
        ;;
      /1.0/instances\?*) if [[ -n ${AK_SIM_INSTANCES:-} ]]; then cat "$AK_SIM_INSTANCES"; else echo '[]'; fi ;;
      /1.0/*\?*recursion=1*) echo '[]' ;;
      /1.0/*) not_found ;;
    esac
    exit 0
    ;;
  network)
    case "${2:-} ${3:-}" in
      "acl show")
        [[ -f $acls/${4:-} ]] || acl_not_found
        mapfile -t users < <(acl_users "$4")
        printf 'name: %s\nused_by:' "$4"
        if ((${#users[@]} == 0)); then echo ' []'; else echo && printf -- '- %s\n' "${users[@]}"; fi
        exit 0
        ;;
      "acl delete")
        acl_delete "${4:-}"
        exit 0
        ;;
      "create "* | "set "*) bridge_acls "$3" "${@:4}" ;;
      "delete "*) rm -f "$dir/bridges/${3:-}" ;;
    esac
    ;;
  list)
    if [[ ${2:-} == type=virtual-machine ]]; then
      echo "simvm,sim-vm,${AK_SIM_PROCESSES:--1}"
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
