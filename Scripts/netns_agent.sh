#!/usr/bin/env bash
# Open MPI's remote launcher for "hosts" that are network namespaces on this machine (see README, "Several processes
# (MPI)"): mpirun calls `netns_agent.sh HOST COMMAND...` as it would call ssh; the command runs in the namespace named
# in NETNS_HOSTS (a space-separated list of ADDRESS=NAMESPACE pairs), with its own host name (the namespace's name).
set -euo pipefail
host=$1; shift
for pair in ${NETNS_HOSTS:?set NETNS_HOSTS to ADDRESS=NAMESPACE pairs}; do
    if [ "${pair%%=*}" = "$host" ]; then
        ns=${pair#*=}
        exec ip netns exec "$ns" unshare --uts sh -c "hostname $ns; $*"
    fi
done
echo "netns_agent.sh: no namespace for host $host (NETNS_HOSTS=$NETNS_HOSTS)" >&2
exit 1
