"""`kubectl campaign`: the embedded mode's views, results and report, read from a cluster."""
