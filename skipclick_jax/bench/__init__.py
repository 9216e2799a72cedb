"""Benchmarks of the inference path (`skipclick bench`): latency per backend, per-stage breakdown, roofline,
plots. The training benchmark (`skipclick bench-train`) lives with the trainer."""
