#!/usr/bin/env bash
# The main job on the bundled real examples: init -> ingest --seal -> witness -> verify ->
# package (signed for the chain of custody by a responder's custodian key) -> verify the
# bundle. Everything goes under ./out (the store, the bundle), ./out/keys (the private keys,
# which never live inside the store) and ./out/witness-host (the witness's key and state,
# which belong on another machine). Run from the repository root.
set -euo pipefail

out="${1:-out}"
rm -rf "$out"
mkdir -p "$out"
export ACDKIT_KEY_DIR="$out/keys"

acdkit init "$out/store" --org example
acdkit ingest "$out/store" examples/zeek-tsv/*.log examples/zeek-json/*.log --seal
witness_vkey=$(acdkit witness init --key "$out/witness-host/witness.key" --name witness.example/ci)
acdkit witness "$out/store" --key "$out/witness-host/witness.key" \
  --state "$out/witness-host/state.json" --log-key "$out/store/keys/sealer.vkey"
acdkit verify "$out/store" --witness "$witness_vkey"
acdkit keys new --role custodian --name responder@example.org --store "$out/store" \
  --out "$out/keys/responder.key"
acdkit package "$out/store" --incident EXAMPLE-1 \
  --from 2013-09-15T00:00:00Z --to 2020-05-02T00:00:00Z --out "$out/bundle-EXAMPLE-1" \
  --custodian-key "$out/keys/responder.key" --recipient nisc.example.jp
acdkit verify "$out/bundle-EXAMPLE-1" --key "$out/store/keys/sealer.vkey" \
  --witness "$witness_vkey" --custodian "$out/store/keys/custodians.vkey"
echo "done: store in $out/store, bundle in $out/bundle-EXAMPLE-1 (summary/summary.md)"
