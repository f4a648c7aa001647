"""The library behind the scripts in benchmarks/: studies that run on top of a finished pipeline
(peers, distillation ablations, the roofline). They may use the whole pipeline; nothing in the stage
packages imports them."""
