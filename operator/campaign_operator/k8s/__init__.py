"""The Kubernetes shell around the planner: kopf handlers, the API client, applying plans."""
