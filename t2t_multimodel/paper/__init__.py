"""The paper's tables in miniature: the runs, their tables and plots."""
