"""The LSTM under its historical names: :class:`models.sequence.SequenceModel` with ``net="lstm"`` (the default).

The main job and older callers import ``LstmConfig``/``LstmModel``; every net shares one class.
"""

from __future__ import annotations

from models.sequence import METADATA_FILE, WEIGHTS_FILE, FitReport, ModelMetadata, code_version
from models.sequence import SequenceConfig as LstmConfig
from models.sequence import SequenceModel as LstmModel

__all__ = ["METADATA_FILE", "WEIGHTS_FILE", "FitReport", "LstmConfig", "LstmModel", "ModelMetadata", "code_version"]
