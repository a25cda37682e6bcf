"""The flat layout of a law's parameters (``mixscale._objective.Layout``): on concrete arrays
its host path gives the traced path's values bit for bit and compiles nothing."""

import jax
import jax.monitoring
import numpy as np

from mixscale._objective import Layout, first_restart


def _tree(rng, batch=()):
    # numpy first, then jnp.asarray (a transfer, not a compiled program); unusual shapes, so
    # that no earlier test has compiled eager programs for them
    return {"a": jax.numpy.asarray(rng.normal(size=(*batch, 3, 7))),
            "b": jax.numpy.asarray(rng.normal(size=batch)),
            "c": jax.numpy.asarray(rng.normal(size=(*batch, 5)))}


def _compilations(fn, *args):
    """``fn(*args)`` and how many XLA programs were compiled while it ran."""
    count = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            count.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        out = jax.block_until_ready(fn(*args))
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    return out, len(count)


def _same(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        assert np.asarray(x).dtype == np.asarray(y).dtype and np.shape(x) == np.shape(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)


def test_host_layout_equals_the_traced_one_and_compiles_nothing():
    rng = np.random.default_rng(0)
    one, batch = _tree(rng), _tree(rng, batch=(4,))
    layout = Layout.of(one)
    assert layout.size == 21 + 1 + 5
    host = {}
    for name, fn, arg in (("ravel", layout.ravel, one), ("ravel_batch", layout.ravel_batch, batch),
                          ("first", first_restart, batch)):
        host[name], compiled = _compilations(fn, arg)
        assert compiled == 0, name
    _same(host["ravel"], jax.jit(layout.ravel)(one))
    _same(host["ravel_batch"], jax.jit(jax.vmap(layout.ravel))(batch))
    _same(host["first"], jax.tree_util.tree_map(lambda x: x[0], batch))
    _same(np.asarray(host["ravel_batch"])[0], layout.ravel(host["first"]))
    back, compiled = _compilations(layout.unravel, host["ravel"])
    assert compiled == 0
    _same(back, one)
    _same(back, jax.jit(layout.unravel)(host["ravel"]))
    back, compiled = _compilations(layout.unravel_batch, host["ravel_batch"])
    assert compiled == 0
    _same(back, batch)
    _same(back, jax.jit(jax.vmap(layout.unravel))(host["ravel_batch"]))
