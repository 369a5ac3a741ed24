"""See a run: the local web explorer (`discovery ui`), the self-contained HTML report and plots."""
