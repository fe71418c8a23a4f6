"""The order workflow of the shop."""

from __future__ import annotations

from typing import Any, Optional

from turnstile.machine import StateMachine, Transition


def _has_address(context: dict[str, Any]) -> bool:
    return bool(context.get("address"))


TRANSITIONS = [
    Transition("created", "pay", "paid"),
    Transition("created", "cancel", "cancelled"),
    Transition("paid", "cancel", "cancelled"),
    Transition("paid", "ship", "shipped", guard=_has_address),
    Transition("shipped", "deliver", "delivered"),
]


class Order:
    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        self.address: Optional[str] = None
        self.notifications: list[str] = []
        self.machine = StateMachine("created", TRANSITIONS)
        self.machine.on_enter("shipped", self._notify)
        self.machine.on_enter("cancelled", self._notify)
        self.machine.on_exit("paid", self._release_payment_hold)
        self.payment_hold = False

    @property
    def state(self) -> str:
        return self.machine.state

    def _notify(self, state: str, event: str, context: dict[str, Any]) -> None:
        self.notifications.append(f"order {self.order_id} is {state}")

    def _release_payment_hold(self, state: str, event: str, context: dict[str, Any]) -> None:
        self.payment_hold = False

    def pay(self) -> None:
        self.machine.fire("pay")
        self.payment_hold = True

    def ship(self) -> None:
        self.machine.fire("ship", address=self.address)

    def deliver(self) -> None:
        self.machine.fire("deliver")

    def cancel(self) -> None:
        self.machine.fire("cancel")
