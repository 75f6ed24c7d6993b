"""Webhook subscriptions at `/ipt/v1/webhooks`: create, list, enable, delete, delivery log."""
