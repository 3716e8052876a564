"""churn-serving: customer-churn prediction, from training to a production web service."""
