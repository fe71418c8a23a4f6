import pytest

from turnstile import InvalidTransition, StateMachine, Transition


def make():
    return StateMachine(
        "locked",
        [
            Transition("locked", "coin", "unlocked"),
            Transition("unlocked", "push", "locked"),
            Transition("locked", "kick", "broken", guard=lambda ctx: ctx.get("force", 0) > 10),
        ],
    )


def test_fire_moves_along_transitions():
    m = make()
    assert m.fire("coin") == "unlocked"
    assert m.fire("push") == "locked"
    assert m.history == [("locked", "coin", "unlocked"), ("unlocked", "push", "locked")]


def test_unknown_event_is_invalid():
    m = make()
    with pytest.raises(InvalidTransition):
        m.fire("push")
    assert m.state == "locked"


def test_guard_allows():
    m = make()
    assert m.fire("kick", force=11) == "broken"


def test_hooks_run_in_order():
    m = make()
    calls = []
    m.on_exit("locked", lambda s, e, c: calls.append(("exit", s, e)))
    m.on_enter("unlocked", lambda s, e, c: calls.append(("enter", s, e)))
    m.fire("coin")
    assert calls == [("exit", "locked", "coin"), ("enter", "unlocked", "coin")]


def test_can_and_events():
    m = make()
    assert m.can("coin")
    assert not m.can("push")
    assert m.events() == ["coin", "kick"]


def test_duplicate_transitions_are_rejected():
    with pytest.raises(ValueError):
        StateMachine("a", [Transition("a", "x", "b"), Transition("a", "x", "c")])
