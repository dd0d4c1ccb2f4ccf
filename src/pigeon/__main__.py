"""``python -m pigeon`` runs the CLI."""

from pigeon.cli import main

main()
