"""Architecture search with a Dirichlet prior on the structure weights (docs/nas.md, docs/studies.md#d)."""
