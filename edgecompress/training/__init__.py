"""Training shared by teacher fine-tuning and distillation: config, batching, loop, metrics."""
