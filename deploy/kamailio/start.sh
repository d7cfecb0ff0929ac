#!/usr/bin/env bash
# Starts Veil's SIP edge (Kamailio) in the foreground against a running Veil; stops on SIGTERM.
# Configured only by the environment (see "Masking on your own SIP trunk" in the README):
#   VEIL_URL         Veil's base URL, e.g. http://127.0.0.1:3000
#   VEIL_ROUTE_KEY   an API key with scope `route`
#   SIP_LISTEN       udp:IP:PORT where Kamailio listens
#   SIP_TRUNK        IP:PORT of the trunk, where calls go out (and come in from)
#   SIP_TRUNK_ALLOW  comma-separated source addresses (IP or IP:PORT) allowed to send; default SIP_TRUNK
#   RTPENGINE        rtpengine's control socket (udp:IP:PORT), where every call's media is anchored;
#                    `none` lets media flow between the two sides, each SDP naming the other's address
#   SIP_WORKERS      Kamailio's UDP workers, each waiting on Veil for one request at a time; default 4
#   SIP_RUNTIME_DIR  where Kamailio keeps its pid file; default a new temporary directory
# Arguments are passed on to kamailio (the benchmark's baseline: -A VEIL_NOT_ASKED).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

need() {
  if [ -z "${!1:-}" ]; then
    echo "$1: missing (see deploy/kamailio/start.sh)" >&2
    exit 78
  fi
}
need VEIL_URL
need VEIL_ROUTE_KEY
need SIP_LISTEN
need SIP_TRUNK
need RTPENGINE
if ! [[ "$SIP_LISTEN" =~ ^udp:([0-9.]+):([0-9]+)$ ]]; then
  echo "SIP_LISTEN: \"$SIP_LISTEN\" is not udp:IP:PORT" >&2
  exit 78
fi
listen_ip="${BASH_REMATCH[1]}"
if ! [[ "$SIP_TRUNK" =~ ^[0-9.]+:[0-9]+$ ]]; then
  echo "SIP_TRUNK: \"$SIP_TRUNK\" is not IP:PORT" >&2
  exit 78
fi
if ! [[ "$VEIL_ROUTE_KEY" =~ ^[A-Za-z0-9._~+/=-]+$ ]]; then
  echo "VEIL_ROUTE_KEY: not a key" >&2
  exit 78
fi
media=()
if [ "$RTPENGINE" = none ]; then
  echo "RTPENGINE=none: media is not anchored; each side's SDP shows the other side's media address" >&2
elif [[ "$RTPENGINE" =~ ^udp:[0-9.]+:[0-9]+$ ]]; then
  media=(-A WITH_RTPENGINE)
  export RTPENGINE
else
  echo "RTPENGINE: \"$RTPENGINE\" is neither udp:IP:PORT nor none" >&2
  exit 78
fi
workers="${SIP_WORKERS:-4}"
if ! [[ "$workers" =~ ^[1-9][0-9]?$ ]] || [ "$workers" -gt 64 ]; then
  echo "SIP_WORKERS: \"$workers\" is not a number of workers from 1 to 64" >&2
  exit 78
fi
allow="${SIP_TRUNK_ALLOW:-$SIP_TRUNK}"
runtime="${SIP_RUNTIME_DIR:-$(mktemp -d -t veil-kamailio.XXXXXX)}"

export VEIL_ROUTE_URL="${VEIL_URL%/}/v1/route"
export VEIL_STATUS_URL="${VEIL_URL%/}/webhooks/sip/status"
export VEIL_AUTH_HEADERS=$'Content-Type: application/json\r\nAuthorization: Bearer '"$VEIL_ROUTE_KEY"
# topoh writes this address into the masked Contact and Via URIs; it must not be one of ours.
export SIP_TRUNK SIP_TRUNK_ALLOW="${allow// /}" SIP_MASK_IP="${SIP_MASK_IP:-192.0.2.1}"
# Keys for topoh's masks and uac's restore: new on every start (dialogs do not outlive Kamailio).
SIP_MASK_KEY="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
SIP_RESTORE_KEY="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export SIP_MASK_KEY SIP_RESTORE_KEY

exec "${KAMAILIO:-kamailio}" -DD -E -f "$here/kamailio.cfg" -l "$SIP_LISTEN" \
  -Y "$runtime" -P "$runtime/kamailio.pid" -n "$workers" -m "${SIP_SHM_MB:-64}" -M 8 "${media[@]}" "$@"
