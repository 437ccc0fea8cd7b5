"""The default model's name, in a module that imports nothing (the CLI reads it before torch)."""

__all__ = ["DEFAULT_MODEL"]

#: The model used when none is named (``Deraining()``, ``derain``, ``derain serve``). The
#: evidence (``danet`` version 5, ``danet-plus`` version 4): the two are level on the mean over
#: the validation sets (28.061 against 28.064 dB) and ``danet`` runs 1.45× faster on a CPU;
#: ``danet-plus`` leaves less rain on the 21 real photos (0.562 against 0.584) with the same
#: texture loss: the documented choice for real rain when time allows (README, "Which model").
DEFAULT_MODEL = "danet"
