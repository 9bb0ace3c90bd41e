"""``python -m automix`` runs the command line."""

from automix.cli import main

if __name__ == "__main__":
    main()
