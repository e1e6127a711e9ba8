"""Analysis of run records: phases, plots, tables."""
