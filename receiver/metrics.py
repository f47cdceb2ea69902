"""The receiver's own metrics, on a registry of its own."""

from prometheus_client import CollectorRegistry, Counter, Gauge


class ReceiverMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.webhook_requests = Counter(
            "fleet_receiver_webhook_requests", "Webhook requests by HTTP status code.",
            ["code"], registry=self.registry)
        self.alerts_received = Counter(
            "fleet_receiver_alerts_received", "Alerts received, by status.", ["status"],
            registry=self.registry)
        self.incidents = Gauge(
            "fleet_receiver_incidents", "Incidents by state.", ["state"], registry=self.registry)
        self.approvals_pending = Gauge(
            "fleet_receiver_approvals_pending", "Incidents waiting for an approver.",
            registry=self.registry)

        self.decisions = Counter(
            "fleet_receiver_decisions", "Approvers' decisions, by kind.", ["kind"],
            registry=self.registry)

        self.approvals_overdue = Gauge(
            "fleet_receiver_approvals_overdue", "Pending approvals past approval_timeout.",
            registry=self.registry)
        self.outbox_depth = Gauge(
            "fleet_receiver_outbox_depth", "Ticket work waiting in the outbox.",
            registry=self.registry)
        self.jira_calls = Counter(
            "fleet_receiver_jira_calls", "Calls to JIRA, by operation and result.",
            ["operation", "result"], registry=self.registry)

    def set_counts(self, by_state: dict[str, int], pending: int) -> None:
        for state in ("firing", "resolved"):
            self.incidents.labels(state).set(by_state.get(state, 0))
        self.approvals_pending.set(pending)
