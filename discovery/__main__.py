"""`python -m discovery` runs the CLI."""

from discovery.cli import main

main()
