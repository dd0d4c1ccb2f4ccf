"""Outgoing webhooks: Standard Webhooks signing, the HTTP sender and the retry schedule."""
