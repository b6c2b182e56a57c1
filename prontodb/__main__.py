"""``python -m prontodb`` runs the CLI."""

from prontodb.cli import main

main()
