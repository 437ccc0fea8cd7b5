"""The default model's name, in a module that imports nothing (the CLI reads it before torch)."""

__all__ = ["DEFAULT_MODEL"]

#: The model used when none is named (``Deraining()``, ``derain``, ``derain serve``). The
#: evidence (``danet`` version 4, ``danet-plus`` version 3): ``danet`` has the higher mean over
#: the validation sets (28.05 against 27.96 dB) and runs 1.45× faster on a CPU; ``danet-plus``
#: leaves a little less rain on the 21 real photos (0.597 against 0.616) with the same texture
#: loss: the documented choice for real rain when time allows (README, "Which model").
DEFAULT_MODEL = "danet"
