"""Layer 2, torch modules: the compressed ``nn.Linear`` and ``nn.LSTM`` look-alikes, their recurrent loops and
``compress`` (swap a model's layers by a registered method). Builds on :mod:`hmf_lab.factor` only."""
