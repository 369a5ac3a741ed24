"""The application: command line, run orchestration, rendering."""
