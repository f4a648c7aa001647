#!/usr/bin/env bash
# The smoke recipe twice: uninterrupted (A), and killed with kill -9 during the prune stage, copied to another
# path and resumed there from another working directory (C). Then every weight/ONNX file's sha256 and every
# report row (latency aside) are compared.
set -uo pipefail
REPO=${1:-$PWD}; EC="$REPO/.venv/bin/edgecompress"; ROOT=${2:-/tmp/ev}
rm -rf "$ROOT"; mkdir -p "$ROOT/a" "$ROOT/b" "$ROOT/elsewhere/deeper"
cd "$REPO"
/usr/bin/time -f "A: %e s" "$EC" run recipes/smoke.yaml --output "$ROOT/a/smoke" > "$ROOT/a.log" 2>&1; tail -1 "$ROOT/a.log"
"$EC" run recipes/smoke.yaml --output "$ROOT/b/smoke" > "$ROOT/b.log" 2>&1 &
pid=$!
while [ ! -d "$ROOT/b/smoke/.pruned.partial" ] && kill -0 $pid 2>/dev/null; do sleep 0.5; done
sleep 3; kill -9 $pid; wait $pid 2>/dev/null
echo "killed during: $(ls -a $ROOT/b/smoke | grep partial)"
cp -a "$ROOT/b/smoke" "$ROOT/elsewhere/deeper/smoke"
cd "$ROOT/elsewhere"
/usr/bin/time -f "C (resumed after the copy): %e s" "$EC" run "$REPO/recipes/smoke.yaml" --output deeper/smoke > "$ROOT/c.log" 2>&1; tail -1 "$ROOT/c.log"
grep -E "reused|running" "$ROOT/c.log" | head -20
"$REPO/.venv/bin/python" - "$ROOT/a/smoke" "$ROOT/elsewhere/deeper/smoke" <<'PY'
import hashlib, json, sys
from pathlib import Path
a, c = map(Path, sys.argv[1:3])
def hashes(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.suffix in (".safetensors", ".onnx", ".ort") and not any(x.startswith(".") for x in p.relative_to(root).parts)}
ha, hc = hashes(a), hashes(c)
print(f"weight/ONNX/.ort files: {len(ha)} in A, {len(hc)} in C; identical: {ha == hc}")
for k in sorted(ha):
    print(f"  {ha[k][:16]} {'==' if hc.get(k) == ha[k] else '!='} {hc.get(k, 'missing')[:16]}  {k}")
keep = ("variant", "size_mb", "params", "accuracy", "f1_macro", "val_accuracy", "validation_accuracy", "val_f1_macro")
ra = [{k: r.get(k) for k in keep if k in r} for r in json.loads((a / "report.json").read_text())["rows"]]
rc = [{k: r.get(k) for k in keep if k in r} for r in json.loads((c / "report.json").read_text())["rows"]]
print(f"report rows (latency aside) identical: {ra == rc}")
for r in ra:
    print("  ", r)
PY
