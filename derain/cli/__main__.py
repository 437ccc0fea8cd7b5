"""`python -m derain.cli` (used by torchrun for multi-GPU training)."""

from . import main

if __name__ == "__main__":
    main()
