"""campaign_trainer: the code every Campaign Operator trial runs (Lightning under Ray Train V2).

Heavy modules (torch, lightning, ray) are imported by ``campaign_trainer.harness`` and the tasks only,
so the pure parts (metrics, stop rules, reporters) stay cheap to import.
"""
