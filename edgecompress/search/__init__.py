"""``edgecompress search``: the fastest (or smallest) artifact within an accuracy budget, chosen on validation.

config.py (the recipe's ``search:`` section) -> space.py (a trial's point and the recipe pieces it builds) ->
measure.py (validation accuracy with a paired bootstrap interval, interleaved latency) -> study.py (Optuna:
storage, sampler, pruner, workers) -> results.py (trials table, Pareto plot, chosen.yaml, test figures at the
end).
"""
