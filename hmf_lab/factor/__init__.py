"""Layer 1, pure math: decompositions and their results, the size rules, split heuristics, the exhaustive
oracle and synthetic matrices. Imports torch, numpy and pandas only; nothing else of hmf_lab."""
