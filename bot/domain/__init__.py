"""Plain data shared by services, store and views: runs, deploys, A/B, CI cards. No I/O."""
