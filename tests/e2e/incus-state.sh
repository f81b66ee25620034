#!/usr/bin/env bash
# A stand-in `incus` that answers deploy.sh's reads from a directory describing the
# server, for tests/scale.rs. No Incus server is involved.
#
# $AK_STATE holds (every file is optional; what is absent does not exist):
#   list/PROJECT                      rows of `incus list --project PROJECT --format csv`
#   agents/PROJECT                    rows of `incus list type=virtual-machine --project
#                                     PROJECT --format csv --columns n,N` (name,processes)
#   project/NAME/KEY                  `incus project get NAME KEY` (KEY `description` too)
#   network/NAME/show                 `incus network show NAME`
#   network/NAME/KEY                  `incus network get NAME KEY`
#   profile/PROJECT/NAME/KEY          `incus profile get NAME KEY --project PROJECT`
#   acl/NAME                          `incus query /1.0/network-acls/NAME`
# A project, network or profile exists when its directory does; `image info` always
# answers with a virtual-machine image; `list ^NAME$` (a status poll) answers RUNNING;
# an `exec` (an agent probe) succeeds; any other `get` or `show` finds nothing.
# Anything else is a change: it succeeds, and is also appended to $AK_STATE/mutations.
# Every call is appended to $AK_STATE/calls, one line each, arguments joined by spaces.
set -u
state=${AK_STATE:?AK_STATE must be set}
printf '%s\n' "$*" >>"$state/calls"

project=default
words=()
while (($# > 0)); do
  case $1 in
    --project) project=${2:-}; shift 2 ;;
    --format | --columns) shift 2 ;;
    -*) shift ;;
    *) words+=("$1"); shift ;;
  esac
done

answer() { [[ -f $1 ]] && cat "$1"; }

case "${words[0]:-} ${words[1]:-}" in
  "query /1.0")
    printf '{\n\t"api_extensions": [\n\t\t"network_acl",\n\t\t"network_bridge_acl"\n\t],\n\t"environment": {\n\t\t"firewall": "nftables"\n\t}\n}\n'
    exit 0
    ;;
  "query /1.0/network-acls/"*) answer "$state/acl/${words[1]##*/}"; exit ;;
  "query /1.0/"*) exit 1 ;;
  "list ")
    [[ ! -f $state/list/$project ]] || cat "$state/list/$project"
    exit 0
    ;;
  "list type=virtual-machine")
    [[ ! -f $state/agents/$project ]] || cat "$state/agents/$project"
    exit 0
    ;;
  "list "*)
    echo RUNNING
    exit 0
    ;;
  "exec "*) exit 0 ;;
  "image info")
    printf 'Fingerprint: 0123456789abcdef\nType: virtual-machine\n'
    exit 0
    ;;
  "project show") [[ -d $state/project/${words[2]:-} ]]; exit ;;
  "project get") answer "$state/project/${words[2]:-}/${words[3]:-}"; exit ;;
  "network show") answer "$state/network/${words[2]:-}/show"; exit ;;
  "network get") answer "$state/network/${words[2]:-}/${words[3]:-}"; exit ;;
  "profile show") [[ -d $state/profile/$project/${words[2]:-} ]]; exit ;;
  "profile get") answer "$state/profile/$project/${words[2]:-}/${words[3]:-}"; exit ;;
esac
# Any other read (a device's options, an instance's config) finds nothing.
case "${words[1]:-} ${words[2]:-}" in
  "get "* | "show "* | "device get") exit 1 ;;
esac
printf '%s\n' "${words[*]}" >>"$state/mutations"
exit 0
