"""`python -m discovery` runs the CLI."""

from discovery.app.cli import main

main()
