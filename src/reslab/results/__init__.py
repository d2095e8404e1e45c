"""Results: reading sweep directories, the tables with their statistics, the figures and the report."""
