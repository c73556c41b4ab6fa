"""One router per resource: classify / analyze, jobs, models and admin, health and metrics."""
