"""Running a study: check, plan, hand the plan to a runner, follow it (see docs/architecture.md)."""
