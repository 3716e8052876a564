"""The peers: servers a user would pick instead of churn-serving, each in its own environment."""
