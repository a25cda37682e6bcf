"""The registry of laws by name: one decorator line makes a law known everywhere.

    @register_law
    class MyLaw(AbstractLaw):
        name: ClassVar[str] = "mine"
        ...

After that, ``mixscale fit --law mine``, :func:`mixscale.fit` with ``"mine"``, saving and loading,
``mixscale laws`` and every experiment that selects laws by capability (:func:`law_specs`) know it.
Registration order is the order of listings and tables.

A law under development registers with ``@register_law(candidate=True)``: it is known to the
fitter, the CLI, saving and loading, ``mixscale laws`` and the tests like any other, but
:func:`law_specs` leaves it out unless asked (``candidates=True``), so the experiments' law lists
and their committed results do not change until it is promoted (the decorator without the flag)
and the experiments are rerun with it.
"""

from __future__ import annotations

import dataclasses
import inspect

from ._base import ROW_JACOBIAN_MODES, AbstractLaw, law_options

__all__ = ["CANDIDATES", "LAWS", "get_law", "register_law"]

#: Every registered law by its name, in registration order.
LAWS: dict[str, type[AbstractLaw]] = {}

#: Names of the registered laws that are candidates (not yet in the experiments' law lists).
CANDIDATES: set[str] = set()


def register_law(law_class: type[AbstractLaw] | None = None, *, candidate: bool = False):
    """Class decorator: check that ``law_class`` fulfils the law contract and register it.

    ``@register_law`` or ``@register_law(candidate=True)`` (see the module docstring).

    Raises ``TypeError`` naming what is missing (an abstract member left unimplemented, a class
    variable of the wrong type or an unknown ``row_jacobian`` mode, variants without a
    ``variant`` option of ``init``) and
    ``ValueError`` if another class already holds the name. Registering the same class again
    (a module reloaded) replaces the entry.
    """
    if law_class is None:
        return lambda cls: register_law(cls, candidate=candidate)
    if not (isinstance(law_class, type) and issubclass(law_class, AbstractLaw)):
        raise TypeError(f"register_law takes a subclass of AbstractLaw, got {law_class!r}")
    if inspect.isabstract(law_class):
        missing = sorted(getattr(law_class, "__abstractmethods__", ()))
        raise TypeError(f"{law_class.__name__} does not implement {missing} of AbstractLaw")
    for attr, kind in (("name", str), ("uses_scale", bool), ("variants", tuple),
                       ("per_target_fields", tuple)):
        value = getattr(law_class, attr, None)
        if not isinstance(value, kind):
            raise TypeError(f"{law_class.__name__}.{attr} must be a {kind.__name__} class "
                            f"variable, got {value!r}")
    if law_class.row_jacobian not in ROW_JACOBIAN_MODES:
        raise TypeError(f"{law_class.__name__}.row_jacobian must be one of "
                        f"{ROW_JACOBIAN_MODES}, got {law_class.row_jacobian!r}")
    fields = {f.name for f in dataclasses.fields(law_class)}
    unknown = [f for f in law_class.per_target_fields if f not in fields]
    if unknown:
        raise TypeError(f"{law_class.__name__}.per_target_fields names {unknown}, which are not "
                        "fields of the law")
    name = law_class.name
    if not name.isidentifier():
        raise ValueError(f"law name {name!r} must be an identifier (letters, digits, _)")
    options = law_options(law_class)
    if law_class.variants:
        if options.get("variant") != law_class.variants[0]:
            raise TypeError(f"{law_class.__name__} declares variants {law_class.variants}, so its "
                            f"init needs a keyword-only option variant={law_class.variants[0]!r} "
                            "(the first variant is the default)")
    elif "variant" in options:
        raise TypeError(f"{law_class.__name__}.init has a variant option but the class declares "
                        "no variants")
    held = LAWS.get(name)
    if held is not None and held.__qualname__ != law_class.__qualname__:
        raise ValueError(f"law name {name!r} is already registered by {held.__qualname__}")
    LAWS[name] = law_class
    if candidate:
        CANDIDATES.add(name)
    else:
        CANDIDATES.discard(name)
    return law_class


def get_law(name: str) -> type[AbstractLaw]:
    """The law class registered under ``name``."""
    try:
        return LAWS[name]
    except (KeyError, TypeError):
        raise KeyError(f"unknown law {name!r}; available: {sorted(LAWS)}") from None
