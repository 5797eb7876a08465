"""``python -m platform_gateway``: the same CLI as the ``platform`` command."""

from .cli import main

if __name__ == "__main__":
    main()
