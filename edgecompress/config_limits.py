"""The upper limits of the recipe's numeric fields.

Every number in a recipe has a lower and an upper bound, and floats must be finite (``StageConfig``), so a
typo (an extra digit, ``.inf``, a 22-digit seed) is a schema error naming the field instead of an overflow
inside torch, NumPy or ONNX Runtime after the teacher has trained. The limits sit far above any real job;
``tests/test_bad_input.py`` fails when a numeric field has no bound.
"""

from __future__ import annotations

SEED_MAX = 2**32 - 1  # the range NumPy's (and so Accelerate's) seeding accepts
MAX_COUNT = 10**9  # examples, samples, steps, batches, runs
MAX_WIDTH = 65_536  # hidden sizes, filters, ranks, group sizes
MAX_LAYERS = 256
MAX_TOKENS = 4096  # tokens of one input
MAX_EPOCHS = 10_000
MAX_FACTOR = 1e6  # loss weights, temperatures, tolerances, norms, thresholds
MAX_THREADS = 1024
MAX_MEMORY_MB = 2**20  # 1 TiB
MAX_REPEATS = 1000  # augmented copies per example, pruning steps
