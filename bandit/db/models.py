"""Tables of the loop: catalog, people, configs, decisions, reviews, outcomes, model versions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: SQLite keeps no zone, PostgreSQL would convert."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """The current time, aware and in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class CatalogItem(Base):
    __tablename__ = "catalog_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[str] = mapped_column(String(128), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    category: Mapped[str] = mapped_column(String(100), index=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    embedding: Mapped[list[Any] | None] = mapped_column(nullable=True)
    price: Mapped[float | None] = mapped_column(Float, nullable=True)
    stock: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # An http(s) URL or a path under the media folder; None: the console draws a picture.
    image_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), unique=True)
    profile: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Curator(Base):
    __tablename__ = "curators"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(20), default="curator")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiClient(Base):
    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A token bound to a curator may use the review API, acting as that curator.
    curator_id: Mapped[int | None] = mapped_column(ForeignKey("curators.id"), nullable=True)


class PolicyConfigRow(Base):
    __tablename__ = "policy_configs"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column()
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(80), default="system")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    policy_config_id: Mapped[int] = mapped_column(ForeignKey("policy_configs.id"))
    vw_arguments: Mapped[str] = mapped_column(Text)
    examples_learned: Mapped[int] = mapped_column(Integer, default=0)
    examples_total: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str] = mapped_column(String(300), default="")
    model_bytes: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The approval model trained in the same pass, and its calibration, metrics, threshold.
    approval_bytes: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    approval_state: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)


class Decision(Base):
    """One request and the policy's own proposal for it, exactly as the policy made it."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True)
    api_client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"), nullable=True)
    context: Mapped[dict[str, Any]] = mapped_column()
    exclude: Mapped[list[Any]] = mapped_column(default=list)
    # Every candidate with P(candidate), the policy's full pmf and its score, in VW's order.
    candidates: Mapped[list[Any]] = mapped_column()
    # Per slate position, the policy's pmf over the candidates still available there.
    position_pmfs: Mapped[list[Any]] = mapped_column(default=list)
    uncertainty: Mapped[dict[str, Any]] = mapped_column()
    route: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), index=True)
    policy_config_id: Mapped[int] = mapped_column(ForeignKey("policy_configs.id"))
    policy_name: Mapped[str] = mapped_column(String(120))
    policy_version: Mapped[int] = mapped_column(Integer)
    model_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)
    reward_due_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)
    # When the default-reward pass dealt with the event once its wait ran out: gave it the
    # default, or found every delivered item answered and gave none. The pass skips it after.
    default_pass_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # What went out, written once at delivery and never changed (bandit.services.delivery):
    # [{"position", "item_id", "decided_by", "replaced_item_id"}, ...] in position order.
    delivered_slate: Mapped[list[Any] | None] = mapped_column(nullable=True)
    # Risk-controlled routing: P(curator keeps the slate), the threshold in force, and whether
    # this was a random audit of an auto-eligible slate, drawn with `audit_probability`.
    approval_probability: Mapped[float | None] = mapped_column(Float, nullable=True)
    auto_threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    audit: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    audit_probability: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    # Which job its verdicts do for the approval model (vocabulary.ApprovalRole).
    approval_role: Mapped[str] = mapped_column(String(12), default="train", server_default="train")
    # A Personalizer event ranked with deferActivation, not activated yet: no reward wait runs
    # and no reward is taken, whenever its slate goes out.
    awaiting_activation: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )

    proposed: Mapped[list[ProposedItem]] = relationship(
        back_populates="decision", order_by="ProposedItem.position", cascade="all, delete-orphan"
    )
    final_slate: Mapped[list[FinalSlateItem]] = relationship(
        order_by="FinalSlateItem.id", cascade="all, delete-orphan"
    )


class ProposedItem(Base):
    """One position of the policy's slate, with the probabilities needed to learn and replay."""

    __tablename__ = "proposed_items"
    __table_args__ = (UniqueConstraint("decision_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    item_id: Mapped[str] = mapped_column(String(128))
    # P(item entered the candidates) x P(policy chose it at this position | candidates).
    probability: Mapped[float] = mapped_column(Float)
    candidate_probability: Mapped[float] = mapped_column(Float)
    position_probability: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    explored: Mapped[bool] = mapped_column(Boolean)
    # Why the engine proposed it: [[reason code, number], ...] (vocabulary.ReasonCode).
    reasons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # The few features that moved this item's score most: [{"feature", "weight"}, ...].
    why: Mapped[list[Any] | None] = mapped_column(nullable=True)

    decision: Mapped[Decision] = relationship(back_populates="proposed")


class FinalSlateItem(Base):
    """The curated slate, item by item: kept, removed, swapped out or swapped in."""

    __tablename__ = "final_slate_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    item_id: Mapped[str] = mapped_column(String(128))
    tag: Mapped[str] = mapped_column(String(20))
    decided_by: Mapped[str] = mapped_column(String(20))
    replaced_item_id: Mapped[str | None] = mapped_column(String(128), nullable=True)


class ReviewTask(Base):
    """A decision waiting for, held by, or reviewed by a curator.

    Round 1 settles the slate; round 2, for double-reviewed decisions, is an independent
    second opinion by another curator, kept only to measure agreement.
    """

    __tablename__ = "review_tasks"
    __table_args__ = (
        UniqueConstraint("decision_id", "review_round", name="uq_review_tasks_decision_round"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"))
    review_round: Mapped[int] = mapped_column(Integer, default=1)
    route: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    # The value of the config's uncertainty measure (1 = most uncertain) at decision time.
    priority: Mapped[float] = mapped_column(Float, default=0.0)
    measure_name: Mapped[str] = mapped_column(String(40), default="")
    # Aging order: the creation time moved earlier by measure x SLA; smallest is served first.
    queue_key: Mapped[float] = mapped_column(Float, default=0.0)
    due_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # The client's rank fallback: deliver the policy's slate unreviewed if still open by then.
    fallback_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # Set when the task missed the curators' capacity, SLA or the client's fallback time: an
    # `Overflow` value ("delivered_unreviewed", "held", "client_fallback", "closed_unreviewed",
    # "check_overdue").
    overflow: Mapped[str | None] = mapped_column(String(30), nullable=True)
    curator_id: Mapped[int | None] = mapped_column(ForeignKey("curators.id"), nullable=True)
    lease_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    leased_until: Mapped[datetime | None] = mapped_column(nullable=True)
    # The current lease's start ("held since": the console caps the review time by it); every
    # claim and an undo set it anew. The first claim, kept through releases, lease expiries
    # and undos, is when the review started: the event's in_review step.
    claimed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    first_claimed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # Review time of this task's submits since undone, by `withdrawn_by`: the verdicts went,
    # the time was spent. That curator's next submit of the task adds it to its own seconds
    # and clears both, so every total of review time counts it once. A task given back after
    # an undo and finished by a colleague, or closed unreviewed, keeps it here only.
    withdrawn_seconds: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    withdrawn_by: Mapped[int | None] = mapped_column(
        ForeignKey("curators.id", name="fk_review_tasks_withdrawn_by"), nullable=True
    )
    completed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    decision: Mapped[Decision] = relationship()


class TaskSkip(Base):
    """A curator skipped a task: their "next" serves it only after every other waiting task."""

    __tablename__ = "task_skips"
    __table_args__ = (UniqueConstraint("task_id", "curator_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("review_tasks.id"))
    curator_id: Mapped[int] = mapped_column(ForeignKey("curators.id"))
    skipped_at: Mapped[datetime] = mapped_column(default=utcnow)


class CuratorAction(Base):
    """A curator's verdict on one proposed position."""

    __tablename__ = "curator_actions"
    __table_args__ = (UniqueConstraint("task_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("review_tasks.id"), index=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"), index=True)
    curator_id: Mapped[int] = mapped_column(ForeignKey("curators.id"))
    position: Mapped[int] = mapped_column(Integer)
    item_id: Mapped[str] = mapped_column(String(128))
    verdict: Mapped[str] = mapped_column(String(20))
    replacement_item_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reason: Mapped[str] = mapped_column(String(500), default="")
    seconds_spent: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    learned_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)
    # A second (gold) review's verdict: stored for agreement only, never learned or delivered.
    agreement_only: Mapped[bool] = mapped_column(Boolean, default=False)


class Outcome(Base):
    """A delayed reward from a client, or the config's default when none came in time."""

    __tablename__ = "outcomes"
    # item_key is "" for an event-level reward, so the pair is unique on every backend.
    __table_args__ = (UniqueConstraint("decision_id", "item_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"), index=True)
    item_key: Mapped[str] = mapped_column(String(128), default="")
    value: Mapped[float] = mapped_column(Float)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    # A real reward that arrived after the default was learned: kept for the record only.
    after_default: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # False when the reward was processed but not given to VW (e.g. on a curator's swap-in).
    fed_to_policy: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    learned_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)


class ImitationExample(Base):
    """A human's own choice for one slate position, to be imitated, never propensity-weighted.

    Written for curator swap-ins (the curator inserted an item the policy did not pick) and
    for every position of an apprentice-mode decision. Kept apart from the logged policy
    choices so that replay and off-policy evaluation never mistake it for a bandit draw.
    """

    __tablename__ = "imitation_examples"
    __table_args__ = (UniqueConstraint("decision_id", "position", "source"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    # "swap_in" or "apprentice".
    source: Mapped[str] = mapped_column(String(20))
    chosen_item_id: Mapped[str] = mapped_column(String(128))
    policy_item_id: Mapped[str] = mapped_column(String(128))
    matched: Mapped[bool] = mapped_column(Boolean)
    # The items the human chose among: the candidates open at this position, plus the choice.
    offered_item_ids: Mapped[list[Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    learned_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)


Index("ix_decisions_approval_role", Decision.approval_role, Decision.id)
Index("ix_task_skips_curator", TaskSkip.curator_id, TaskSkip.skipped_at)
Index("ix_review_tasks_queue", ReviewTask.status, ReviewTask.priority)
Index("ix_review_tasks_aging", ReviewTask.status, ReviewTask.queue_key)
# Upkeep on every claim looks for open tasks past their SLA: a range scan, not all open tasks.
Index("ix_review_tasks_due", ReviewTask.status, ReviewTask.due_at)


class SlateVerification(Base):
    """A check of a delivered slate: overturned (corrected) or reinstated.

    Written by a verify-after review (a review-after task) and by the review after an undo
    of a review-before submit, whose slate stayed delivered; the task's route tells them apart.
    """

    __tablename__ = "slate_verifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"), index=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("review_tasks.id"), unique=True)
    curator_id: Mapped[int] = mapped_column(ForeignKey("curators.id"))
    outcome: Mapped[str] = mapped_column(String(20))
    # Item ids by position: what the customer had, and what the curator's correction delivers.
    delivered_before: Mapped[list[Any]] = mapped_column()
    delivered_after: Mapped[list[Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """One curator, admin or API action, kept for the admins' audit log."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    curator_id: Mapped[int | None] = mapped_column(ForeignKey("curators.id"), nullable=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(60), index=True)
    target: Mapped[str] = mapped_column(String(200), default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class SystemState(Base):
    """Small counters shared by every process, such as the catalog revision."""

    __tablename__ = "system_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class SlateCorrection(Base):
    """A review-after verdict that overturns a delivered slate: what should replace what.

    The delivery itself is never rewritten; the client decides what to do with a correction
    (send a replacement, apologise, nothing).
    """

    __tablename__ = "slate_corrections"

    id: Mapped[int] = mapped_column(primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"), index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("review_tasks.id"), nullable=True)
    curator_id: Mapped[int | None] = mapped_column(ForeignKey("curators.id"), nullable=True)
    # [{"position", "action", "item_id", "replacement_item_id"}, ...] (vocabulary.CorrectionAction).
    changes: Mapped[list[Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EventChange(Base):
    """The outbox: one row per change a client may hear about, written with the change itself.

    The webhook worker fans each row out to the endpoints subscribed to its kind and marks it
    dispatched; rank writes at most one row, so the outbox costs it one insert.
    """

    __tablename__ = "event_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"), index=True)
    event_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(20))
    payload: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(nullable=True)


class WebhookEndpoint(Base):
    """A client's URL that receives signed event changes of the kinds it subscribed to."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[Any]] = mapped_column()
    # Kept in clear: the worker needs it to sign; shown to the client once, at creation.
    secret: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(80), default="system")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event change owed to one endpoint, retried until delivered or given up."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("endpoint_id", "change_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Sent with every attempt and replay: the receiver's key for dropping duplicates.
    delivery_id: Mapped[str] = mapped_column(String(64), unique=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"), index=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("event_changes.id"))
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # `attempts` when last replayed: the backoff counts the attempts since (the total and the
    # attempt log are kept for the record).
    attempts_before_replay: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    give_up_at: Mapped[datetime] = mapped_column()
    last_error: Mapped[str] = mapped_column(String(500), default="")
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookAttempt(Base):
    """One HTTP attempt of a delivery: when, how long, and what came back."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column()
    duration_ms: Mapped[float] = mapped_column(Float)
    http_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str] = mapped_column(String(500), default="")


Index("ix_event_changes_undispatched", EventChange.dispatched_at, EventChange.id)
Index("ix_webhook_deliveries_due", WebhookDelivery.status, WebhookDelivery.next_attempt_at)


class PersonalizerEvent(Base):
    """How a decision made through the Personalizer-compatible API is to be read back.

    Multi-slot ranks keep their slot ids in slate order (slot i is slate position i). A
    deferred event waits for the client's activate call: until then no default reward is due
    and client rewards are refused, so an event the customer never saw is never learned.
    """

    __tablename__ = "personalizer_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"), unique=True)
    slot_ids: Mapped[list[Any] | None] = mapped_column(nullable=True)
    deferred: Mapped[bool] = mapped_column(Boolean, default=False)
    activated_at: Mapped[datetime | None] = mapped_column(nullable=True)


class RiskThreshold(Base):
    """An auto threshold chosen by a learn pass, with the evidence behind its bound."""

    __tablename__ = "risk_thresholds"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_version: Mapped[int] = mapped_column(Integer, index=True)
    # None: too little evidence, nothing is automated.
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    target: Mapped[float] = mapped_column(Float)
    confidence_level: Mapped[float] = mapped_column(Float)
    evidence: Mapped[int] = mapped_column(Integer)
    n: Mapped[int] = mapped_column(Integer)
    overrides: Mapped[int] = mapped_column(Integer)
    # None: no threshold could be tested (no calibrated approval model, too little evidence).
    rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    bound: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Share of the window's decisions that the threshold would deliver automatically.
    projected_automation: Mapped[float | None] = mapped_column(Float, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ReviewLesson(Base):
    """What one learn pass's curator feedback changed: an item that rose or fell on the probes."""

    __tablename__ = "review_lessons"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_version: Mapped[int] = mapped_column(Integer, index=True)
    # None: all curators together; else the curator whose verdicts touched the item.
    curator_id: Mapped[int | None] = mapped_column(ForeignKey("curators.id"), nullable=True)
    item_id: Mapped[str] = mapped_column(String(128))
    # Change of the item's mean expected reward on the probe contexts (see details["measure"]).
    change: Mapped[float] = mapped_column(Float)
    verdicts: Mapped[int] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
