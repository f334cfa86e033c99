"""Models: point-in-time training sets (DuckDB), torch networks, training wrappers, evaluation, scoring.

``dataset`` reads ``sql/training_set.sql``; ``nets`` holds the nn.Modules; ``lstm`` is the
fit/predict/save/load wrapper; ``splits``/``windows`` prepare data without leakage;
``evaluate``/``baselines``/``calibration`` report; ``scoring`` turns predictions into signals.
"""
