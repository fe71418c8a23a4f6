import pytest

from turnstile import InvalidTransition, Order


def test_happy_path():
    order = Order("A1")
    order.pay()
    order.address = "1 Main St"
    order.ship()
    order.deliver()
    assert order.state == "delivered"
    assert order.notifications == ["order A1 is shipped"]


def test_cancel_before_shipping():
    order = Order("A2")
    order.pay()
    order.cancel()
    assert order.state == "cancelled"
    assert order.payment_hold is False


def test_cannot_cancel_after_shipping():
    order = Order("A3")
    order.pay()
    order.address = "2 Side St"
    order.ship()
    with pytest.raises(InvalidTransition):
        order.cancel()
