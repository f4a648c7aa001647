#!/usr/bin/env bash
# The any-encoder issue's evidence, on an otherwise idle machine, after `edgecompress run recipes/mpnet_to_tiny.yaml
# -o MPNET_RUN` finished: (1) every variant and the MPNet teacher's fp32 ONNX in one interleaved run (batch 1,
# 1 thread, length 64: the size / speed / accuracy targets); (2) a 1,000-word text through the three clients;
# (3) bert_to_tiny (MiniLM-taught) from an empty folder and its final artifact beside the MPNet-taught one on the
# same examples; (4) the other student the issue names: the packaged MiniLM (its own tokenizer, the teacher
# reading its own) taught by the same fine-tuned MPNet (the data and teacher stages copied: same keys).
#   bash benchmarks/evidence/mpnet_to_tiny.sh MPNET_RUN BERT_RUN MINILM_STUDENT_RUN
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd); cd "$REPO"
EC=.venv/bin/edgecompress; PY=.venv/bin/python
MPNET=$1; BERT=$2; ALT=$3; FINAL=pruned-int8-dynamic-int4emb
echo "== (1) interleaved: every variant of $MPNET"
$PY benchmarks/frontier.py recipes/mpnet_to_tiny.yaml --output "$MPNET" --final $FINAL 2>&1 | grep -v '^\['
echo "== (2) three clients: $MPNET"
$PY benchmarks/evidence/three_clients.py "$MPNET"
echo "== (3) bert_to_tiny from an empty folder (kept when already finished): $BERT"
if [ ! -f "$BERT/report.json" ]; then
  rm -rf "$BERT"
  /usr/bin/time -f "bert_to_tiny wall time: %e s" "$EC" run recipes/bert_to_tiny.yaml -o "$BERT" 2>&1 | tail -16
fi
$PY benchmarks/teacher_compare.py "$MPNET" "$BERT" --variant $FINAL
$PY benchmarks/evidence/three_clients.py "$BERT"
echo "== (4) MPNet teaching the packaged MiniLM: $ALT"
rm -rf "$ALT"; mkdir -p "$ALT"; cp -a "$MPNET/data" "$MPNET/teacher" "$MPNET/.edgecompress-run" "$ALT/"
/usr/bin/time -f "MiniLM-student wall time: %e s" "$EC" run recipes/mpnet_to_tiny.yaml -o "$ALT" \
  --set student.model=embedded:all-MiniLM-L6-v2 --set student.hidden_size=null \
  --set student.num_attention_heads=null --set student.intermediate_size=null \
  --set student.width_init=random 2>&1 | grep -E '^\[(teacher|student)\]|wall time|^\|'
$PY benchmarks/teacher_compare.py "$MPNET" "$ALT" --variant student-fp32
$PY benchmarks/teacher_compare.py "$MPNET" "$ALT" --variant $FINAL
