"""Datasets: synthetic generators (default) and CSV/Parquet loaders (local path or s3://)."""
