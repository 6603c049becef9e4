"""mlops-bot: a ChatOps bot for machine-learning teams."""
