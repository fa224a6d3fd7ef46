"""Results of a campaign: a flat per-trial table and a self-contained HTML report."""
