"""``python -m farmops_client.cli``: the same command line as ``farmops``."""

from farmops_client.cli import main

if __name__ == "__main__":
    main()
