"""The Kubernetes client the executors and the operator share (aiohttp, paged lists, bounded retries)."""
