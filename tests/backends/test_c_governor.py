"""The C backend's thread governor: switches to the faster thread count by timing calls."""
from mlframework.backends.c.backend import _ThreadGovernor


def make(most=2):
    state = {"n": most}

    def set_threads(n):
        if n > 0:
            state["n"] = n
        return state["n"]
    return _ThreadGovernor(set_threads), state


def run(cost, calls, most=2):
    g, state = make(most)
    for _ in range(calls):
        g.before()
        g.after(cost[state["n"]])
    return g, state


def test_loaded_machine_drops_to_one_thread():
    g, state = run({1: 5e-3, 2: 144e-3}, 40)
    assert g.threads == 1 and state["n"] == 1


def test_quiet_machine_keeps_all_threads_and_probes_less_often():
    g, state = run({1: 5e-3, 2: 2.6e-3}, 2000)
    assert g.threads == 2 and state["n"] == 2
    assert g._interval >= 512


def test_short_calls_are_never_probed():
    g, state = run({1: 5e-6, 2: 50e-6}, 200)
    assert g.threads == 2 and state["n"] == 2
