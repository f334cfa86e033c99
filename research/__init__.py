"""Research on top of the trading node and the models: searches, the vectorised engine, robustness, RL.

It sits between the middle layer (``trader``, ``models``) and ``pipeline``: it may compose both, and only
``pipeline``, ``dags`` and ``cli`` may import it.
"""
