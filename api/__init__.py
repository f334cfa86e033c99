"""The dashboard and control API: FastAPI under ``/api/v1``, users in a database, secure by default.

It sits beside ``dags`` under ``cli``: it reads the trading store and the lake, and sends controls to the
trading node; nothing below imports it.
"""
