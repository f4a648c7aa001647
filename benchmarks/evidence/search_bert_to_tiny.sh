#!/usr/bin/env bash
# The search issue's first evidence, on an otherwise idle machine (nothing else may train or time on its cores):
# the 12-trial search on bert_to_tiny within 1.0 validation point, its cost, then `edgecompress run` of the
# chosen recipe (its report shows the test figures and how the point was chosen). Each search's outputs are
# kept under <run>/search-kept/<label>/ because the next search writes the same search/ files.
#   [SEEDS=7,1234] bash benchmarks/evidence/search_bert_to_tiny.sh [MAX_DROP] [OBJECTIVE]
# With SEEDS, the chosen point is then trained from those seeds too (benchmarks/frontier.py --seeds) and measured
# beside the teacher and bert_to_tiny's hand-picked 70% artifact in one interleaved run.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd); cd "$REPO"
EC=.venv/bin/edgecompress; PY=.venv/bin/python
DROP=${1:-1.0}; OBJ=${2:-latency}; LABEL="$OBJ-$DROP"; RUN=runs/bert_to_tiny
/usr/bin/time -f "search wall time: %e s" "$EC" search recipes/bert_to_tiny.yaml --max-drop "$DROP" \
  --objective "$OBJ" --trials 12 2>&1 | tee "/tmp/search-$LABEL.log" | grep -E "^\[search|wall time|^\|"
rc=${PIPESTATUS[0]}
echo "search exit code: $rc (1: no trial within the budget)"
mkdir -p "$RUN/search-kept/$LABEL"
cp "$RUN"/search/{trials.csv,trials.json,search.md,pareto.png,chosen.json} "$RUN/search-kept/$LABEL/" 2>/dev/null
$PY benchmarks/search_cost.py recipes/bert_to_tiny.yaml --max-drop "$DROP" --objective "$OBJ" \
  | tee "$RUN/search-kept/$LABEL/cost.md"
HAND=runs/hand-picked-70/pruned-int8-dynamic-int4emb   # bert_to_tiny's own final artifact, kept before
if [ ! -f "$HAND/model.onnx" ] && [ -f "$RUN/models/pruned-int8-dynamic-int4emb/model.onnx" ]; then
  mkdir -p "$(dirname "$HAND")"; cp -a "$RUN/models/pruned-int8-dynamic-int4emb" "$HAND"  # chosen.yaml rebuilds pruned/
fi
if [ -f "$RUN/search/chosen.yaml" ]; then
  cp "$RUN/search/chosen.yaml" "$RUN/search-kept/$LABEL/"
  /usr/bin/time -f "run of chosen.yaml: %e s" "$EC" run "$RUN/search/chosen.yaml" 2>&1 | tail -25
  cp "$RUN/report.md" "$RUN/search-kept/$LABEL/report.md"
  if [ -n "${SEEDS:-}" ]; then  # the chosen point over more training seeds, beside the hand-picked point
    FINAL=$($PY -c "import sys; from edgecompress.recipe import load_recipe; v = load_recipe(sys.argv[1]).quantization.variants[0]; print(f'{v.apply_to[0]}-{v.name}')" "$RUN/search/chosen.yaml")
    /usr/bin/time -f "frontier with seeds $SEEDS: %e s" $PY benchmarks/frontier.py "$RUN/search/chosen.yaml" \
      --final "$FINAL" --seeds "$SEEDS" --also "hand-picked-70=$HAND" 2>&1 | grep -v '^\[' | tee "$RUN/search-kept/$LABEL/frontier.md"
  fi
fi
