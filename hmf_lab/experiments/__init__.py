"""Layer 5, experiments: the cell pipeline and grid, bench, report, leaderboard and the trade-off tables.
Return data (tables, results); the course layer plots them. Builds on every layer below, never on the course.

- :mod:`~hmf_lab.experiments.pipeline`: the one pipeline, :func:`~hmf_lab.experiments.pipeline.run_cell`
  (one cell = one model: compress, fine-tune or train, prune gradually, sparsify, evaluate; post or scratch),
  its budgets from the task's settings (:meth:`hmf_lab.nlp.tasks.Task.settings`), its method decisions
  from the method registry (:mod:`hmf_lab.nn.methods`);
- :mod:`~hmf_lab.experiments.grid`: cells x seeds through joblib / Dask, summaries with a noise mark;
- :mod:`~hmf_lab.experiments.runs`: a long run's results folder (keyed cells, resume, no silent overwrite);
- :mod:`~hmf_lab.experiments.reproduce`: ``hmf-lab reproduce`` and the timed single post-training run;
- :mod:`~hmf_lab.experiments.tables`: the one markdown table writer;
- :mod:`~hmf_lab.experiments.posttrain`: post-training compression of a shipped model (calibration draws as
  seeds, no fine-tuning), every method side by side, paired against LMF and OATS;
- ``bench``, ``report`` (with :func:`~hmf_lab.experiments.report.outlier_profile`), ``leaderboard``, ``tradeoff``;
  ``_args``: the CLI's argument types.
"""
