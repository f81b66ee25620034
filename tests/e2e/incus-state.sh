#!/usr/bin/env bash
# A stand-in `incus` that answers deploy.sh's reads from a directory describing the
# server, for tests/scale.rs. No Incus server is involved.
#
# $AK_STATE holds (every file is optional; what is absent does not exist):
#   query/FILE     what `incus query PATH` prints, FILE being PATH with each of / ? & =
#                  written _ (tests/common/listing.rs makes them from a plan); a listing
#                  (`?recursion=1`) that has no file is empty
#   agents         rows of `incus list type=virtual-machine --all-projects --format csv
#                  --columns e,n,N` (project,name,processes)
# `image info` always answers with a virtual-machine image; `list ^NAME$` (a status
# poll) answers RUNNING; an `exec` (an agent probe) succeeds; any other `get` or `show`
# finds nothing. Anything else is a change: it succeeds, and is also appended to
# $AK_STATE/mutations. Every call is appended to $AK_STATE/calls, one line each,
# arguments joined by spaces.
set -u
state=${AK_STATE:?AK_STATE must be set}
printf '%s\n' "$*" >>"$state/calls"

words=()
method=GET
while (($# > 0)); do
  case $1 in
    -X) method=${2:-}; shift 2 ;;
    --project | --format | --columns | -d) shift 2 ;;
    -*) shift ;;
    *) words+=("$1"); shift ;;
  esac
done

case "$method ${words[0]:-} ${words[1]:-}" in
  "GET query /1.0")
    printf '{\n\t"api_extensions": [\n\t\t"network_acl",\n\t\t"network_bridge_acl"\n\t],\n\t"environment": {\n\t\t"firewall": "nftables"\n\t}\n}\n'
    exit 0
    ;;
  "GET query /1.0/"*)
    file=$state/query/${words[1]//[\/?&=]/_}
    if [[ -f $file ]]; then
      cat "$file"
    elif [[ ${words[1]} == *recursion=1* ]]; then
      echo '[]'
    else
      exit 1
    fi
    exit 0
    ;;
  "GET list type=virtual-machine")
    [[ ! -f $state/agents ]] || cat "$state/agents"
    exit 0
    ;;
  "GET list "*)
    echo RUNNING
    exit 0
    ;;
  "GET exec "*) exit 0 ;;
  "GET image info")
    printf 'Fingerprint: 0123456789abcdef\nType: virtual-machine\n'
    exit 0
    ;;
esac
# Any other read (a device's options, an instance's config) finds nothing.
case "${words[1]:-} ${words[2]:-}" in
  "get "* | "show "* | "device get") exit 1 ;;
esac
printf '%s\n' "${words[*]}" >>"$state/mutations"
exit 0
