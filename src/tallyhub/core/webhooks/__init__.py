"""Outbound webhooks, for any domain: an outbox written in the transaction of the data it
reports, Standard Webhooks signatures, deliveries on a retry schedule with every attempt
kept, and the API to read, resend and manage endpoints."""

from tallyhub.core.webhooks.delivery import SCHEDULE, deliver_due
from tallyhub.core.webhooks.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)
from tallyhub.core.webhooks.outbox import Outcome, enqueue, ensure_endpoint, on_outcome
from tallyhub.core.webhooks.signing import InvalidSignature, new_secret, sign, verify

__all__ = [
    "SCHEDULE",
    "InvalidSignature",
    "Outcome",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookMessage",
    "deliver_due",
    "enqueue",
    "ensure_endpoint",
    "new_secret",
    "on_outcome",
    "sign",
    "verify",
]
