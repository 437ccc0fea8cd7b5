"""`python -m derain`: the same as the `derain` command."""

from .cli import main

if __name__ == "__main__":
    main()
