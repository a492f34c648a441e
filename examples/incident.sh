#!/usr/bin/env bash
# An incident on the bundled examples, open to close: every decision signed by a custodian
# key, sealed and verified; the T+30 tickets go to a receiver on 127.0.0.1 started here (it
# stands for your ticketing system's webhook). Everything lands under ./out-incident. Run from
# the repository root; tests/test_incident_cli.py runs the same steps and checks the values.
set -euo pipefail

out="${1:-out-incident}"
rm -rf "$out"
mkdir -p "$out"
export ACDKIT_KEY_DIR="$out/keys"

# a webhook receiver on loopback: answers 201 and keeps each ticket it gets
python3 - "$out/received" <<'PY' &
import http.server, pathlib, sys, threading
dest = pathlib.Path(sys.argv[1]); dest.mkdir()
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        (dest / self.headers["X-Acdkit-Ticket-Sha256"]).write_bytes(body)
        self.send_response(201); self.end_headers(); self.wfile.write(b'{"ok": true}')
    def log_message(self, *args): pass
server = http.server.HTTPServer(("127.0.0.1", 8765), Hook)
threading.Timer(120, server.shutdown).start()
server.serve_forever()
PY
receiver=$!
trap 'kill "$receiver" 2>/dev/null || true' EXIT
sleep 1

s="$out/store"
acdkit init "$s" --org example
acdkit ingest "$s" examples/zeek-tsv/*.log examples/zeek-json/*.log --seal
acdkit keys new --role custodian --name alice@example.org --store "$s" \
  --out "$out/keys/custodian.key"
inc=(--incident INC-1)
acdkit incident open "$s" "${inc[@]}" --severity high \
  --detected 2026-10-05T14:00:00+09:00 --recognized 2026-10-05T14:20:00+09:00 \
  --first-observed 2026-10-05T13:10:00+09:00 --reason CNI-INCIDENT --reason ACD-EXTERNAL-INBOUND \
  --why "IDS alert on the OT gateway, confirmed by the on-call engineer"
acdkit classify "$s" "${inc[@]}"
acdkit incident log "$s" "${inc[@]}" --action isolate --object segment:ot-dmz \
  --at 2026-10-05T14:02:30+09:00 --why "blocked the OT DMZ at the firewall"
acdkit incident status "$s" --at 2026-10-05T14:10:00+09:00
acdkit incident ticket "$s" "${inc[@]}" --webhook http://127.0.0.1:8765/hook \
  --out "$out/tickets" --at 2026-10-05T14:28:00+09:00
acdkit seal "$s"
window=(--from 2013-09-15T00:00:00Z --to 2020-05-02T00:00:00Z)
acdkit package "$s" "${inc[@]}" "${window[@]}" --out "$out/bundle-1"
acdkit incident log "$s" "${inc[@]}" --action package --bundle "$out/bundle-1" \
  --at 2026-10-05T16:30:00+09:00 --why "technical summary and timeline ready"
acdkit incident log "$s" "${inc[@]}" --action submit --stage jp-acd/prompt \
  --at 2026-10-06T10:00:00+09:00 --why "reported to the ministry and the NCO"
acdkit incident log "$s" "${inc[@]}" --action recover --at 2026-10-06T09:00:00+09:00 \
  --why "service restored from clean images"
acdkit incident log "$s" "${inc[@]}" --action publish --object https://example.org/notice \
  --at 2026-10-07T10:00:00+09:00 --why "public statement"
acdkit incident log "$s" "${inc[@]}" --action submit --stage jp-acd/written \
  --at 2026-10-20T10:00:00+09:00 --why "written report on the common form"
acdkit incident close "$s" "${inc[@]}" --at 2026-10-21T12:00:00+09:00 --why "closed" --seal
acdkit incident status "$s" --at 2026-10-22T00:00:00+09:00
# no outside memory in a walkthrough: --local-only (in production keep --state off the
# collector, or run a witness, so that a rollback of the newest segments shows); the
# custodian keys are pinned from what the responder knows, not from the store's own list
acdkit verify "$s" --local-only --custodian "$(cat "$s/keys/custodians.vkey")"
acdkit package "$s" "${inc[@]}" "${window[@]}" --out "$out/bundle-2"
acdkit verify "$out/bundle-2" --key "$s/keys/sealer.vkey" \
  --custodian "$(cat "$s/keys/custodians.vkey")"
python3 "$out/bundle-2/tools/acdkit_verify.py" "$out/bundle-2" --key "$s/keys/sealer.vkey" \
  --custodian "$(cat "$s/keys/custodians.vkey")"
acdkit kpi "$s" --at 2026-10-22T00:00:00+09:00
echo "done: $(ls "$out/received" | wc -l) tickets received; store in $s, bundle in $out/bundle-2"
