"""/deploy: requests, approvals, locks, deploy configs, ecspresso runs and verification on ECS."""
