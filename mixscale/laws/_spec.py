"""A law with its options: the one type the fitter, saving, the CLI and the experiments share.

    >>> from mixscale.laws import LawSpec
    >>> spec = LawSpec("capacity", variant="tied")
    >>> spec.label
    'capacity (tied)'
    >>> LawSpec.parse(spec.label) == spec, LawSpec.from_dict(spec.to_dict()) == spec
    (True, True)
    >>> LawSpec("additive").n_parameters(4, 4)
    52

A spec is canonical: options equal to their defaults are dropped, except ``variant``, which is
always filled in for a law with variants (``LawSpec("capacity") == LawSpec("capacity",
variant="full")``). Its label names the law, its variant and any other option that differs from
the default: ``"capacity (full, weight_floor=0)"``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from ._base import AbstractLaw, law_options
from ._registry import CANDIDATES, LAWS, get_law

__all__ = ["LawSpec", "as_law_spec", "law_specs"]


class LawSpec:
    """A registered law with its options (hashable, comparable, JSON round trip).

    Args:
        law: the law's registry name, or a registered law class.
        **options: keyword options of the law's ``init`` (e.g. ``variant="tied"``).

    Raises ``KeyError`` for an unknown law and ``ValueError`` for an unknown option or variant.
    """

    __slots__ = ("name", "options")

    name: str
    options: tuple[tuple[str, Any], ...]

    def __init__(self, law: str | type[AbstractLaw], /, **options: Any):
        if isinstance(law, type) and issubclass(law, AbstractLaw):
            if LAWS.get(law.name) is not law:
                raise KeyError(f"law class {law.__name__} is not registered (decorate it with "
                               "@register_law)")
            law = law.name
        cls = get_law(law)
        defaults = law_options(cls)
        unknown = sorted(set(options) - set(defaults))
        if unknown == ["variant"]:
            raise ValueError(f"law {law!r} has no variants")
        if unknown:
            raise ValueError(f"law {law!r} has no options {unknown}; it accepts "
                             f"{list(defaults)}")
        if cls.variants:
            variant = options.get("variant", cls.variants[0])
            if variant not in cls.variants:
                raise ValueError(f"law {law!r} has no variant {variant!r}; choose one of "
                                 f"{list(cls.variants)}")
            options = {**options, "variant": variant}
        kept = tuple((k, options[k]) for k in defaults
                     if k in options and (k == "variant" or options[k] != defaults[k]))
        object.__setattr__(self, "name", law)
        object.__setattr__(self, "options", kept)

    def __setattr__(self, key, value):
        raise AttributeError("LawSpec is immutable")

    def __eq__(self, other) -> bool:
        return (isinstance(other, LawSpec) and self.name == other.name
                and self.options == other.options)

    def __hash__(self) -> int:
        return hash((self.name, self.options))

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options)
        return f"LawSpec({self.name!r}{opts})"

    # ----------------------------------------------------------------- the law
    @property
    def law_class(self) -> type[AbstractLaw]:
        """The registered law class."""
        return get_law(self.name)

    @property
    def law_options(self) -> dict[str, Any]:
        """The options passed to the law's ``init`` (non-default ones and the variant)."""
        return dict(self.options)

    @property
    def variant(self) -> str | None:
        """The variant, or ``None`` for a law without variants."""
        return self.law_options.get("variant")

    @property
    def uses_scale(self) -> bool:
        """Whether the law has model-size and token terms."""
        return self.law_class.uses_scale

    def init(self, key, summary):
        """:meth:`AbstractLaw.init` with this spec's options."""
        return self.law_class.init(key, summary, **self.law_options)

    def targets_for(self, train_domains, loss_domains) -> tuple[str, ...]:
        """:meth:`AbstractLaw.targets_for` with this spec's options."""
        return tuple(self.law_class.targets_for(train_domains, loss_domains, **self.law_options))

    def n_parameters(self, n_train_domains: int, n_targets: int) -> int:
        """Number of fitted parameters for ``K`` training domains and ``M`` targets."""
        return int(self.law_class.n_parameters(n_train_domains, n_targets, **self.law_options))

    def nested_specs(self) -> tuple[LawSpec, ...]:
        """The variants nested in this law (:meth:`AbstractLaw.nested`), as specs: e.g.
        ``capacity (tied)`` and ``capacity (capacity)`` in ``capacity (full)``."""
        return tuple(LawSpec(self.law_class, **options)
                     for options, _ in self.law_class.nested(**self.law_options))

    # ------------------------------------------------------------- text and JSON
    @property
    def label(self) -> str:
        """``"name"``, ``"name (variant)"`` or ``"name (variant, option=value, ...)"``."""
        parts = [str(v) if k == "variant" else f"{k}={json.dumps(v)}" for k, v in self.options]
        return f"{self.name} ({', '.join(parts)})" if parts else self.name

    def to_dict(self) -> dict[str, Any]:
        """``{"law": name, "options": {...}}`` (JSON values)."""
        return {"law": self.name, "options": dict(self.options)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LawSpec:
        """Inverse of :meth:`to_dict` (also reads ``{"name": ..., "options": [[k, v], ...]}``)."""
        if not isinstance(d, Mapping):
            raise ValueError(f"a law spec must be a mapping, got {type(d).__name__}")
        name = d.get("law", d.get("name"))
        if not isinstance(name, str):
            raise ValueError(f"a law spec needs a law name, got {d!r}")
        options = d.get("options") or {}
        if not isinstance(options, Mapping):
            options = dict(options)
        return cls(name, **options)

    @classmethod
    def parse(cls, text: str) -> LawSpec:
        """Inverse of :attr:`label`: ``"capacity"``, ``"capacity (tied)"``,
        ``"capacity (full, weight_floor=0)"``."""
        name, sep, rest = str(text).strip().partition(" (")
        if not sep:
            return cls(name)
        if not rest.endswith(")"):
            raise ValueError(f"cannot read a law from {text!r}; expected 'name (variant, k=v)'")
        options: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in rest[:-1].split(","))):
            key, eq, value = part.partition("=")
            if eq:
                try:
                    options[key.strip()] = json.loads(value)
                except json.JSONDecodeError:
                    raise ValueError(f"cannot read option {part!r} of {text!r}") from None
            else:
                options["variant"] = part
        return cls(name, **options)


def law_specs(*, uses_scale: bool | None = None, candidates: bool = False) -> Iterator[LawSpec]:
    """Every registered law with each of its variants, in registration order.

    ``uses_scale=True`` keeps the laws with model-size and token terms, ``False`` those fitted
    at one scale only; ``None`` keeps all. Candidate laws (``register_law(candidate=True)``)
    only with ``candidates=True``."""
    for cls in LAWS.values():
        if uses_scale is not None and cls.uses_scale != uses_scale:
            continue
        if cls.name in CANDIDATES and not candidates:
            continue
        for variant in cls.variants or (None,):
            yield LawSpec(cls) if variant is None else LawSpec(cls, variant=variant)


def as_law_spec(law, options=None) -> LawSpec:
    """A :class:`LawSpec` from what a user may pass as "a law": a spec, a registry name or a
    registered law class, with optional ``options`` (a mapping; a spec takes none)."""
    if isinstance(law, LawSpec):
        if options:
            raise ValueError("give the options inside the LawSpec, not as law_options")
        return law
    if isinstance(law, str) or (isinstance(law, type) and issubclass(law, AbstractLaw)):
        if options is not None and not isinstance(options, Mapping):
            raise TypeError(f"law options must be a mapping, got {type(options).__name__}")
        return LawSpec(law, **dict(options or {}))
    raise TypeError(f"expected a law (a LawSpec, a registered law name or law class), got "
                    f"{type(law).__name__}")
