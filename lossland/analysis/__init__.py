"""Reading sweeps, for any study: what a sweep varied and its runs grouped by setting, seeds aggregated."""
