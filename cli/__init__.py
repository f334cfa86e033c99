"""The ``cryptolake`` command: the application layer on top of every package."""
