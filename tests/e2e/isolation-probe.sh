# Reachability probes for tests/isolation_incus.rs, run by busybox sh inside a test
# container (`incus exec NAME -- sh -c "$(cat this)" probe TARGET...`), on the host
# and in the test's network namespace (`busybox sh -c ...`).
#
# A TARGET is ADDRESS:PORT (a TCP connection: `busybox nc`, which exits 0 once the
# peer accepted and closed) or icmp:ADDRESS (one `busybox ping`). All targets are
# probed at once; each prints one line, `open TARGET` or `closed TARGET`, then the
# script prints `end`. A target without a line (an `incus exec` that lost its output)
# is for the caller to probe again: it is neither open nor closed.
for target in "$@"; do
    (
        case $target in
            icmp:*)
                if busybox ping -c 1 -W 1 "${target#icmp:}" >/dev/null 2>&1; then
                    echo "open $target"
                else
                    echo "closed $target"
                fi
                ;;
            *)
                if busybox timeout 3 busybox nc -w 1 "${target%:*}" "${target##*:}" </dev/null >/dev/null 2>&1; then
                    echo "open $target"
                else
                    echo "closed $target"
                fi
                ;;
        esac
    ) &
done
wait
echo end
