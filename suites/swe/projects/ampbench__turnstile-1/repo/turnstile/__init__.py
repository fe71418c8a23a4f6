"""turnstile: a finite-state machine with guards and hooks."""

from turnstile.machine import GuardRejected, InvalidTransition, StateMachine, Transition
from turnstile.order import Order

__all__ = ["GuardRejected", "InvalidTransition", "Order", "StateMachine", "Transition"]
