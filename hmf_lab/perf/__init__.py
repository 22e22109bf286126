"""Layer 3, measured speed: the one timing harness (:mod:`~hmf_lab.perf.timing`) and the per-layer engine
choice by measurement (:mod:`~hmf_lab.perf.engines`). Builds on :mod:`hmf_lab.nn` and :mod:`hmf_lab.factor`."""
